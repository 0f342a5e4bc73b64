"""Where the questions of a search run are searched (``executor=local|ray``).

An executor takes the questions a :func:`rest_mcts.loop.search_run.run_search` still owes and
yields ``(question id, SearchResult)`` as each finishes; the caller (the driver) alone judges
and writes every result, so resuming works the same under every executor.

- :class:`LocalExecutor` (default): one :class:`Searcher` in this process.
- :class:`RayExecutor`: a pool of Ray actors, each building its own :class:`Searcher`
  (policy and PRM) once and searching the chunks of questions the driver deals it. An actor
  that dies has its unfinished chunks dealt to the others; every question is answered once.

A question's samples depend only on the run seed and the question
(:mod:`rest_mcts.search.engine`), so every executor, chunk size and number of actors gives
the same answers.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from rest_mcts.config import ConfigError, check_value

log = logging.getLogger(__name__)

# engine.stats keys summed over actors (overhead_share is recomputed from them)
_SUMMED = ("total_seconds", "policy_seconds", "scorer_seconds", "policy_calls", "scorer_calls",
           "rounds", "questions", "policy_prompts", "scorer_items", "scorer_cache_hits",
           "policy_tokens", "prompt_tokens")


class Searcher:
    """One process's search machinery, built once: the method's per-question generator,
    the policy backend, the value scorer (when the method scores) and the batching engine.

    Args:
        ctx: the run's :class:`~rest_mcts.loop.context.Context`.
        search: the typed search config.
        concurrency: questions searched side by side (``stage.concurrency``).
        cache_values: memoise values per question (``stage.cache_values``).
        policy_path: the policy checkpoint.
        prm_path: the PRM checkpoint (None: untrained head or a model-free scorer).
        progress: show the engine's progress bar.
    """

    def __init__(self, ctx: Any, search: Any, *, concurrency: int, cache_values: bool,
                 policy_path: str | Path, prm_path: str | Path | None,
                 progress: bool = True) -> None:
        from rest_mcts.backends.registry import close_backend
        from rest_mcts.search.engine import SearchEngine
        from rest_mcts.search.registry import config_needs_scorer, make_search

        try:
            self.search_fn = make_search(search, ctx.world,
                                         max_solution_tokens=ctx.max_solution_tokens)
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from err
        self.policy = ctx.build_policy(policy_path)
        self.scorer = None
        try:
            if config_needs_scorer(search):
                self.scorer = ctx.build_scorer(prm_path, policy_path)
            self.engine = SearchEngine(self.policy, self.scorer, concurrency=concurrency,
                                       seed=ctx.seed, cache_values=cache_values,
                                       progress=progress)
        except BaseException:
            close_backend(self.scorer)
            close_backend(self.policy)
            raise

    def run(self, questions: list[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
        """Search ``(id, Question)`` pairs; yields ``(id, SearchResult)`` as each finishes."""
        jobs = ((qid, self.search_fn(question)) for qid, question in questions)
        return self.engine.run(jobs, total=len(questions))

    def close(self) -> None:
        """Free the backends (GPU memory of ``backend=vllm``, ``prm=vllm``)."""
        from rest_mcts.backends.registry import close_backend

        close_backend(self.scorer)
        close_backend(self.policy)


@dataclass(frozen=True)
class LocalExecutor:
    """``executor=local``: every question is searched in this process."""

    name: str = "local"

    def search(self, ctx: Any, search: Any, run: Any, questions: list[tuple[str, Any]], *,
               policy_path: str | Path, prm_path: str | Path | None,
               stats: dict[str, float]) -> Iterator[tuple[str, Any]]:
        """Yield ``(id, SearchResult)`` per question; ``stats`` gets the engine's stats and
        ``executor/start_seconds`` (building the models)."""
        start = time.perf_counter()
        searcher = Searcher(ctx, search, concurrency=run.concurrency,
                            cache_values=run.cache_values, policy_path=policy_path,
                            prm_path=prm_path)
        stats["executor/start_seconds"] = time.perf_counter() - start
        try:
            yield from searcher.run(questions)
        finally:  # frees GPU memory before the next step loads models
            stats.update(searcher.engine.stats)
            searcher.close()


@dataclass(frozen=True)
class RayExecutor:
    """``executor=ray``: a pool of Ray actors, each with its own policy and PRM.

    Attributes:
        num_actors: actors in the pool (one per GPU with ``num_gpus: 1``).
        num_cpus: CPUs Ray reserves per actor.
        num_gpus: GPUs per actor (0: CPU actors).
        chunk_size: questions per task dealt to an actor (searched side by side in it, up to
            ``stage.concurrency``); smaller chunks balance the load, larger ones batch more.
        chunks_in_flight: chunks queued per actor, so it never waits for the driver.
        address: a running Ray cluster to join (``<head>:6379``, ``auto``); None starts a
            local one on this machine.
        torch_threads: torch intra-op threads per CPU actor.
        fail_after_chunks: fault injection for tests: actor 0 exits when asked for a chunk
            after answering this many (None: never).
    """

    num_actors: int = 2
    num_cpus: float = 1
    num_gpus: float = 0
    chunk_size: int = 4
    chunks_in_flight: int = 2
    address: str | None = None
    torch_threads: int = 1
    fail_after_chunks: int | None = None
    name: str = "ray"

    def __post_init__(self) -> None:
        check_value("executor.num_actors", self.num_actors, 1, integer=True)
        check_value("executor.num_cpus", self.num_cpus, 0)
        check_value("executor.num_gpus", self.num_gpus, 0)
        check_value("executor.chunk_size", self.chunk_size, 1, integer=True)
        check_value("executor.chunks_in_flight", self.chunks_in_flight, 1, integer=True)
        check_value("executor.torch_threads", self.torch_threads, 1, integer=True)
        if self.address is not None and not (isinstance(self.address, str) and self.address):
            raise ConfigError(f"executor.address={self.address!r} must be <host>:<port>, "
                              "'auto' or null (start a local Ray cluster)")
        if self.fail_after_chunks is not None:
            check_value("executor.fail_after_chunks", self.fail_after_chunks, 0, integer=True)

    # ------------------------------------------------------------------ driver
    def search(self, ctx: Any, search: Any, run: Any, questions: list[tuple[str, Any]], *,
               policy_path: str | Path, prm_path: str | Path | None,
               stats: dict[str, float]) -> Iterator[tuple[str, Any]]:
        """Deal chunks of ``(id, Question)`` to the actors and yield ``(id, SearchResult)``
        as chunks come back; a dead actor's chunks go to the others. ``stats`` gets the
        actors' engine stats summed, ``executor/driver_share`` (the driver's time outside
        waiting for actors, over its wall time), ``executor/actor_failures`` and
        ``executor/start_seconds`` (until every actor had built its models)."""
        import ray
        from ray.exceptions import RayActorError
        from tqdm import tqdm

        self.start_ray()
        start = time.perf_counter()  # the cluster's start is not the driver's share
        waited = 0.0
        if not questions:
            return
        actor_cls = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus)(_SearchActor)
        args = dict(ctx=ctx, search=search, concurrency=run.concurrency,
                    cache_values=run.cache_values, policy_path=str(policy_path),
                    prm_path=None if prm_path is None else str(prm_path),
                    torch_threads=self.torch_threads if not self.num_gpus else None)
        chunks = deque(questions[i:i + self.chunk_size]
                       for i in range(0, len(questions), self.chunk_size))
        actors = [actor_cls.remote(**args, fail_after_chunks=self.fail_after_chunks if i == 0
                                   else None) for i in range(min(self.num_actors, len(chunks)))]
        alive = list(actors)
        load = {a: 0 for a in actors}
        pending: dict[Any, tuple[Any, list]] = {}
        engine_stats: dict[Any, dict] = {}
        failures, started = 0, 0.0
        bar = tqdm(total=len(questions), desc="search (ray)", unit="question")

        def deal() -> None:
            for actor in alive:
                while chunks and load[actor] < self.chunks_in_flight:
                    chunk = chunks.popleft()
                    pending[actor.search.remote(chunk)] = (actor, chunk)
                    load[actor] += 1

        try:
            # every actor's start-up (its process, imports, models): a task waits for it anyway
            t0 = time.perf_counter()
            ray.wait([a.ready.remote() for a in actors], num_returns=len(actors))
            started = time.perf_counter() - t0
            waited += started
            deal()
            while pending:
                t0 = time.perf_counter()
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                waited += time.perf_counter() - t0
                actor, chunk = pending.pop(ref)
                load[actor] -= 1
                try:
                    results, actor_stats = ray.get(ref)
                except RayActorError as err:
                    if actor in alive:
                        alive.remove(actor)
                        failures += 1
                        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
                        log.warning("a Ray actor died (%d of %d left): its unfinished chunks go "
                                    "to the others (%s)", len(alive), len(actors), reason)
                    chunks.appendleft(chunk)
                    if not alive:
                        left = sum(map(len, chunks)) + sum(len(c) for _, c in pending.values())
                        raise RuntimeError(
                            f"every Ray actor died; {left} questions are unanswered (run "
                            "again into the same folder to resume)") from err
                    deal()
                    continue
                engine_stats[actor] = actor_stats
                deal()  # before the caller records results, so the actors stay busy
                for qid, result in results:
                    bar.update(1)
                    yield qid, result
        finally:
            bar.close()
            for actor in actors:  # frees their models (GPU memory) before the next step
                ray.kill(actor)
            totals = {k: sum(s.get(k, 0) for s in engine_stats.values()) for k in _SUMMED}
            busy = totals["policy_seconds"] + totals["scorer_seconds"]
            stats.update(totals)
            stats["overhead_share"] = 1 - busy / totals["total_seconds"] \
                if totals["total_seconds"] > 0 else 0.0
            wall = time.perf_counter() - start
            stats["executor/driver_share"] = (wall - waited) / wall if wall > 0 else 0.0
            stats["executor/actor_failures"] = float(failures)
            stats["executor/start_seconds"] = started

    def start_ray(self) -> None:
        """Join ``address`` or start a local cluster (once per process); the actors import
        this checkout's code and get one torch thread each on CPU."""
        import ray

        if ray.is_initialized():
            return
        import rest_mcts

        src = str(Path(rest_mcts.__file__).resolve().parents[1])
        env = {k: v for k, v in os.environ.items() if k.startswith("REST_MCTS_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (src, os.environ.get("PYTHONPATH")) if p)
        if not self.num_gpus:
            env["OMP_NUM_THREADS"] = str(self.torch_threads)
        kwargs: dict[str, Any] = {}
        if self.address is None:  # a local cluster with room for the whole pool
            kwargs["num_cpus"] = max(os.cpu_count() or 1,
                                     int(self.num_actors * self.num_cpus + 0.999))
        ray.init(address=self.address, runtime_env={"env_vars": env}, include_dashboard=False,
                 logging_level=logging.WARNING, **kwargs)


class _SearchActor:
    """A Ray actor (wrapped with ``ray.remote`` by :class:`RayExecutor`): one
    :class:`Searcher`, built once, searching the chunks it is dealt."""

    def __init__(self, *, ctx: Any, search: Any, concurrency: int, cache_values: bool,
                 policy_path: str, prm_path: str | None, torch_threads: int | None,
                 fail_after_chunks: int | None = None) -> None:
        logging.basicConfig(level=logging.WARNING)
        self.searcher = Searcher(ctx, search, concurrency=concurrency,
                                 cache_values=cache_values, policy_path=policy_path,
                                 prm_path=prm_path, progress=False)
        if torch_threads is not None and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(torch_threads)
        self.fail_after_chunks = fail_after_chunks
        self.chunks = 0

    def ready(self) -> bool:
        """Returns once the actor is built (its models loaded)."""
        return True

    def search(self, chunk: list[tuple[str, Any]]) -> tuple[list[tuple[str, Any]], dict]:
        """Search one chunk; returns its ``(id, SearchResult)`` pairs and the engine's stats
        (running totals of this actor)."""
        if self.fail_after_chunks is not None and self.chunks >= self.fail_after_chunks:
            os._exit(1)  # fault injection (tests): die like a lost node would
        self.chunks += 1
        return list(self.searcher.run(chunk)), dict(self.searcher.engine.stats)


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}


def executor_from(node: Any) -> LocalExecutor | RayExecutor:
    """The executor of the ``executor`` config node (None: local); one-line ConfigError on a
    bad option."""
    from rest_mcts.config import from_node

    if node is None:
        return LocalExecutor()
    name = node.get("name")
    if name not in EXECUTORS:
        raise ConfigError(f"executor.name={name!r} is unknown: choose one of "
                          f"{', '.join(EXECUTORS)}")
    return from_node(EXECUTORS[name], node, strict="executor")

"""Where the questions of a search run are searched (``executor=local|ray``).

An executor takes the questions a :func:`rest_mcts.runtime.search_run.run_search` still owes and
yields ``(question id, SearchResult)`` as each finishes; the caller (the driver) alone judges
and writes every result, so resuming works the same under every executor.

- :class:`LocalExecutor` (default): one :class:`Searcher` in this process, built per search.
- :class:`RayExecutor`: a pool of Ray actors that lives as long as the stage (every search
  of the loop, every evaluation method, every iteration), each holding one :class:`Searcher`
  that it rebuilds only when a search needs another one (method, policy, PRM, concurrency),
  keeping the models that did not change. The driver deals each actor chunks of questions
  and gets every answer back as soon as it is found (a Ray streaming generator). An actor
  that dies has its unanswered questions dealt to the others; every question is answered
  once. The pool belongs to the executor object (the run's one, ``Context.executor``); its
  :meth:`RayExecutor.shutdown` sits on the stage's resource stack
  (:func:`rest_mcts.stages.run_stage`), so the actors end with the stage.

A question's samples depend only on the run seed and the question
(:mod:`rest_mcts.search.engine`), so every executor, chunk size and number of actors gives
the same answers.
"""

from __future__ import annotations

import contextlib
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

# an auto chunk holds at most this many times stage.concurrency questions, so a long run is
# still dealt in several chunks (an actor that dies or lags holds back at most one)
_AUTO_CHUNK_CAP = 4


def _policy_key(ctx: Any, policy_path: Any) -> tuple:
    """What the policy backend of a Searcher is built from."""
    return (ctx.policy_backend, str(policy_path))


def _scorer_key(ctx: Any, policy_path: Any, prm_path: Any) -> tuple:
    """What the value scorer of a Searcher is built from (the backbone, ``prm.backbone`` or
    else the policy, only without a trained PRM)."""
    backbone = None if prm_path is not None else (ctx.prm_backbone or str(policy_path))
    return (ctx.scorer, None if prm_path is None else str(prm_path), backbone, ctx.seed,
            ctx.world_spec)


class Searcher:
    """One process's search machinery: the method's per-question generator, the policy
    backend, the value scorer (when the method scores) and the batching engine.

    Args:
        ctx: the run's :class:`~rest_mcts.runtime.context.Context`.
        search: the typed search config.
        concurrency: questions searched side by side (``stage.concurrency``).
        cache_values: memoise values per question (``stage.cache_values``).
        policy_path: the policy checkpoint.
        prm_path: the PRM checkpoint (None: untrained head or a model-free scorer).
        progress: show the engine's progress bar.
        reuse: a Searcher this one replaces: its policy and scorer are taken over when they
            are built from the same settings and checkpoints (the scorer also by a method that
            does not score, for the next one that does), the rest is freed before any model
            is loaded (it must not be used afterwards).
    """

    def __init__(self, ctx: Any, search: Any, *, concurrency: int, cache_values: bool,
                 policy_path: str | Path, prm_path: str | Path | None,
                 progress: bool = True, reuse: Searcher | None = None) -> None:
        from rest_mcts.backends.registry import close_backend
        from rest_mcts.search.engine import SearchEngine
        from rest_mcts.search.registry import config_needs_scorer

        try:  # bound and checked once per run and config (the runner's check shares it)
            self.search_fn = ctx.search_fn(search)
        except ConfigError:
            if reuse is not None:
                reuse.close()
            raise
        self.policy_key = _policy_key(ctx, policy_path)
        self.scorer_key = _scorer_key(ctx, policy_path, prm_path)
        needs_scorer = config_needs_scorer(search)
        self.policy = self.scorer = None
        self.loaded = 0  # backends built here (not taken over)
        if reuse is not None:  # take over the unchanged models, free the others first
            if reuse.policy_key == self.policy_key:
                self.policy, reuse.policy = reuse.policy, None
            if reuse.scorer is not None and reuse.scorer_key == self.scorer_key:
                # kept even for a method that does not score (it never calls it), so the
                # next method that does finds it loaded
                self.scorer, reuse.scorer = reuse.scorer, None
                if hasattr(self.scorer, "clear_cache"):  # answer as a freshly built one
                    self.scorer.clear_cache()
            reuse.close()
        try:
            if self.policy is None:
                self.policy = ctx.build_policy(policy_path)
                self.loaded += 1
            if needs_scorer and self.scorer is None:
                self.scorer = ctx.build_scorer(prm_path, policy_path)
                self.loaded += 1
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
        self.policy = self.scorer = None


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

    def close(self) -> None:
        """Nothing outlives a search here."""

    def shutdown(self) -> None:
        """Nothing to end at the end of the stage either."""


@dataclass(frozen=True)
class RayExecutor:
    """``executor=ray``: a pool of Ray actors, each with its own policy and PRM, kept for
    the whole stage (:meth:`shutdown` ends it). The settings below are the executor's value
    (equality, hash); the pool it started lives beside them on this object
    (:class:`_Live`), never in a module global, and never travels to an actor.

    Attributes:
        num_actors: actors in the pool (one per GPU with ``num_gpus: 1``).
        num_cpus: CPUs Ray reserves per actor.
        num_gpus: GPUs per actor (0: CPU actors).
        chunk_size: questions per task dealt to an actor, searched ``stage.concurrency`` at a
            time in it (each chunk ends with a tail of small batches); ``auto``: the
            questions split evenly over the actors, at most 4 x ``stage.concurrency`` per
            chunk (one chunk per actor unless the run is long).
        chunks_in_flight: chunks queued per actor, so it never waits for the driver.
        address: a running Ray cluster to join (``<head>:6379``, ``auto``); None starts a
            local one on this machine.
        torch_threads: torch intra-op threads per CPU actor.
        keep_models: an actor keeps its models loaded between searches (a later search with
            the same models loads none); ``auto``: on CPU actors, not on GPU ones (the loop
            trains on the GPU between searches; their worker processes are still kept).
        fail_after_chunks: fault injection for tests: the pool's first actor exits when asked
            for a chunk after answering this many (None: never).
    """

    num_actors: int = 2
    num_cpus: float = 1
    num_gpus: float = 0
    chunk_size: int | str = "auto"
    chunks_in_flight: int = 2
    address: str | None = None
    torch_threads: int = 1
    keep_models: bool | str = "auto"
    fail_after_chunks: int | None = None
    name: str = "ray"

    def __post_init__(self) -> None:
        check_value("executor.num_actors", self.num_actors, 1, integer=True)
        check_value("executor.num_cpus", self.num_cpus, 0)
        check_value("executor.num_gpus", self.num_gpus, 0)
        if self.chunk_size != "auto" and (
                isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int)
                or self.chunk_size < 1):
            raise ConfigError(f"executor.chunk_size={self.chunk_size!r} must be a whole number "
                              ">= 1 or auto")
        check_value("executor.chunks_in_flight", self.chunks_in_flight, 1, integer=True)
        check_value("executor.torch_threads", self.torch_threads, 1, integer=True)
        if self.keep_models not in ("auto", True, False):
            raise ConfigError(f"executor.keep_models={self.keep_models!r} must be true, false "
                              "or auto")
        if self.address is not None and not (isinstance(self.address, str) and self.address):
            raise ConfigError(f"executor.address={self.address!r} must be <host>:<port>, "
                              "'auto' or null (start a local Ray cluster)")
        if self.fail_after_chunks is not None:
            check_value("executor.fail_after_chunks", self.fail_after_chunks, 0, integer=True)
        object.__setattr__(self, "_live", _Live())  # not a field: no setting, no key

    def chunk_for(self, num_questions: int, num_actors: int, concurrency: int) -> int:
        """Questions per chunk (``chunk_size``, or ``auto``: an even split, capped)."""
        if self.chunk_size != "auto":
            return int(self.chunk_size)
        even = -(-num_questions // max(1, num_actors))
        return max(1, min(even, _AUTO_CHUNK_CAP * concurrency))

    # ------------------------------------------------------------------ driver
    def search(self, ctx: Any, search: Any, run: Any, questions: list[tuple[str, Any]], *,
               policy_path: str | Path, prm_path: str | Path | None,
               stats: dict[str, float]) -> Iterator[tuple[str, Any]]:
        """Deal chunks of ``(id, Question)`` to the pool's actors (started on first use,
        their Searchers rebuilt only where this search needs other ones) and yield
        ``(id, SearchResult)`` as each is found; a dead actor's unanswered questions go to
        the others. ``stats`` gets the actors' engine stats summed, ``executor/driver_share``
        (the driver's time outside waiting for actors, over its wall time),
        ``executor/actor_failures``, ``executor/start_seconds`` (until every actor dealt to
        had its Searcher), ``executor/actors_started`` (new worker processes) and
        ``executor/searchers_built`` (actors that built a Searcher for this search),
        ``executor/models_loaded`` (policies and scorers they loaded for it). The
        pool outlives the search unless it fails or is abandoned (then it is ended)."""
        import ray
        from ray.exceptions import RayActorError
        from tqdm import tqdm

        self.start_ray()
        start = time.perf_counter()  # the cluster's start is not the driver's share
        waited = 0.0
        if not questions:
            return
        pool = self._pool()
        chunk_size = self.chunk_for(len(questions), self.num_actors, run.concurrency)
        chunks = deque(questions[i:i + chunk_size]
                       for i in range(0, len(questions), chunk_size))
        spec = dict(ctx=ctx, search=search, concurrency=run.concurrency,
                    cache_values=run.cache_values, policy_path=str(policy_path),
                    prm_path=None if prm_path is None else str(prm_path))
        engine_stats: dict[Any, dict] = {}
        failures, started, new_actors, built, loaded = 0, 0.0, 0, 0, 0
        pending: dict[Any, tuple[Any, dict]] = {}  # generator -> (actor, its unanswered)
        bar = tqdm(total=len(questions), desc="search (ray)", unit="question")
        finished = False
        try:
            t0 = time.perf_counter()
            new_actors = pool.fill(min(self.num_actors, len(chunks)))
            alive = pool.actors[:min(self.num_actors, len(chunks))]
            # every actor's start-up (process, imports, models) or rebuild: tasks wait anyway
            refs = {a: a.prepare.remote(spec) for a in alive}
            for actor, ref in refs.items():
                try:
                    info = ray.get(ref)
                except RayActorError:  # died while idle (a lost node): search without it
                    alive.remove(actor)
                    pool.drop(actor)
                    failures += 1
                    log.warning("a Ray actor died before searching (%d of %d left)",
                                len(alive), len(refs))
                    if not alive:
                        raise
                    continue
                built += info["built"]
                loaded += info["loaded"]
            started = time.perf_counter() - t0
            waited += started
            load = {a: 0 for a in alive}

            def deal() -> None:
                for actor in deal_order(alive, load, self.chunks_in_flight, len(chunks)):
                    chunk = chunks.popleft()
                    gen = actor.search.options(num_returns="streaming").remote(chunk)
                    pending[gen] = (actor, dict(chunk))
                    load[actor] += 1

            deal()
            while pending:
                t0 = time.perf_counter()
                (gen,), _ = ray.wait(list(pending), num_returns=1)
                waited += time.perf_counter() - t0
                actor, left = pending[gen]
                try:
                    qid, result, actor_stats = ray.get(next(gen))
                except StopIteration:  # the chunk is done
                    del pending[gen]
                    load[actor] -= 1
                    deal()
                    continue
                except RayActorError as err:
                    del pending[gen]
                    load[actor] -= 1
                    if actor in alive:
                        alive.remove(actor)
                        pool.drop(actor)
                        failures += 1
                        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
                        log.warning("a Ray actor died (%d of %d left): its unanswered questions "
                                    "go to the others (%s)", len(alive), len(load), reason)
                    if left:
                        chunks.appendleft(list(left.items()))
                    if not alive:
                        todo = sum(map(len, chunks)) + sum(len(u) for _, u in pending.values())
                        raise RuntimeError(
                            f"every Ray actor died; {todo} questions are unanswered (run "
                            "again into the same folder to resume)") from err
                    deal()
                    continue
                del left[qid]
                engine_stats[actor] = actor_stats
                bar.update(1)
                yield qid, result
            if not self.keeps_models():  # frees GPU memory before the loop trains
                ray.get([a.release.remote() for a in alive])
            finished = True
            log.info("ray: %d questions on %d actors (%d started now), %d Searchers built, "
                     "%d models loaded, %.1f s until every actor was ready", len(questions),
                     len(load), new_actors, built, loaded, started)
        finally:
            bar.close()
            if not finished:  # failed or abandoned: tasks may still run, end the pool
                self.close()
            totals = {k: sum(s.get(k, 0) for s in engine_stats.values()) for k in _SUMMED}
            busy = totals["policy_seconds"] + totals["scorer_seconds"]
            stats.update(totals)
            stats["overhead_share"] = 1 - busy / totals["total_seconds"] \
                if totals["total_seconds"] > 0 else 0.0
            wall = time.perf_counter() - start
            stats["executor/driver_share"] = (wall - waited) / wall if wall > 0 else 0.0
            stats["executor/actor_failures"] = float(failures)
            stats["executor/start_seconds"] = started
            stats["executor/actors_started"] = float(new_actors)
            stats["executor/searchers_built"] = float(built)
            stats["executor/models_loaded"] = float(loaded)

    def keeps_models(self) -> bool:
        """Do the actors keep their models between searches (``keep_models``)?"""
        return not self.num_gpus if self.keep_models == "auto" else bool(self.keep_models)

    def close(self) -> None:
        """End this executor's actors (the next search starts new ones)."""
        pool, self._live.pool = self._live.pool, None
        if pool is not None:
            pool.close()

    def shutdown(self) -> None:
        """End the actors and the local Ray cluster this executor started, if it did: the
        stage's resource stack calls it when the stage ends (:func:`rest_mcts.stages.run_stage`,
        registered where the run's Context is built)."""
        self.close()
        if self._live.started_ray:
            import ray

            ray.shutdown()
            self._live.started_ray = False

    def _pool(self) -> _Pool:
        """This executor's pool on the current Ray cluster (a new, empty one after the
        cluster it was on was shut down)."""
        cluster = _cluster_id()
        if self._live.pool is None or self._live.pool.cluster != cluster:
            self._live.pool = _Pool(self, cluster)
        return self._live.pool

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
        if self.address is None:
            self._live.started_ray = True


class _Pool:
    """The live actors of one :class:`RayExecutor` in this process (on one Ray cluster)."""

    def __init__(self, executor: RayExecutor, cluster: str) -> None:
        import ray

        self.executor = executor
        self.cluster = cluster
        self.actors: list[Any] = []
        self.created = 0
        self.actor_cls = ray.remote(num_cpus=executor.num_cpus,
                                    num_gpus=executor.num_gpus)(_SearchActor)

    def fill(self, size: int) -> int:
        """Start actors until there are ``size``; returns how many were started (the first
        ever started gets ``fail_after_chunks``)."""
        ex, new = self.executor, 0
        while len(self.actors) < size:
            threads = ex.torch_threads if not ex.num_gpus else None
            fail = ex.fail_after_chunks if self.created == 0 else None
            self.actors.append(self.actor_cls.remote(torch_threads=threads,
                                                     fail_after_chunks=fail))
            self.created += 1
            new += 1
        return new

    def drop(self, actor: Any) -> None:
        """Forget (and end) an actor, e.g. one that died."""
        import ray

        if actor in self.actors:
            self.actors.remove(actor)
        ray.kill(actor)

    def close(self) -> None:
        """End every actor (frees their models and GPU memory)."""
        import ray

        if ray.is_initialized() and _cluster_id() == self.cluster:  # else they are gone
            for actor in self.actors:
                ray.kill(actor)
        self.actors = []


class _Live:
    """What one :class:`RayExecutor` started in this process: its pool of actors (on the
    cluster it was started on) and whether it started the local Ray cluster. A copy made by
    pickling (the run's Context sent to an actor) or deep-copying is empty: actors and
    clusters belong to the process that started them."""

    def __init__(self) -> None:
        self.pool: _Pool | None = None
        self.started_ray = False

    def __reduce__(self) -> tuple:
        return (_Live, ())


def _cluster_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def deal_order(actors: list, load: dict, chunks_in_flight: int, chunks_left: int) -> list:
    """The actors that get the next chunks, in order: level by level, so every actor gets its
    first chunk before any gets a second, up to ``chunks_in_flight`` each (``load``: chunks
    each actor holds now). With ``chunk_size: auto`` there is one chunk per actor; dealing
    each actor its ``chunks_in_flight`` in turn gave the first actor all of them."""
    load = dict(load)
    order = []
    for level in range(1, chunks_in_flight + 1):
        for actor in actors:
            if len(order) < chunks_left and load[actor] < level:
                order.append(actor)
                load[actor] += 1
    return order


class _SearchActor:
    """A Ray actor (wrapped with ``ray.remote`` by :class:`_Pool`): one worker process that
    keeps its imports, holding the :class:`Searcher` of the last search it was prepared for
    and searching the chunks it is dealt."""

    def __init__(self, *, torch_threads: int | None, fail_after_chunks: int | None = None) -> None:
        logging.basicConfig(level=logging.WARNING)
        self.torch_threads = torch_threads
        self.fail_after_chunks = fail_after_chunks
        self.chunks = 0
        self.searcher: Searcher | None = None
        self.spec: dict | None = None
        self.base: dict[str, float] = {}

    def prepare(self, spec: dict) -> dict:
        """Hold the Searcher of ``spec`` (the :class:`Searcher` arguments): the one held when
        ``spec`` equals its own, else a new one that takes over the unchanged models.
        Returns ``{"built": 0 or 1, "loaded": backends loaded, "seconds": ..., "pid": ...}``."""
        start = time.perf_counter()
        built = self.searcher is None or self.spec != spec
        loaded = 0
        if built:
            old, self.searcher, self.spec = self.searcher, None, None
            self.searcher = Searcher(**spec, progress=False, reuse=old)
            self.spec = spec
            loaded = self.searcher.loaded
            if self.torch_threads is not None and "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(self.torch_threads)
        elif hasattr(self.searcher.scorer, "clear_cache"):  # answer as a fresh one would
            self.searcher.scorer.clear_cache()
        self.base = dict(self.searcher.engine.stats)
        return {"built": int(built), "loaded": loaded, "seconds": time.perf_counter() - start,
                "pid": os.getpid()}

    def search(self, chunk: list[tuple[str, Any]]) -> Iterator[tuple[str, Any, dict]]:
        """Search one chunk (a streaming generator); yields ``(id, SearchResult, stats)`` as
        each question is answered, with the engine's stats since :meth:`prepare`."""
        if self.fail_after_chunks is not None and self.chunks >= self.fail_after_chunks:
            os._exit(1)  # fault injection (tests): die like a lost node would
        self.chunks += 1
        engine = self.searcher.engine
        for qid, result in self.searcher.run(chunk):
            stats = {k: engine.stats[k] - self.base.get(k, 0) for k in _SUMMED}
            yield qid, result, stats

    def release(self) -> None:
        """Free the models (the worker process stays)."""
        if self.searcher is not None:
            self.searcher.close()
        self.searcher, self.spec = None, None


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}


def executor_from(node: Any, resources: contextlib.ExitStack | None = None
                  ) -> LocalExecutor | RayExecutor:
    """The executor of the ``executor`` config node (None: local); one-line ConfigError on a
    bad option. With ``resources`` (the stage's resource stack), the executor registers its
    :meth:`~RayExecutor.shutdown` there as it is created, so whatever it starts (Ray actors,
    a local cluster) ends with the stage."""
    from rest_mcts.config import from_node

    if node is None:
        executor = LocalExecutor()
    else:
        name = node.get("name")
        if name not in EXECUTORS:
            raise ConfigError(f"executor.name={name!r} is unknown: choose one of "
                              f"{', '.join(EXECUTORS)}")
        executor = from_node(EXECUTORS[name], node, strict="executor")
    if resources is not None:
        resources.callback(executor.shutdown)
    return executor

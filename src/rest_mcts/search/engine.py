"""The batching engine: runs many per-question searches side by side.

Every search method is a generator written for ONE question (see
:mod:`rest_mcts.search.requests`). The engine keeps up to ``concurrency`` of them active,
and in each *round* it

1. collects the one pending request of every active search;
2. merges all :class:`Generate` requests whose :class:`SamplingParams` are equal (ignoring
   ``seed``) into ONE ``policy.generate`` call, passing one row seed per prompt (below), and
   all :class:`Score` requests into ONE ``scorer.score`` call;
3. splits the answers back in order and ``send``s each search its own;
4. yields the :class:`SearchResult` of every search that returned, and pulls new jobs from
   the (lazily consumed) job iterable into the freed slots.

That is the ``rounds`` schedule (default): the fewest, largest calls, right for a backend that
batches in this process (HF, in-process vLLM). With a server that batches continuously
(``backend=openai`` in front of ``vllm serve``, SGLang), a round waits for its slowest
request while the searches whose answers are back sit idle; the ``streaming`` schedule sends
each search's Generate the moment it is made, as its own call on a worker thread, and hands
the answer back the moment it arrives (Score requests still queue into one scorer call at a
time). Both give the same answers (seeding below); ``experiments/bench_serving.py`` measures
them against a server.

A value model is a deterministic function of (question, partial solution), so with
``cache_values`` (default) each question keeps a memo of the values it has been given and a
repeated item (the same step sampled twice, a rollout retracing a path) is not scored again;
``prm_calls`` counts the items actually scored.

Seeding: a question's samples depend only on (engine seed, question key, position in its own
search), never on which questions share its calls, the concurrency, the backend's batch size
or the order of rounds. Every request a search yields (Generate or Score, empty ones too)
gets the next index ``k`` of that search; a Generate's request seed is
``derive_seed(engine seed, key, k)`` and its prompt ``j`` samples with the row seed
``derive_seed(request seed, j)`` (the ``seeds`` argument of ``policy.generate``, see
:mod:`rest_mcts.backends.base`). A search's own ``SamplingParams.seed`` is ignored.

The costs of each question (tokens, calls, wall time) are counted here, where the calls are
made, and written into ``result.costs``; a search method never counts anything itself.
A question's ``wall_seconds`` runs from its first step to its return, so it includes the
rounds it waited through (the other questions' calls) and any time the caller spends
between two results; ``engine.stats["total_seconds"]`` excludes the caller's time.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, cast

from tqdm import tqdm

from rest_mcts.backends.base import (
    GenerationOutput,
    PolicyBackend,
    SamplingParams,
    ValueScorer,
    derive_seed,
)
from rest_mcts.search.requests import Costs, Generate, Request, Score, SearchGen, SearchResult

logger = logging.getLogger(__name__)


SCHEDULES = ("rounds", "streaming")


class SearchError(RuntimeError):
    """A search failed (or asked for something the engine cannot give); names the question."""


@dataclass
class _Active:
    """Book-keeping for one running search."""

    key: str
    gen: SearchGen
    started: float
    costs: Costs = field(default_factory=Costs)
    pending: Request | None = None
    # index of ``pending`` among the requests this search has yielded (seeds its samples)
    request_index: int = -1
    answer: Any = None
    result: SearchResult | None = None
    # streaming: ``pending`` has been sent (or queued for the scorer) and is not answered yet
    sent: bool = False
    # value memo of this question: (question, steps) -> value, when the engine caches values
    values: dict[tuple[str, tuple[str, ...]], float] = field(default_factory=dict)


class _Stopwatch:
    """Accumulates the seconds between ``start`` and ``stop`` (idempotent stop)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._since: float | None = None

    def start(self) -> None:
        self._since = time.perf_counter()

    def stop(self) -> None:
        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None


class _JobSource:
    """Pulls ``(key, generator)`` jobs lazily and rejects repeated keys."""

    def __init__(self, jobs: Iterable[tuple[str, SearchGen]]) -> None:
        self._jobs = iter(jobs)
        self._seen: set[str] = set()
        self.exhausted = False

    def take(self) -> tuple[str, SearchGen] | None:
        """The next job, or None once the iterable is exhausted."""
        if self.exhausted:
            return None
        job = next(self._jobs, None)
        if job is None:
            self.exhausted = True
            return None
        key, gen = job
        if key in self._seen:
            gen.close()
            raise SearchError(f"duplicate search key {key!r}")
        self._seen.add(key)
        return key, gen


class SearchEngine:
    """Runs per-question search generators concurrently, batching their model calls.

    Attributes:
        policy: the policy backend every ``Generate`` goes to.
        scorer: the value scorer every ``Score`` goes to (None: searches must not score).
        concurrency: most searches active at once.
        seed: the run seed that every question's sampling seeds derive from.
        progress: show a tqdm bar counting finished questions.
        cache_values: memoise values per question (items scored once per question).
        schedule: ``rounds`` (merge each round's requests into one call per kind, the default)
            or ``streaming`` (each search's requests go out the moment it makes them; for
            servers that batch continuously, see the module docstring); None: the policy
            backend's own ``schedule`` attribute, else ``rounds``.
        stats: running totals over all runs of this engine: ``total_seconds`` (engine
            time, excluding the time the caller spends between results), ``policy_seconds``
            and ``scorer_seconds`` (inside the backends, summed over calls: under
            ``streaming`` the policy calls overlap and their sum can exceed the wall time),
            ``policy_calls``, ``scorer_calls``, ``rounds`` (streaming: answers waited for),
            ``questions``, ``policy_prompts``, ``scorer_items`` (items scored),
            ``scorer_cache_hits`` (items answered from the memo),
            ``policy_tokens``, ``prompt_tokens`` and
            ``overhead_share = 1 - (policy_seconds + scorer_seconds) / total_seconds``.
    """

    def __init__(
        self,
        policy: PolicyBackend,
        scorer: ValueScorer | None = None,
        concurrency: int = 64,
        seed: int = 0,
        progress: bool = True,
        cache_values: bool = True,
        schedule: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        schedule = schedule or getattr(policy, "schedule", None) or "rounds"
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if schedule == "streaming" and not getattr(policy, "concurrent_calls", False):
            raise ValueError(
                f"schedule 'streaming' needs a policy backend that serves concurrent calls "
                f"(backend=openai); {type(policy).__name__} batches in one process: use 'rounds'"
            )
        self.schedule = schedule
        self.policy = policy
        self.scorer = scorer
        self.concurrency = int(concurrency)
        self.seed = int(seed)
        self.progress = progress
        self.cache_values = cache_values
        self.stats: dict[str, float] = {
            "total_seconds": 0.0,
            "policy_seconds": 0.0,
            "scorer_seconds": 0.0,
            "policy_calls": 0,
            "scorer_calls": 0,
            "rounds": 0,
            "questions": 0,
            "policy_prompts": 0,
            "scorer_items": 0,
            "scorer_cache_hits": 0,
            "policy_tokens": 0,
            "prompt_tokens": 0,
            "overhead_share": 0.0,
        }

    # ------------------------------------------------------------------ public API
    def run(
        self, jobs: Iterable[tuple[str, SearchGen]], total: int | None = None
    ) -> Iterator[tuple[str, SearchResult]]:
        """Run the searches, yielding ``(key, result)`` as each one finishes.

        Jobs are pulled from ``jobs`` only when a slot is free, so a lazy iterable (e.g. a
        generator expression) never has more than ``concurrency`` searches running. Results
        come out in finishing order (within a round, in the order the jobs were started).

        Args:
            jobs: ``(key, generator)`` pairs; keys must be unique.
            total: number of jobs, for the progress bar (default: ``len(jobs)`` if defined).

        Yields:
            ``(key, result)`` with ``result.costs`` filled in.

        Raises:
            SearchError: a search raised (the key is named and the error chained), yielded
                something other than a request, returned something other than a
                :class:`SearchResult`, or asked to score without a scorer; or keys repeat.
        """
        if total is None and hasattr(jobs, "__len__"):
            total = len(jobs)  # type: ignore[arg-type]
        source = _JobSource(jobs)
        active: list[_Active] = []
        watch = _Stopwatch()
        bar = tqdm(total=total, disable=not self.progress, desc="search", unit="question")
        steps = (self._stream(active, source) if self.schedule == "streaming"
                 else self._rounds(active, source))
        watch.start()
        try:
            for finished in steps:
                for done in finished:
                    bar.update(1)
                    watch.stop()
                    self._update_overhead(watch)
                    yield done.key, done.result  # type: ignore[misc]
                    watch.start()
        finally:
            steps.close()
            watch.stop()
            self._update_overhead(watch)
            bar.close()
            for leftover in active:
                leftover.gen.close()
        logger.info(
            "engine: %d questions, %d policy calls (%.1fs), %d scorer calls (%.1fs), "
            "overhead %.1f%%",
            self.stats["questions"], self.stats["policy_calls"], self.stats["policy_seconds"],
            self.stats["scorer_calls"], self.stats["scorer_seconds"],
            100 * self.stats["overhead_share"],
        )

    def run_all(
        self, jobs: Iterable[tuple[str, SearchGen]], total: int | None = None
    ) -> dict[str, SearchResult]:
        """Run every job and return ``{key: result}`` (in finishing order)."""
        return dict(self.run(jobs, total=total))

    # ------------------------------------------------------------------ schedules
    def _rounds(self, active: list[_Active], source: "_JobSource") -> Iterator[list[_Active]]:
        """``rounds``: yields the searches that finished, round after round (see
        :meth:`_round`)."""
        while True:
            finished = self._fill(active, source)
            if not finished and active:
                finished = self._round(active)
                active[:] = [a for a in active if a.result is None]
            if not finished and not active:
                return
            yield finished

    def _stream(self, active: list[_Active], source: "_JobSource") -> Iterator[list[_Active]]:
        """``streaming``: every search's Generate is sent the moment the search makes it, as
        its own ``policy.generate`` call on a worker thread (the server batches the calls of
        all searches continuously), so a search whose answer is back goes on at once instead
        of waiting for the slowest request of a round. Score requests queue and go to the
        scorer together, one scorer call at a time (a value model batches best in one call).
        Yields the searches that finished, as they finish. The answers equal ``rounds``':
        each search's samples are seeded by its own key and request index."""
        callers = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="engine")
        scorer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-scorer")
        in_flight: dict[Future, tuple[str, list[_Active], Any]] = {}
        to_score: list[_Active] = []
        try:
            while True:
                finished = self._fill(active, source)
                for search in active:
                    if search.result is None and not search.sent:
                        self._send(search, callers, in_flight, to_score)
                finished += [search for search in active if search.result is not None]
                active[:] = [search for search in active if search.result is None]
                if finished:
                    yield finished
                    continue
                if to_score and not any(kind == "score" for kind, _, _ in in_flight.values()):
                    todo, owners = self._to_score(to_score)
                    future = scorer.submit(self._call_scorer, todo, list(to_score))
                    in_flight[future] = ("score", list(to_score), (todo, owners))
                    to_score.clear()
                if not in_flight:
                    if active:  # cannot happen: every active search has a request out
                        raise SearchError(f"searches {[a.key for a in active]} are stuck")
                    return
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                self.stats["rounds"] += 1
                for future in done:
                    kind, group, extra = in_flight.pop(future)
                    if kind == "generate":
                        outputs, seconds = future.result()
                        self._hand_outputs(extra, group, outputs, seconds)
                    else:
                        values, seconds = future.result()
                        self._hand_values(group, *extra, values, seconds)
                    for search in group:
                        search.sent = False
                        self._advance(search)
        finally:
            for future in in_flight:
                future.cancel()
            callers.shutdown(wait=False, cancel_futures=True)
            scorer.shutdown(wait=False, cancel_futures=True)

    def _send(self, search: _Active, callers: ThreadPoolExecutor,
              in_flight: dict[Future, tuple[str, list[_Active], Any]],
              to_score: list[_Active]) -> None:
        """Streaming: answer the search's empty requests, then send its Generate to a worker
        thread or queue its Score."""
        while search.result is None and _is_empty(search.pending):
            search.answer = []
            self._advance(search)
        if search.result is not None:
            return
        search.sent = True
        if isinstance(search.pending, Generate):
            params = dataclasses.replace(search.pending.params, seed=None)
            future = callers.submit(self._call_policy, params, [search])
            in_flight[future] = ("generate", [search], params)
        else:
            to_score.append(search)

    # ------------------------------------------------------------------ one search
    def _fill(self, active: list[_Active], source: "_JobSource") -> list[_Active]:
        """Start jobs until ``concurrency`` are active or the source runs dry.

        Searches that return before asking anything are not added to ``active``.

        Returns:
            The searches that finished right away.
        """
        finished: list[_Active] = []
        while len(active) < self.concurrency:
            job = source.take()
            if job is None:
                break
            search = self._start(*job)
            (active if search.result is None else finished).append(search)
        return finished

    def _start(self, key: str, gen: SearchGen) -> _Active:
        """Register a job and advance it to its first request (or its result)."""
        search = _Active(key=key, gen=gen, started=time.perf_counter())
        self._advance(search)
        return search

    def _advance(self, active: _Active) -> None:
        """Send the search its answer; store its next request, or its finished result."""
        answer, active.answer = active.answer, None
        try:
            request = active.gen.send(answer)
        except StopIteration as stop:
            self._finish(active, stop.value)
            return
        except Exception as exc:
            raise SearchError(
                f"search {active.key!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(request, (Generate, Score)):
            active.gen.close()
            raise SearchError(
                f"search {active.key!r} yielded {type(request).__name__}; "
                "expected a Generate or Score request"
            )
        active.pending = request
        active.request_index += 1

    def _finish(self, active: _Active, result: Any) -> None:
        if not isinstance(result, SearchResult):
            raise SearchError(
                f"search {active.key!r} returned {type(result).__name__}, not a SearchResult"
            )
        active.costs.wall_seconds = time.perf_counter() - active.started
        result.costs = active.costs
        active.result = result
        active.pending = None
        self.stats["questions"] += 1

    # ------------------------------------------------------------------ one round
    def _round(self, active: list[_Active]) -> list[_Active]:
        """Answer every pending request with as few backend calls as possible.

        A round has two phases: first every pending ``Generate`` (one policy call per
        distinct sampling settings), then every pending ``Score``, including those that the
        generations just answered led to. So all searches stay in step (generate, then
        score) and each policy call carries every search that needs the policy, instead of
        the searches splitting into cohorts that alternate between half-empty calls.
        Requests with nothing in them are answered at once, without a backend call.

        Returns:
            The searches that finished in this round, in ``active`` order.
        """
        self.stats["rounds"] += 1
        for phase in (Generate, Score):
            self._answer_empty(active)
            pending = [a for a in active if a.result is None and isinstance(a.pending, phase)]
            if not pending:
                continue
            if phase is Generate:
                groups: dict[SamplingParams, list[_Active]] = {}
                for search in pending:
                    params = dataclasses.replace(search.pending.params, seed=None)
                    groups.setdefault(params, []).append(search)
                for params, group in groups.items():
                    self._generate(params, group)
            else:
                self._score(pending)
            for search in pending:
                self._advance(search)
        return [search for search in active if search.result is not None]

    def _answer_empty(self, active: list[_Active]) -> None:
        """Answer requests that ask for nothing (no prompts, no items) until none is left."""
        for search in active:
            while search.result is None and _is_empty(search.pending):
                search.answer = []
                self._advance(search)

    def _generate(self, params: SamplingParams, group: list[_Active]) -> None:
        """One ``policy.generate`` call for the prompts of ``group``; hand the outputs back."""
        self._hand_outputs(params, group, *self._call_policy(params, group))

    def _call_policy(
        self, params: SamplingParams, group: list[_Active]
    ) -> tuple[list[GenerationOutput], float]:
        """The ``policy.generate`` call for the prompts of ``group`` (touches no engine
        state: streaming runs it on a worker thread); (outputs, seconds)."""
        prompts = [prompt for search in group for prompt in _prompts(search)]
        seeds = [seed for search in group for seed in self._row_seeds(search)]
        start = time.perf_counter()
        outputs = self.policy.generate(prompts, params, seeds=seeds)
        return outputs, time.perf_counter() - start

    def _hand_outputs(self, params: SamplingParams, group: list[_Active],
                      outputs: list[GenerationOutput], seconds: float) -> None:
        """Count a policy call and give each search of ``group`` its outputs."""
        prompts = sum(len(_prompts(search)) for search in group)
        self.stats["policy_seconds"] += seconds
        self.stats["policy_calls"] += 1
        self.stats["policy_prompts"] += prompts
        _check_outputs(outputs, prompts, params.n, group)
        offset = 0
        for search in group:
            count = len(_prompts(search))
            mine = list(outputs[offset : offset + count])
            offset += count
            self._charge_generation(search, mine)
            search.answer = mine

    def _charge_generation(self, search: _Active, outputs: list[GenerationOutput]) -> None:
        tokens = sum(c.num_tokens for out in outputs for c in out.completions)
        prompt_tokens = sum(out.prompt_tokens for out in outputs)
        search.costs.policy_calls += 1
        search.costs.policy_tokens += tokens
        search.costs.prompt_tokens += prompt_tokens
        self.stats["policy_tokens"] += tokens
        self.stats["prompt_tokens"] += prompt_tokens

    def _score(self, group: list[_Active]) -> None:
        """One ``scorer.score`` call for the items of ``group``; hand the values back."""
        todo, owners = self._to_score(group)
        self._hand_values(group, todo, owners, *self._call_scorer(todo, group))

    def _to_score(
        self, group: list[_Active]
    ) -> tuple[list[tuple[str, tuple[str, ...]]], list[_Active]]:
        """The items of ``group`` to score: each search's distinct items that its memo does
        not hold, and the search each belongs to."""
        if self.scorer is None:
            keys = ", ".join(repr(search.key) for search in group[:3])
            raise SearchError(
                f"search {keys} asked to Score but the engine has no value scorer; "
                "configure a PRM (value scorer) for this search method"
            )
        todo: list[tuple[str, tuple[str, ...]]] = []
        owners: list[_Active] = []
        for search in group:
            if not self.cache_values:
                search.values.clear()
            for item in dict.fromkeys(_items(search)):
                if item not in search.values:
                    todo.append(item)
                    owners.append(search)
        return todo, owners

    def _call_scorer(
        self, todo: list[tuple[str, tuple[str, ...]]], group: list[_Active]
    ) -> tuple[list[float], float]:
        """The ``scorer.score`` call for ``todo`` (none when it is empty; touches no engine
        state: streaming runs it on a worker thread); (values, seconds)."""
        if not todo:
            return [], 0.0
        start = time.perf_counter()
        values = list(self.scorer.score(todo))  # type: ignore[union-attr]
        return values, time.perf_counter() - start

    def _hand_values(self, group: list[_Active], todo: list[tuple[str, tuple[str, ...]]],
                     owners: list[_Active], values: list[float], seconds: float) -> None:
        """Count a scorer call, fill the memos and give each search of ``group`` its
        values."""
        if todo:
            self.stats["scorer_seconds"] += seconds
            self.stats["scorer_calls"] += 1
            self.stats["scorer_items"] += len(todo)
        if len(values) != len(todo):
            raise SearchError(
                f"scorer returned {len(values)} values for {len(todo)} items "
                f"(searches {[search.key for search in group]})"
            )
        scored: dict[str, int] = {}
        for item, value, search in zip(todo, values, owners):
            search.values[item] = float(value)
            scored[search.key] = scored.get(search.key, 0) + 1
        for search in group:
            items = _items(search)
            search.answer = [search.values[item] for item in items]
            self.stats["scorer_cache_hits"] += len(items) - scored.get(search.key, 0)
            if scored.get(search.key):
                search.costs.scorer_calls += 1
                search.costs.prm_calls += scored[search.key]

    # ------------------------------------------------------------------ helpers
    def _row_seeds(self, search: _Active) -> list[int]:
        """Row seeds of the pending Generate's prompts: ``derive_seed(request seed, j)``
        for prompt ``j``, the request seed being ``derive_seed(engine seed, key, index)``."""
        request_seed = derive_seed(self.seed, search.key, search.request_index)
        return [derive_seed(request_seed, j) for j in range(len(_prompts(search)))]

    def _update_overhead(self, watch: _Stopwatch) -> None:
        """Fold the stopwatch into ``total_seconds`` and recompute ``overhead_share``."""
        self.stats["total_seconds"] += watch.seconds
        watch.seconds = 0.0
        total = self.stats["total_seconds"]
        inside = self.stats["policy_seconds"] + self.stats["scorer_seconds"]
        self.stats["overhead_share"] = min(1.0, max(0.0, 1.0 - inside / total)) if total else 0.0


def _is_empty(request: Any) -> bool:
    if isinstance(request, Generate):
        return not request.prompts
    if isinstance(request, Score):
        return not request.items
    return False


def _prompts(search: _Active) -> tuple[str, ...]:
    return cast(Generate, search.pending).prompts


def _items(search: _Active) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return cast(Score, search.pending).items


def _check_outputs(
    outputs: list[GenerationOutput], num_prompts: int, n: int, group: list[_Active]
) -> None:
    """Raise if the backend broke the protocol (wrong number of outputs or completions)."""
    keys = [search.key for search in group]
    if len(outputs) != num_prompts:
        raise SearchError(
            f"policy returned {len(outputs)} outputs for {num_prompts} prompts (searches {keys})"
        )
    for out in outputs:
        if len(out.completions) != n:
            raise SearchError(
                f"policy returned {len(out.completions)} completions, expected n={n} "
                f"(searches {keys})"
            )

"""Choosing one of N sampled solutions, and a curve's value at given policy tokens.

A sampled solution is judged by the world's step parser (:func:`judge_solution`, a
:class:`SampledPath`) and valued by the PRM. The sample-selection rules read the samples of
ONE question, never its gold answer (:data:`RULES`):

* ``sc``, self-consistency: majority vote over the answers of legal finished paths;
* ``best_of_n``, PRM best-of-N by the last step's value (the value of the whole path);
* ``best_of_n_prod``, PRM best-of-N by the product of the step values, the paper's
  PRM+best-of-N (App. E.3): score = prod_k v_k (:func:`product_value`);
* ``weighted_vote``, SC + value: each legal finished path votes with its last value.

``pass`` (pass@N, whether any of the N is correct) is no rule but the verifier's ceiling.

One sampling pass serves every N. ``search=sampled`` (:func:`rest_mcts.search.baselines.sampled`)
draws n solutions of a question in one Generate request, and a backend draws each of a row's
samples from that row's own seeded stream, so the first N <= n of them are a sample of size N:
:func:`judge_first` applies the rules to the first N, :func:`sample_curve` to each N of a grid
(:func:`sample_grid`), with the mean policy tokens the first N cost. :func:`at_tokens` reads
such a curve at another method's tokens (MCTS*'s), interpolating in log tokens.
"""

from __future__ import annotations

import bisect
import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from rest_mcts.backends.base import Completion
from rest_mcts.prompts import split_steps
from rest_mcts.worlds.base import Question, World


# ---------------------------------------------------------------------------- judged samples
@dataclass(frozen=True)
class SampledPath:
    """One sampled full solution (or continuation of a partial path), judged by the world.

    Attributes:
        text: the generated text.
        steps: the path: the steps it continues (none for a whole solution), then the
            text's legal steps (cut before the first illegal step).
        finished: whether the legal prefix is a finished path.
        answer: the answer the finished path states (None otherwise).
        error: why the first illegal step is illegal ("" when every step is legal).
        tokens: policy tokens the sample cost.
        finish_reason: the backend's finish reason.
        value: the value model's score of ``steps`` (None when not scored).
        step_values: the value model's score of each prefix ``steps[:k]``, k = 1..len(steps)
            (``()`` when the steps were not scored one by one); the last is ``value``.
    """

    text: str
    steps: tuple[str, ...]
    finished: bool
    answer: str | None
    error: str
    tokens: int
    finish_reason: str
    value: float | None = None
    step_values: tuple[float, ...] = ()

    @property
    def votes(self) -> bool:
        """Whether this path takes part in answer voting."""
        return self.finished and self.answer is not None

    def record(self) -> dict[str, Any]:
        """JSON-able record of the sample."""
        return {
            "text": self.text,
            "steps": list(self.steps),
            "finished": self.finished,
            "answer": self.answer,
            "error": self.error,
            "tokens": self.tokens,
            "finish_reason": self.finish_reason,
            "value": self.value,
            "step_values": list(self.step_values),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "SampledPath":
        """The path of a :meth:`record` (a missing text, error or finish reason reads as "",
        as in the rows of results.jsonl, which leave the text to the tree file)."""
        return cls(
            text=record.get("text", ""),
            steps=tuple(record["steps"]),
            finished=bool(record["finished"]),
            answer=record["answer"],
            error=record.get("error", ""),
            tokens=int(record["tokens"]),
            finish_reason=record.get("finish_reason", ""),
            value=None if record.get("value") is None else float(record["value"]),
            step_values=tuple(float(v) for v in record.get("step_values") or ()),
        )


def judge_solution(
    question: Question,
    world: World,
    completion: Completion,
    value: float | None = None,
    prefix: Sequence[str] = (),
) -> SampledPath:
    """Split a generated solution into steps and judge them with the world's parser.

    The path is cut at its first illegal step (steps after a finished path are illegal).

    Args:
        question: the question.
        world: the step parser.
        completion: the generated full solution, or the continuation of ``prefix``.
        value: its value, if already known.
        prefix: the legal unfinished path the completion continues (none: a whole solution).

    Returns:
        The judged :class:`SampledPath` (its steps start with ``prefix``).
    """
    legal: list[str] = list(prefix)
    finished, answer, error = False, None, ""
    for step in split_steps(completion.text):
        check = world.check_step(question, legal, step)
        if not check.legal:
            error = check.error or "illegal step"
            break
        legal.append(step)
        finished, answer = check.finished, check.answer if check.finished else None
    return SampledPath(
        text=completion.text,
        steps=tuple(legal),
        finished=finished,
        answer=answer,
        error=error,
        tokens=completion.num_tokens,
        finish_reason=completion.finish_reason,
        value=value,
    )


def step_prefixes(paths: Iterable[SampledPath]) -> list[tuple[str, ...]]:
    """The distinct non-empty legal step prefixes ``steps[:k]`` of ``paths``, first seen
    first: what scoring every step of every path asks of the value model."""
    seen: dict[tuple[str, ...], None] = {}
    for path in paths:
        for k in range(1, len(path.steps) + 1):
            seen.setdefault(path.steps[:k])
    return list(seen)


# ---------------------------------------------------------------------------- the rules
def vote(
    paths: Sequence[SampledPath], weighted: bool = False
) -> tuple[str | None, dict[str, float]]:
    """Answer voting over legal finished paths.

    Args:
        paths: the judged samples.
        weighted: each path votes with its value (else with 1).

    Returns:
        The winning answer (None when no path votes; ties: the answer seen first) and the
        tally per answer, in first-seen order.
    """
    tally: dict[str, float] = {}
    for path in paths:
        if path.votes:
            weight = (path.value or 0.0) if weighted else 1.0
            tally[path.answer] = tally.get(path.answer, 0.0) + weight  # type: ignore[index]
    winner = max(tally, key=tally.__getitem__) if tally else None
    return winner, tally


def last_value(path: SampledPath) -> float:
    """A path's value: that of its last step (unscored: 0)."""
    return path.value or 0.0


def product_value(path: SampledPath) -> float:
    """The paper's PRM+best-of-N score (App. E.3): prod_k v_k over the path's step values;
    0 for a path without scored steps (an empty product must not beat a real path)."""
    return math.prod(path.step_values) if path.step_values else 0.0


def best_path(
    paths: Sequence[SampledPath], score: Callable[[SampledPath], float] = last_value
) -> SampledPath:
    """The highest-scoring path (``score``: by default the value; ties: the first)."""
    return max(paths, key=score)


def majority_pick(paths: Sequence[SampledPath]) -> SampledPath:
    """Self-consistency: the first path stating the majority answer; with no finished path,
    the first sample."""
    winner, _ = vote(paths)
    if winner is None:
        return paths[0]
    return next(p for p in paths if p.votes and p.answer == winner)


def best_of_n_pick(
    paths: Sequence[SampledPath], score: Callable[[SampledPath], float] = last_value
) -> SampledPath:
    """Best-of-N: the best legal finished path by ``score`` (fallback: the best of all,
    which is then unfinished). Ties go to the first sample."""
    return best_path([p for p in paths if p.votes] or list(paths), score)


def best_of_n_prod_pick(paths: Sequence[SampledPath]) -> SampledPath:
    """Best-of-N by the product of the step values (:func:`product_value`)."""
    return best_of_n_pick(paths, product_value)


def weighted_vote_pick(paths: Sequence[SampledPath]) -> SampledPath:
    """PRM-weighted vote: each legal finished path votes with its value; the best-valued path
    stating the winning answer (fallback with no finished path: the best-valued path)."""
    winner, _ = vote(paths, weighted=True)
    if winner is None:
        return best_path(paths)
    return best_path([p for p in paths if p.votes and p.answer == winner])


# name -> rule; the names are the loop's column prefixes (rest_mcts.loop.evaluate)
RULES: dict[str, Callable[[Sequence[SampledPath]], SampledPath]] = {
    "sc": majority_pick,
    "best_of_n": best_of_n_pick,
    "best_of_n_prod": best_of_n_prod_pick,
    "weighted_vote": weighted_vote_pick,
}
PASS = "pass"  # pass@N: any of the N correct (uses the gold: a ceiling, no rule)
CURVES = (*RULES, PASS)


def select_first(paths: Sequence[SampledPath], n: int) -> dict[str, SampledPath]:
    """Each rule's choice among the first ``n`` samples.

    Raises:
        ValueError: unless 1 <= n <= len(paths).
    """
    if not 1 <= n <= len(paths):
        raise ValueError(f"N={n} must be in [1, {len(paths)}] (the samples drawn)")
    head = list(paths[:n])
    return {rule: pick(head) for rule, pick in RULES.items()}


def judge_first(paths: Sequence[SampledPath], correct: Sequence[bool], n: int) -> dict[str, bool]:
    """Whether each rule's choice among the first ``n`` samples is correct (``correct[i]``:
    sample i's verdict), and ``pass``: whether any of them is.

    Raises:
        ValueError: unless 1 <= n <= len(paths) == len(correct).
    """
    if len(correct) != len(paths):
        raise ValueError(f"{len(correct)} verdicts for {len(paths)} samples")
    chosen = select_first(paths, n)
    out = {rule: bool(correct[_index(paths, path)]) for rule, path in chosen.items()}
    out[PASS] = any(correct[:n])
    return out


def _index(paths: Sequence[SampledPath], path: SampledPath) -> int:
    return next(i for i, p in enumerate(paths) if p is path)


# ---------------------------------------------------------------------------- the N curve
def sample_grid(n_max: int) -> tuple[int, ...]:
    """The N of the curve: 1, 2, 4, 8, ... below ``n_max``, then ``n_max``.

    >>> sample_grid(12)
    (1, 2, 4, 8, 12)
    """
    if n_max < 1:
        raise ValueError(f"n_max={n_max} must be >= 1")
    grid = [1 << k for k in range(n_max.bit_length()) if 1 << k < n_max]
    return (*grid, int(n_max))


@dataclass(frozen=True)
class GridPoint:
    """The rules at N samples, over a set of questions.

    Attributes:
        n: N, the first samples of each question used.
        tokens: mean policy tokens of those N samples per question.
        acc: accuracy of each rule (:data:`RULES`) and ``pass`` (pass@N).
        prm_calls: mean distinct step prefixes among the N (what the product rule scores).
        path_prm_calls: mean distinct paths among the N (what the last-value rules score).
    """

    n: int
    tokens: float
    acc: dict[str, float] = field(default_factory=dict)
    prm_calls: float = 0.0
    path_prm_calls: float = 0.0


def sample_curve(
    questions: Sequence[tuple[Sequence[SampledPath], Sequence[bool]]], grid: Iterable[int]
) -> list[GridPoint]:
    """Every rule at each N of ``grid`` over ``questions`` (each: its samples and their
    verdicts), using the first N samples of each question."""
    if not questions:
        return []
    points = []
    for n in grid:
        verdicts = [judge_first(paths, correct, n) for paths, correct in questions]
        points.append(GridPoint(
            n=int(n),
            tokens=statistics.fmean(sum(p.tokens for p in paths[:n]) for paths, _ in questions),
            acc={c: statistics.fmean(v[c] for v in verdicts) for c in CURVES},
            prm_calls=statistics.fmean(len(step_prefixes(paths[:n])) for paths, _ in questions),
            path_prm_calls=statistics.fmean(
                len({p.steps for p in paths[:n] if p.steps}) for paths, _ in questions),
        ))
    return points


# ---------------------------------------------------------------------------- results rows
def judge_samples(records: Iterable[Mapping[str, Any]], is_correct: Callable) -> list[dict]:
    """The samples as a results.jsonl row stores them: each record without its text (the
    tree file keeps it) and with ``correct`` (``is_correct(steps)`` of a finished path)."""
    out = []
    for record in records:
        row = {k: v for k, v in record.items() if k != "text"}
        row["correct"] = bool(record["finished"] and is_correct(list(record["steps"])))
        out.append(row)
    return out


def row_samples(row: Mapping[str, Any]) -> tuple[list[SampledPath], list[bool]]:
    """The judged samples of a results.jsonl row and their verdicts."""
    samples = row["samples"]
    return [SampledPath.from_record(s) for s in samples], [bool(s["correct"]) for s in samples]


def _key(prefix: str, what: str, n: int) -> str:
    return f"{prefix}/{what}@N={n}"


def sample_metrics(
    rows: Iterable[Mapping[str, Any]], prefix: str, grid: Iterable[int] | None = None
) -> dict[str, float]:
    """The N curve of the rows that carry samples (``search=sampled``), as run metrics:
    ``<prefix>/<rule>_acc@N=n`` for each rule and ``pass``,
    ``<prefix>/policy_tokens_per_question@N=n``, ``<prefix>/prm_calls_per_question@N=n``
    (step prefixes) and ``<prefix>/path_prm_calls_per_question@N=n`` at each N of ``grid``
    (default :func:`sample_grid` of the fewest samples a row has; larger N are left out);
    ``{}`` when no row carries samples."""
    questions = [row_samples(r) for r in rows if r.get("samples")]
    if not questions:
        return {}
    n = min(len(paths) for paths, _ in questions)
    grid = sample_grid(n) if grid is None else sorted({int(g) for g in grid if 1 <= g <= n})
    metrics: dict[str, float] = {}
    for point in sample_curve(questions, grid):
        for curve in CURVES:
            metrics[_key(prefix, f"{curve}_acc", point.n)] = point.acc[curve]
        metrics[_key(prefix, "policy_tokens_per_question", point.n)] = point.tokens
        metrics[_key(prefix, "prm_calls_per_question", point.n)] = point.prm_calls
        metrics[_key(prefix, "path_prm_calls_per_question", point.n)] = point.path_prm_calls
    return metrics


def read_sample_curve(metrics: Mapping[str, Any], prefix: str) -> list[GridPoint]:
    """The grid points of :func:`sample_metrics` back from run metrics, by N ([] when the
    metrics hold none)."""
    pattern = re.compile(re.escape(f"{prefix}/policy_tokens_per_question@N=") + r"(\d+)$")
    ns = sorted(int(m.group(1)) for key in metrics if (m := pattern.match(key)))
    return [GridPoint(
        n=n,
        tokens=float(metrics[_key(prefix, "policy_tokens_per_question", n)]),
        acc={c: float(metrics[_key(prefix, f"{c}_acc", n)]) for c in CURVES},
        prm_calls=float(metrics[_key(prefix, "prm_calls_per_question", n)]),
        path_prm_calls=float(metrics[_key(prefix, "path_prm_calls_per_question", n)]),
    ) for n in ns]


# ---------------------------------------------------------------------------- equal tokens
@dataclass(frozen=True)
class AtTokens:
    """A curve read at some tokens.

    Attributes:
        value: the interpolated value, or the nearest end's value outside the curve.
        tokens: where it was read: the target inside the curve, else the nearest end's tokens.
        inside: whether the target lies within the curve's token range (no extrapolation).
    """

    value: float
    tokens: float
    inside: bool


def at_tokens(tokens: Sequence[float], values: Sequence[float], target: float) -> AtTokens:
    """A curve's value at ``target`` policy tokens: linear interpolation in log(tokens)
    between the two curve points that bracket the target (exact at a point; never N rounded
    up). Outside the curve there is no extrapolation: the nearest end's value and tokens, with
    ``inside`` false (above the last point: the largest N spent fewer tokens than the target).

    Points are taken in token order; points with equal tokens count as one, with the mean of
    their values. Tokens (and the target) below one count as one.

    Raises:
        ValueError: for no points, or ``tokens`` and ``values`` of different lengths.
    """
    if len(tokens) != len(values) or not tokens:
        raise ValueError(f"a curve needs points: {len(tokens)} tokens, {len(values)} values")
    merged: dict[float, list[float]] = {}
    for x, y in zip(tokens, values):
        merged.setdefault(max(1.0, float(x)), []).append(float(y))
    xs = sorted(merged)
    ys = [statistics.fmean(merged[x]) for x in xs]
    target = max(1.0, float(target))
    if target < xs[0]:
        return AtTokens(ys[0], xs[0], False)
    if target > xs[-1]:
        return AtTokens(ys[-1], xs[-1], False)
    i = bisect.bisect_left(xs, target)
    if xs[i] == target:
        return AtTokens(ys[i], target, True)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    t = (math.log(target) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return AtTokens(y0 + t * (y1 - y0), target, True)

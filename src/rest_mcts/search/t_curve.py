"""The accuracy-vs-T curve measured inside one MCTS* run (``search.t_checkpoints``).

MCTS* records, after t = 5, 10, 20, ... of its T iterations, the answer it would return if T
were t (the same rule as its final answer: the stop node, or ``choose_answer`` on the tree as
it stands), with the policy tokens spent so far. Since a question's samples depend only on
(run seed, question, request index) (:mod:`rest_mcts.search.engine`), the record at t is what
a separate run with ``search.iterations=t`` returns, so one search at T gives the whole curve.
One difference: a record taken during the search keeps an unfinished answer as it stands
(what ``search.finish=as_is`` returns), while the run completes its own final answer
(``search.finish=complete``: one more Generate request, not spent per checkpoint).
A search that stops early (v >= l), or runs out of nodes, keeps its answer at every later
checkpoint; the last checkpoint is always T itself, i.e. the run's own answer (completed).

This module holds the pieces around the search: the checkpoint schedule, the token meter,
the record type, judging a curve against the gold answer (after the search, like the final
answer) and the run-level metrics ``<prefix>/acc@T=t`` and
``<prefix>/policy_tokens_per_question@T=t``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from rest_mcts.search.requests import Generate, SearchGen


def checkpoint_schedule(checkpoints: Sequence[int], iterations: int) -> tuple[int, ...]:
    """The iteration counts to record: the configured ones below T, then T itself.

    An empty ``checkpoints`` turns the curve off (returns ``()``).

    >>> checkpoint_schedule((5, 10, 20, 50), 8)
    (5, 8)
    """
    if not checkpoints:
        return ()
    return tuple(sorted({int(t) for t in checkpoints if t < iterations} | {int(iterations)}))


@dataclass(frozen=True)
class TCheckpoint:
    """What the search would answer after ``t`` iterations.

    Attributes:
        t: iterations (the T of a run that stopped here).
        steps: the chosen path's steps (judged afterwards; not written to results.jsonl).
        answer: the answer that path states, or None.
        finished: whether that path is finished.
        value: its value.
        policy_tokens: policy tokens generated so far (the engine's count of the same calls).
    """

    t: int
    steps: tuple[str, ...]
    answer: str | None
    finished: bool
    value: float
    policy_tokens: int

    def __post_init__(self) -> None:
        if self.t < 1 or self.policy_tokens < 0:
            raise ValueError(f"bad checkpoint t={self.t}, policy_tokens={self.policy_tokens}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps": list(self.steps)}


class TokenMeter:
    """Policy tokens handed to one search so far (every completion of every Generate answer:
    exactly what the engine charges to ``costs.policy_tokens``)."""

    def __init__(self) -> None:
        self.tokens = 0


def metered(gen: SearchGen, meter: TokenMeter) -> SearchGen:
    """Pass ``gen``'s requests through, adding the tokens of each Generate answer to
    ``meter`` before ``gen`` sees it; returns ``gen``'s result."""
    answer: Any = None
    while True:
        try:
            request = gen.send(answer)
        except StopIteration as stop:
            return stop.value
        answer = yield request
        if isinstance(request, Generate):
            meter.tokens += sum(c.num_tokens for out in answer for c in out.completions)


def judge_curve(curve: Iterable[dict], is_correct: Any) -> list[dict[str, Any]]:
    """The curve as results.jsonl stores it: per checkpoint t, prediction, finished, value,
    policy_tokens and ``correct`` (``is_correct(steps)`` on a finished path; the steps are
    dropped from the row, the final answer's steps are already in it)."""
    rows = []
    for point in curve:
        rows.append({
            "t": int(point["t"]),
            "prediction": point["answer"],
            "finished": bool(point["finished"]),
            "value": float(point["value"]),
            "policy_tokens": int(point["policy_tokens"]),
            "correct": bool(point["finished"] and is_correct(list(point["steps"]))),
        })
    return rows


def curve_metrics(rows: Iterable[dict], prefix: str) -> dict[str, float]:
    """Run-level curve: ``<prefix>/acc@T=t`` and ``<prefix>/policy_tokens_per_question@T=t``
    for every t recorded, averaged over the rows that carry a ``t_curve`` (all of them unless
    a resumed folder mixes older rows); ``{}`` when none does."""
    by_t: dict[int, list[dict]] = {}
    for row in rows:
        for point in row.get("t_curve") or ():
            by_t.setdefault(int(point["t"]), []).append(point)
    metrics: dict[str, float] = {}
    for t in sorted(by_t):
        points = by_t[t]
        metrics[f"{prefix}/acc@T={t}"] = sum(p["correct"] for p in points) / len(points)
        metrics[f"{prefix}/policy_tokens_per_question@T={t}"] = (
            sum(p["policy_tokens"] for p in points) / len(points))
    return metrics

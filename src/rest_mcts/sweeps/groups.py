"""A sweep's jobs grouped by every swept key except the seed, with each metric's mean,
sample standard deviation and count over the seeds (what the summary and the plots show), and
each accuracy's correct answers pooled over the seeds with their Wilson interval
(:func:`pooled_accuracy`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
import re
from typing import Sequence

from rest_mcts.figures.intervals import Interval, wilson
from rest_mcts.sweeps.jobs import Job, Sweep

SEED_KEY = "seed"


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (nan for fewer than 2 values) and count."""

    mean: float
    std: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Stat":
        n = len(values)
        if n == 0:
            return cls(math.nan, math.nan, 0)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
        return cls(mean, std, n)


@dataclass
class Group:
    """The jobs that share every swept value but the seed.

    Attributes:
        values: the swept keys' values (``seed`` excluded).
        jobs: its jobs, any status.
        stats: per metric, over its ok jobs.
        tally: jobs per status and the seeds, for a group read back from ``summary.csv``
            (no jobs: :mod:`rest_mcts.sweeps.from_summary`); empty otherwise.
    """

    values: dict[str, str]
    jobs: list[Job] = field(default_factory=list)
    stats: dict[str, Stat] = field(default_factory=dict)
    tally: dict[str, str] = field(default_factory=dict)

    def count(self, status: str) -> int:
        if self.tally:
            return int(self.tally.get(status) or 0)
        return sum(job.status == status for job in self.jobs)

    def size(self) -> int:
        """How many jobs the group has (any status)."""
        return int(self.tally.get("jobs") or 0) if self.tally else len(self.jobs)

    def seeds(self) -> str:
        if self.tally:
            return self.tally.get("seeds", "")
        return " ".join(job.values.get(SEED_KEY, "") for job in self.jobs
                        if job.status == "ok" and SEED_KEY in job.values)


# An accuracy: ``<split>/acc``, ``<split>/<what>_acc``, either at an in-run T checkpoint.
_ACCURACY = re.compile(r"^(?P<prefix>.+)/(?:\w+_)?acc(?:@T=\d+)?$")


def questions_metric(metric: str) -> str | None:
    """The metric that counts the questions behind the accuracy ``metric``
    (``eval/acc@T=5`` -> ``eval/num_questions``); None for a metric that is no accuracy."""
    match = _ACCURACY.match(metric)
    return f"{match['prefix'].split('/')[0]}/num_questions" if match else None


def pooled_accuracy(group: Group, metric: str) -> Interval | None:
    """The correct answers of the accuracy ``metric`` summed over the group's seeds, out of
    their questions, with its Wilson interval (:func:`rest_mcts.figures.intervals.wilson`).

    From the jobs: each seed's count is round(accuracy x its questions). From a group read
    back from ``summary.csv`` (no jobs): mean x seeds x questions, which needs every seed to
    have had the same number of questions (its std 0). None when the questions are unknown.
    """
    questions = questions_metric(metric)
    if questions is None:
        return None
    ok = [job for job in group.jobs if job.status == "ok"]
    if ok:
        pairs = [(job.metrics[metric], job.metrics.get(questions, 0.0)) for job in ok
                 if metric in job.metrics]
        if not pairs or any(n < 1 for _, n in pairs):
            return None  # a seed without its question count: no pooled count
        return wilson(sum(round(acc * n) for acc, n in pairs), int(sum(n for _, n in pairs)))
    acc, n = group.stats.get(metric), group.stats.get(questions)
    if acc is None or n is None or not acc.count or n.count != acc.count or n.mean < 1:
        return None
    if not (math.isnan(n.std) or n.std == 0):
        return None  # seeds with different question counts: the sum is not recoverable
    trials = round(n.mean) * acc.count
    return wilson(min(trials, round(acc.mean * trials)), trials)


def sort_key(value: str) -> tuple:
    """Numbers in numeric order, before any other value in text order."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def group_jobs(sweep: Sweep) -> tuple[tuple[str, ...], list[Group], tuple[str, ...]]:
    """Group the jobs by every swept key except ``seed``; stats of every metric per group.
    Returns (group keys, groups in swept-value order, metric names)."""
    keys = tuple(k for k in sweep.swept if k != SEED_KEY)
    groups: dict[tuple[str, ...], Group] = {}
    for job in sweep.jobs:
        values = {k: job.values.get(k, "") for k in keys}
        groups.setdefault(tuple(values.values()), Group(values)).jobs.append(job)
    metrics = tuple(sorted({m for job in sweep.jobs for m in job.metrics}))
    for group in groups.values():
        ok = [job for job in group.jobs if job.status == "ok"]
        group.stats = {m: Stat.of([j.metrics[m] for j in ok if m in j.metrics]) for m in metrics}
    ordered = [groups[k] for k in sorted(groups, key=lambda v: tuple(sort_key(x) for x in v))]
    return keys, ordered, metrics



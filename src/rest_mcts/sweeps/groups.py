"""A sweep's jobs grouped by every swept key except the seed, with each metric's mean,
sample standard deviation and count over the seeds (what the summary and the plots show)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

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
    """

    values: dict[str, str]
    jobs: list[Job] = field(default_factory=list)
    stats: dict[str, Stat] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(job.status == status for job in self.jobs)

    def seeds(self) -> str:
        return " ".join(job.values.get(SEED_KEY, "") for job in self.jobs
                        if job.status == "ok" and SEED_KEY in job.values)


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



"""Read a sweep's summary back from its own ``summary.csv``, to redraw it when the job folders
are gone (:func:`rest_mcts.sweeps.aggregate.redraw`):

    python -m rest_mcts.sweeps.aggregate --from-summary <folder with summary.csv> [--out DIR]

``summary.csv`` holds, per setting, each metric's mean, sample std and count over seeds and
the questions per seed (``<split>/num_questions``); that is all the plots and tables need,
the in-run T curve included (its ``<split>/acc@T=t`` columns). The pooled Wilson interval
is recovered as mean x seeds x questions correct answers out of questions x seeds
(:func:`rest_mcts.sweeps.groups.pooled_accuracy`), exact when every seed had the same number
of questions; otherwise it is left out. Which jobs failed cannot be known any more: summary.md
gives their count only.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from rest_mcts.sweeps.groups import Group, Stat

TALLY = ("jobs", "ok", "failed", "missing", "seeds")


def _number(cell: str) -> float:
    return float(cell) if cell.strip() else math.nan


def read_summary(path: Path) -> tuple[tuple[str, ...], list[Group], tuple[str, ...]]:
    """(swept keys, groups with their stats and tallies, metrics) of a ``summary.csv``.

    Raises:
        ValueError: the file is no summary.csv (no ``jobs`` column).
    """
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or "jobs" not in rows[0]:
        raise ValueError(f"{path} is no sweep summary.csv (no 'jobs' column)")
    header = rows[0]
    keys = tuple(header[:header.index("jobs")])
    metrics = tuple(c[:-len(".mean")] for c in header if c.endswith(".mean"))
    groups = []
    for cells in rows[1:]:
        row = dict(zip(header, cells))
        stats = {}
        for m in metrics:
            count = row.get(f"{m}.count", "").strip()
            stats[m] = Stat(_number(row[f"{m}.mean"]), _number(row.get(f"{m}.std", "")),
                            int(float(count)) if count else 0)
        groups.append(Group({k: row[k] for k in keys}, stats=stats,
                            tally={t: row.get(t, "") for t in TALLY}))
    return keys, groups, metrics

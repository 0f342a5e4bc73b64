"""Redraw a sweep's summary from its own ``summary.csv`` when the job folders are gone.

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

from rest_mcts.sweeps.aggregate import Heading, untrained_line, write_all
from rest_mcts.sweeps.groups import SEED_KEY, Group, Stat
from rest_mcts.tracking.names import UNTRAINED_PRM

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


def heading(folder: Path, keys: tuple[str, ...], groups: list[Group]) -> Heading:
    """summary.md's heading from the tallies (the jobs not ok: a count, no names)."""
    ok, failed, missing = (sum(g.count(s) for g in groups) for s in ("ok", "failed", "missing"))
    seeded = any(len(g.seeds().split()) > 1 for g in groups)
    not_ok = ((f"{failed} failed and {missing} missing jobs (redrawn from summary.csv: "
               "see the original summary for which)",) if failed or missing else ())
    return Heading(folder.resolve().name, sum(g.size() for g in groups), ok, failed, missing,
                   keys + ((SEED_KEY,) if seeded else ()), not_ok)


def untrained_from(groups: list[Group]) -> str:
    """The untrained-PRM note from the mean of ``prm/untrained_head`` per setting."""
    untrained = sum(round(g.stats[UNTRAINED_PRM].mean * g.stats[UNTRAINED_PRM].count)
                    for g in groups if UNTRAINED_PRM in g.stats and g.stats[UNTRAINED_PRM].count)
    return untrained_line(untrained, sum(g.count("ok") for g in groups))


def redraw(folder: str | Path, out: str | Path | None = None, plots: bool = True
           ) -> tuple[Path, ...]:
    """Rewrite summary.csv (with the Wilson columns), t_curve.csv, summary.md and the plots
    of the summary in ``folder`` into ``out`` (default: ``folder``).

    Raises:
        FileNotFoundError: ``folder`` has no summary.csv.
    """
    folder = Path(folder)
    path = folder / "summary.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (--from-summary wants a summary's folder)")
    keys, groups, metrics = read_summary(path)
    target = Path(out) if out is not None else folder
    return write_all(target, heading(folder, keys, groups), keys, groups, metrics,
                     untrained_from(groups), plots)

"""Shared helpers for the experiment scripts: compose the project's real config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("REST_MCTS_ROOT", str(ROOT))
sys.path.insert(0, str(ROOT / "src"))


def compose(*overrides: str):
    """The composed config of `python run.py <overrides>` (without Hydra's run dir)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import rest_mcts  # noqa: F401  (registers the resolvers the defaults list asks: rest.engine)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def busy_share(intervals: list[tuple[float, float]]) -> float:
    """Part of the span (first start to last end) that at least one interval covers: how
    much of a run a server had a request in flight."""
    if not intervals:
        return 0.0
    intervals = sorted(intervals)
    busy, (lo, hi) = 0.0, intervals[0]
    for start, end in intervals[1:]:
        if start > hi:
            busy, lo = busy + hi - lo, start
        hi = max(hi, end)
    busy += hi - lo
    span = max(end for _, end in intervals) - intervals[0][0]
    return busy / span if span else 0.0

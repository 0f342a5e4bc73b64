"""Sweep plots (matplotlib, Agg): a metric against one swept key, and the in-run T curve.

Every point is a group's mean over seeds with the sample standard deviation as error bar
(none for a single seed); one line per value of the other swept keys.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from rest_mcts.sweeps.groups import Group

# Axis labels for the paper's knobs (the rest are labelled by their key).
PAPER_SYMBOLS = {
    "search.alpha": "rollout mixing weight α",
    "search.end_gate": "threshold l",
    "search.branch": "branch b",
    "search.iterations": "iterations T",
    "search.rollout_steps": "rollout steps m",
    "search.exploration_constant": "UCT constant c",
    "stage.iterations": "self-training iterations K",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axis(values: Sequence[str]) -> tuple[list[float], list[str] | None]:
    """x positions: the numbers themselves, or 0, 1, ... with the values as tick labels."""
    try:
        return [float(v) for v in values], None
    except ValueError:
        return list(range(len(values))), list(values)


def _err(std: float) -> float:
    return 0.0 if math.isnan(std) else std


def label(key: str) -> str:
    """``search.alpha (rollout mixing weight α)``."""
    return f"{key} ({PAPER_SYMBOLS[key]})" if key in PAPER_SYMBOLS else key


def plot_against_key(path: Path, key: str, keys: Sequence[str], groups: list["Group"],
                     metrics: Sequence[str], untrained: bool = False) -> Path:
    """One PNG: each of ``metrics`` (a panel each) against ``key``'s values; ``untrained``:
    the title says the PRM was an untrained value head."""
    from rest_mcts.sweeps.groups import sort_key

    plt = _pyplot()
    others = [k for k in keys if k != key]
    lines: dict[tuple[str, ...], list["Group"]] = {}
    for g in groups:
        lines.setdefault(tuple(g.values[k] for k in others), []).append(g)
    order = sorted({g.values[key] for g in groups}, key=sort_key)
    xs_all, ticks = _axis(order)
    x_of = dict(zip(order, xs_all))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4), squeeze=False)
    seeds = sorted({g.stats[m].count for g in groups for m in metrics if g.stats[m].count})
    for ax, metric in zip(axes[0], metrics):
        for other, members in sorted(lines.items()):
            members = sorted(members, key=lambda g: sort_key(g.values[key]))
            pts = [(x_of[g.values[key]], g.stats[metric]) for g in members if g.stats[metric].count]
            if not pts:
                continue
            name = ", ".join(f"{k}={v}" for k, v in zip(others, other)) or None
            ax.errorbar([p[0] for p in pts], [p[1].mean for p in pts],
                        yerr=[_err(p[1].std) for p in pts], marker="o", capsize=4, label=name)
        ax.set_xlabel(label(key))
        ax.set_ylabel(metric)
        if ticks is not None:
            ax.set_xticks(xs_all, ticks)
        ax.grid(alpha=0.3)
        if others:
            ax.legend(fontsize=7)
    n = ", ".join(str(s) for s in seeds) or "0"
    title = f"{label(key)}: mean ± std over seeds (n = {n})"
    if untrained:
        title += "\nUNTRAINED PRM (prm.path unset): its values are noise"
    fig.suptitle(title, fontsize=10, color="firebrick" if untrained else None)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_t_curve(path: Path, keys: Sequence[str], rows: list[dict]) -> Path:
    """One PNG: accuracy and policy tokens per question against T (log axis), one line per
    group and stage, from MCTS*'s in-run checkpoints."""
    plt = _pyplot()
    curves: dict[tuple, list[dict]] = {}
    for r in rows:
        curves.setdefault((r["prefix"], *(r["values"][k] for k in keys)), []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4), squeeze=False)
    for ax, what, ylabel in zip(axes[0], ("acc", "policy_tokens_per_question"),
                                ("accuracy at T", "policy tokens per question at T")):
        for (prefix, *values), points in sorted(curves.items()):
            points = [p for p in sorted(points, key=lambda p: p["T"]) if p.get(what)]
            if not points:
                continue
            name = ", ".join([prefix, *(f"{k}={v}" for k, v in zip(keys, values))])
            ax.errorbar([p["T"] for p in points], [p[what].mean for p in points],
                        yerr=[_err(p[what].std) for p in points], marker="o", capsize=4,
                        label=name)
        ax.set_xscale("log")
        ts = sorted({r["T"] for r in rows})
        ax.set_xticks(ts, [str(t) for t in ts])
        ax.minorticks_off()
        ax.set_xlabel("MCTS* iterations T (checkpoints inside one run)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("T curve: mean ± std over seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

"""Sweep plots (matplotlib, Agg): a metric against one swept key, and the in-run T curve.

Every point is a setting's mean over seeds, its whiskers the sample standard deviation over
seeds (none for a single seed; an accuracy's kept within [0, 1]). Beside each accuracy, a
shaded bar gives the 95% Wilson interval on the correct answers pooled over the seeds
(:func:`rest_mcts.sweeps.groups.pooled_accuracy`). One series per value of the other swept
keys, each with its own colour, marker and dashes, shifted a little sideways so that none
hides another (:mod:`rest_mcts.figures.style`). Axis labels come from the one table,
:func:`rest_mcts.figures.labels.label`; titles say how many questions and seeds each point
stands on.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rest_mcts.figures.labels import label, setting
from rest_mcts.figures.style import LINE_ALPHA, dodge, pyplot, series_style
from rest_mcts.sweeps.groups import Stat, pooled_accuracy, questions_metric, sort_key

if TYPE_CHECKING:
    from rest_mcts.figures.intervals import Interval
    from rest_mcts.sweeps.groups import Group

CAPTION = ("Markers and whiskers: mean ± sample std over seeds (within [0, 1]). Shaded bars: "
           "95% Wilson interval on the correct answers pooled over seeds (seeds share the "
           "questions, so it shows question-sampling error, not seed-to-seed spread).")
UNTRAINED = "UNTRAINED PRM (prm.path unset): its values are noise"


def _axis(values: Sequence[str]) -> tuple[list[float], list[str] | None]:
    """x positions: the numbers themselves, or 0, 1, ... with the values as tick labels."""
    try:
        return [float(v) for v in values], None
    except ValueError:
        return list(range(len(values))), list(values)


def _err(std: float) -> float:
    return 0.0 if math.isnan(std) else std


def basis(stats: Sequence[tuple[Stat, Stat | None]]) -> str:
    """"200 questions × 3 seeds" for (metric, questions) stats of the points of a plot;
    distinct bases joined by " or "; seeds alone where the questions are unknown."""
    found = []
    for metric, questions in stats:
        if not metric.count:
            continue
        seeds = f"{metric.count} seed" + ("s" if metric.count != 1 else "")
        if questions is not None and questions.count and (math.isnan(questions.std)
                                                         or questions.std == 0):
            found.append(f"{questions.mean:.0f} questions × {seeds}")
        else:
            found.append(seeds)
    return " or ".join(dict.fromkeys(found)) or "no points"


def _draw(ax: Any, xs: list[float], stats: list[Stat], cis: list["Interval | None"],
          style: dict[str, Any], name: str | None, ci_x: list[float],
          rate: bool = False) -> None:
    """One series: mean ± std (marker, line, whiskers; clipped to [0, 1] for a ``rate``)
    and, at ``ci_x``, the Wilson bars."""
    low = [_err(s.std) if not rate else min(_err(s.std), s.mean) for s in stats]
    high = [_err(s.std) if not rate else min(_err(s.std), 1 - s.mean) for s in stats]
    ax.errorbar(xs, [s.mean for s in stats], yerr=[low, high], capsize=3,
                markersize=5, linewidth=1.4, alpha=LINE_ALPHA, label=name, zorder=3, **style)
    for x, ci in zip(ci_x, cis):
        if ci is not None:
            ax.plot([x, x], [ci.low, ci.high], color=style["color"], linewidth=6, alpha=0.25,
                    solid_capstyle="butt", zorder=2)


def _finish(fig: Any, path: Path, title: str, untrained: bool, caption: str | None) -> Path:
    if untrained:
        title += "\n" + UNTRAINED
    fig.suptitle(title, fontsize=10, color="firebrick" if untrained else None)
    if caption:  # wrapped to the figure's width (about 15 characters an inch at 7.5 pt)
        text = textwrap.fill(caption, int(fig.get_figwidth() * 15))
        fig.text(0.5, 0.01, text, ha="center", va="bottom", fontsize=7.5, color="0.25")
    fig.tight_layout(rect=(0, 0.07 if caption else 0, 1, 1))
    fig.savefig(path, dpi=150)
    pyplot().close(fig)
    return path


def plot_against_key(path: Path, key: str, keys: Sequence[str], groups: list["Group"],
                     metrics: Sequence[str], untrained: bool = False) -> Path:
    """One PNG: each of ``metrics`` (a panel each) against ``key``'s values, one series per
    value of the other swept keys; ``untrained``: the title says the PRM was an untrained
    value head."""
    plt = pyplot()
    others = [k for k in keys if k != key]
    lines: dict[tuple[str, ...], list["Group"]] = {}
    for g in groups:
        lines.setdefault(tuple(g.values[k] for k in others), []).append(g)
    order = sorted({g.values[key] for g in groups}, key=sort_key)
    xs_all, ticks = _axis(order)
    x_of = dict(zip(order, xs_all))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.6 * len(metrics), 4.4), squeeze=False)
    any_ci = False
    for ax, metric in zip(axes[0], metrics):
        questions = questions_metric(metric)
        for i, (other, members) in enumerate(sorted(lines.items())):
            members = sorted(members, key=lambda g: sort_key(g.values[key]))
            members = [g for g in members if g.stats[metric].count]
            if not members:
                continue
            xs = [x_of[g.values[key]] for g in members]
            shifted = dodge(xs, 2 * i, 2 * len(lines), xs_all)
            cis = [pooled_accuracy(g, metric) for g in members] if questions else []
            any_ci = any_ci or any(ci is not None for ci in cis)
            name = ", ".join(setting(k, v) for k, v in zip(others, other)) or None
            _draw(ax, shifted, [g.stats[metric] for g in members], cis, series_style(i), name,
                  dodge(xs, 2 * i + 1, 2 * len(lines), xs_all), rate=questions is not None)
        ax.set_xlabel(label(key))
        ax.set_ylabel(label(metric))
        ax.set_xticks(xs_all, ticks if ticks is not None else order)
        ax.grid(alpha=0.3)
        if others:
            ax.legend(fontsize=7, framealpha=0.8)
    primary = metrics[0]
    points = basis([(g.stats[primary], g.stats.get(questions_metric(primary) or ""))
                    for g in groups])
    what = " and ".join(label(m) for m in metrics)
    title = f"{what} against {label(key)}\neach point: {points}"
    caption = CAPTION if any_ci else "Markers and whiskers: mean ± sample std over seeds."
    return _finish(fig, path, title, untrained, caption)


def plot_t_curve(path: Path, keys: Sequence[str], rows: list[dict],
                 untrained: bool = False) -> Path:
    """One PNG: accuracy and policy tokens per question against T (log axis), one series
    per setting and stage, from MCTS*'s in-run checkpoints (rows of
    :func:`rest_mcts.sweeps.aggregate.t_curve_table`: ``acc_ci`` the pooled interval)."""
    plt = pyplot()
    curves: dict[tuple, list[dict]] = {}
    for r in rows:
        curves.setdefault((r["prefix"], *(r["values"][k] for k in keys)), []).append(r)
    prefixes = {c[0] for c in curves}
    ts = sorted({r["T"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11.2, 4.6), squeeze=False)
    any_ci = False
    for ax, what in zip(axes[0], ("acc", "policy_tokens_per_question")):
        for i, ((prefix, *values), points) in enumerate(sorted(curves.items())):
            points = [p for p in sorted(points, key=lambda p: p["T"]) if p.get(what)]
            if not points:
                continue
            parts = [setting(k, v) for k, v in zip(keys, values)]
            name = ", ".join(([prefix] if len(prefixes) > 1 else []) + parts) or prefix
            xs = [p["T"] for p in points]
            cis = [p.get("acc_ci") for p in points] if what == "acc" else []
            any_ci = any_ci or any(ci is not None for ci in cis)
            _draw(ax, dodge(xs, 2 * i, 2 * len(curves), ts, log=True),
                  [p[what] for p in points], cis, series_style(i), name,
                  dodge(xs, 2 * i + 1, 2 * len(curves), ts, log=True), rate=what == "acc")
        ax.set_xscale("log")
        ax.set_xticks(ts, [str(t) for t in ts])
        ax.minorticks_off()
        ax.set_xlabel(label("T") + " (checkpoints inside one run)")
        ax.set_ylabel(label(f"eval/{what}") + " at T")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, framealpha=0.8)
    points = basis([(r["acc"], r.get("questions")) for r in rows if r.get("acc")])
    title = f"MCTS* in-run T curve\neach point: {points}"
    caption = CAPTION if any_ci else "Markers and whiskers: mean ± sample std over seeds."
    return _finish(fig, path, title, untrained, caption)

"""Budget curves (the paper's Fig. 2 on Countdown): accuracy against policy tokens per question.

    python experiments/bench_budget.py \\
        --run 0=outputs/loop_runs/countdown-s0-<hash> \\
        --run 1=outputs/loop_runs/countdown-s1-<hash> \\
        --run 2=outputs/loop_runs/countdown-s2-<hash>
    python experiments/bench_budget.py --make --seeds 0 1 2    # make each seed's iteration 0 first
    python experiments/bench_budget.py --report-only ...        # table and plot from cached cells

Per seed, the iteration-0 policy and PRM_0 of a finished loop folder (``--run seed=folder``;
``--make`` runs the loop's iteration 0 through ``run.py`` into ``<out>/loop_s<seed>`` when no
folder is given) search the seed's held-out test questions (the same questions for every
method) with: CoT (greedy); the sample-selection rules -- self-consistency, best-of-N with
the PRM by the last step value and by the product of step values, the PRM-weighted vote, and
pass@N as the ceiling -- at each N of ``--n``, all read from ONE sampling pass of max(N)
solutions per question (``search=sampled``: the first N samples of a question are a sample of
size N; :mod:`rest_mcts.search.selection`); BFS with the PRM (beam widths ``--beam``, MCTS*'s
branch b and step settings, as the loop's BFS) and MCTS* with the paper's settings
(``search=mcts_star``, T iterations ``--iterations``). Sampling uses MCTS*'s temperature, as
the loop's evaluation does. Every (seed, method, budget) cell runs through the loop's own
search path (:func:`rest_mcts.runtime.search_run.run_search`) and is cached as JSON under
``<out>/cells/`` (the sampling pass: one file holding the cells of every rule and N), keyed
by its search config, models, questions and seed: a rerun skips the finished cells (and a
killed cell resumes at its first unanswered question).

Writes experiments/results/bench_budget.md (command, machine load, models, a table of
tokens/question and accuracy, mean +- std over seeds, and MCTS* against the best baseline at
equal tokens: each baseline's curve read at each seed's MCTS* tokens by linear interpolation
in log tokens between the two budgets that bracket them, the loop's own reading,
:func:`rest_mcts.search.selection.at_tokens`) and experiments/results/bench_budget.png (accuracy vs tokens, log x, error bars
on both axes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from _common import ROOT, markdown_table

log = logging.getLogger("bench_budget")

# method -> (label in table and plot, budget knob shown in the table)
METHODS: dict[str, tuple[str, str]] = {
    "cot": ("CoT (greedy)", "-"),
    "self_consistency": ("self-consistency", "N"),
    "best_of_n": ("PRM best-of-N", "N"),
    "best_of_n_prod": ("PRM best-of-N (product)", "N"),
    "weighted_vote": ("PRM-weighted vote", "N"),
    "pass_at_n": ("pass@N (ceiling)", "N"),
    "bfs": ("BFS (PRM)", "beam x b"),
    "mcts_star": ("MCTS*", "T"),
    # variants beyond the paper's MCTS*, for budgets the paper's tree cannot spend
    "mcts_star_full": ("MCTS* (no early stop)", "T"),
    "mcts_star_widen": ("MCTS* widen", "T"),
}
# with a budget curve
BASELINES = ("self_consistency", "best_of_n", "best_of_n_prod", "weighted_vote", "bfs")
CEILING = "pass_at_n"  # shown at MCTS*'s tokens, never the best baseline (it uses the gold)
# the cells read from the one sampling pass: method -> rule of rest_mcts.search.selection
SAMPLED_RULES = {"self_consistency": "sc", "best_of_n": "best_of_n",
                 "best_of_n_prod": "best_of_n_prod", "weighted_vote": "weighted_vote",
                 "pass_at_n": "pass"}
# what the PRM calls of a rule's cell count (selection.GridPoint): whole paths or step prefixes
RULE_PRM_CALLS = {"best_of_n": "path_prm_calls", "weighted_vote": "path_prm_calls",
                  "best_of_n_prod": "prm_calls"}
PASS = "sampled"  # the plan's name of the one sampling pass
TARGET = "mcts_star"
VARIANTS = ("mcts_star_full", "mcts_star_widen")


# ---------------------------------------------------------------------------- pure parts
@dataclass(frozen=True)
class Cell:
    """One (seed, method, budget) run: accuracy and mean policy tokens per question."""

    seed: int
    method: str
    budget: str  # "N", "beam x b" or "T" as text ("greedy" for CoT)
    acc: float
    tokens: float
    questions: int
    prm_calls: float = 0.0
    wall_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.budget, str) or not self.budget:
            raise ValueError(f"budget {self.budget!r} must be a non-empty string")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; one of {list(METHODS)}")
        if not 0.0 <= self.acc <= 1.0 or self.tokens < 0 or self.questions < 1:
            raise ValueError(f"bad cell {self}")


@dataclass(frozen=True)
class Point:
    """A method at one budget, over seeds."""

    method: str
    budget: str
    tokens_mean: float
    tokens_std: float
    acc_mean: float
    acc_std: float
    seeds: int


def _std(values: list[float]) -> float:
    """Sample standard deviation (n-1); 0 for a single value."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(cells: Iterable[Cell]) -> list[Point]:
    """Mean and std over seeds of each (method, budget), in METHODS order, then by mean
    tokens."""
    groups: dict[tuple[str, str], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.method, c.budget), []).append(c)
    order = list(METHODS)
    points = []
    for (method, budget), cs in groups.items():
        tok = [c.tokens for c in cs]
        acc = [c.acc for c in cs]
        points.append(Point(method, budget, statistics.fmean(tok), _std(tok),
                            statistics.fmean(acc), _std(acc), len(cs)))
    return sorted(points, key=lambda p: (order.index(p.method), p.tokens_mean, p.budget))


def interp_log(xs: list[float], ys: list[float], x: float) -> float | None:
    """y at x on the piecewise-linear curve through (log xs, ys), read as the loop reads its
    sampled rules (:func:`rest_mcts.search.selection.at_tokens`); None outside [min, max] of
    xs (no extrapolation) or without points. Points are sorted by x; equal xs keep their mean
    y; points at x <= 0 are left out."""
    from rest_mcts.search.selection import at_tokens

    points = [(a, b) for a, b in zip(xs, ys) if a > 0]
    if not points or x <= 0:
        return None
    at = at_tokens([a for a, _ in points], [b for _, b in points], x)
    return at.value if at.inside else None


def pass_cells(seed: int, rows: list[dict], ns: Iterable[int], wall_seconds: float = 0.0
               ) -> list[Cell]:
    """The cells of one sampling pass (``search=sampled``; ``rows``: its results.jsonl): every
    rule of :data:`SAMPLED_RULES` at each N of ``ns`` (at most the pass's n) on the first N
    samples of each question, with the mean policy tokens they cost. The pass's wall time is
    split evenly over the cells (so their sum is the pass's)."""
    from rest_mcts.search.selection import read_sample_curve, sample_metrics

    points = read_sample_curve(sample_metrics(rows, "eval", grid=ns), "eval")
    cells = []
    for point in points:
        for method, rule in SAMPLED_RULES.items():
            calls = getattr(point, RULE_PRM_CALLS[method]) if method in RULE_PRM_CALLS else 0.0
            cells.append(Cell(seed, method, str(point.n), point.acc[rule], point.tokens,
                              len(rows), prm_calls=calls))
    share = wall_seconds / max(1, len(cells))
    return [Cell(**{**asdict(c), "wall_seconds": share}) for c in cells]


@dataclass(frozen=True)
class Comparison:
    """MCTS* at one T against each baseline's curve at the same tokens, per seed.

    ``baseline_acc[m]`` is baseline m's accuracy interpolated (log tokens) at MCTS*'s tokens
    of each seed, mean and std over seeds; None when MCTS*'s tokens fall outside m's measured
    range on some seed. ``best`` is the baseline with the highest mean there and ``diff`` the
    per-seed MCTS* minus that baseline, mean and std. ``ceiling``: pass@N read the same way
    (None when not run or out of range)."""

    budget: str
    tokens_mean: float
    acc_mean: float
    acc_std: float
    baseline_acc: dict[str, tuple[float, float] | None]
    best: str | None
    diff: tuple[float, float] | None
    seed_diffs: tuple[float, ...] = ()
    ceiling: tuple[float, float] | None = None


def compare_at_equal_tokens(cells: Iterable[Cell], target: str = TARGET,
                            baselines: Iterable[str] = BASELINES,
                            ceiling: str = CEILING) -> list[Comparison]:
    """For each budget of ``target``: every baseline (and the ceiling) interpolated at its
    tokens (:func:`interp_log`), seed by seed."""
    cells = list(cells)
    by = {(c.seed, c.method, c.budget): c for c in cells}
    mean_tokens: dict[str, list[float]] = {}
    for c in cells:
        if c.method == target:
            mean_tokens.setdefault(c.budget, []).append(c.tokens)
    budgets = sorted(mean_tokens, key=lambda b: statistics.fmean(mean_tokens[b]))
    out = []
    for budget in budgets:
        mine = sorted((c for c in cells if c.method == target and c.budget == budget),
                      key=lambda c: c.seed)
        base: dict[str, tuple[float, float] | None] = {}
        per_seed: dict[str, list[float]] = {}
        for m in (*baselines, ceiling):
            vals = []
            for c in mine:
                curve = [v for (s, mm, _), v in by.items() if s == c.seed and mm == m]
                y = interp_log([v.tokens for v in curve], [v.acc for v in curve], c.tokens)
                if y is None:
                    vals = None
                    break
                vals.append(y)
            if vals:
                per_seed[m] = vals
                base[m] = (statistics.fmean(vals), _std(vals))
            else:
                base[m] = None
        top = base.pop(ceiling)
        per_seed.pop(ceiling, None)
        best = max(per_seed, key=lambda m: statistics.fmean(per_seed[m]), default=None)
        diff, d = None, []
        if best is not None:
            d = [c.acc - y for c, y in zip(mine, per_seed[best])]
            diff = (statistics.fmean(d), _std(d))
        out.append(Comparison(budget, statistics.fmean(c.tokens for c in mine),
                              statistics.fmean(c.acc for c in mine),
                              _std([c.acc for c in mine]), base, best, diff, tuple(d), top))
    return out


def _pm(mean: float, std: float, digits: int) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def results_table(points: list[Point]) -> str:
    """Markdown: method, budget, tokens/question and accuracy (mean ± std), seeds."""
    rows = [[METHODS[p.method][0],
             budget_label(p.method, p.budget),
             _pm(p.tokens_mean, p.tokens_std, 0), _pm(p.acc_mean, p.acc_std, 3), p.seeds]
            for p in points]
    return markdown_table(["method", "budget", "policy tokens / question (mean ± std)",
                           "accuracy (mean ± std)", "n seeds"], rows)


def budget_label(method: str, budget: str) -> str:
    """``N=8``, ``beam x b=4x3``, ``T=50``; ``greedy`` for CoT."""
    return "greedy" if method == "cot" else f"{METHODS[method][1]}={budget}"


def comparison_table(comps: list[Comparison], baselines: Iterable[str] = BASELINES,
                     target: str = TARGET) -> str:
    """Markdown: ``target`` per budget, each baseline at its tokens, the best baseline there
    and the per-seed difference."""
    baselines = list(baselines)
    rows = []
    for c in comps:
        cols = ["outside its range" if c.baseline_acc[m] is None else _pm(*c.baseline_acc[m], 3)
                for m in baselines]
        rows.append([budget_label(target, c.budget), f"{c.tokens_mean:.0f}",
                     _pm(c.acc_mean, c.acc_std, 3),
                     *cols, _pm(*c.ceiling, 3) if c.ceiling else "-",
                     METHODS[c.best][0] if c.best else "-",
                     _pm(*c.diff, 3) if c.diff else "-",
                     " ".join(f"{x:+.3f}" for x in c.seed_diffs) or "-"])
    name = METHODS[target][0]
    return markdown_table([name, "tokens / question", f"{name} accuracy",
                           *(f"{METHODS[m][0]} at these tokens" for m in baselines),
                           f"{METHODS[CEILING][0]} at these tokens", "best baseline", f"{name} - best (per-seed mean ± std)",
                           "per seed"], rows)


def verdict(comps: list[Comparison], target: str = TARGET) -> str:
    """One plain paragraph: ``target`` against the best baseline at equal tokens."""
    name = METHODS[target][0]
    judged = [c for c in comps if c.diff is not None]
    if not judged:
        return (f"No {name} budget falls inside a baseline's measured token range: "
                "no equal-token comparison.")
    parts = []
    for c in judged:
        d, s = c.diff
        word = ("above by more than one std" if d - s > 0 else
                "below by more than one std" if d + s < 0 else "difference within one std")
        parts.append(f"{budget_label(target, c.budget)} ({c.tokens_mean:.0f} tokens): "
                     f"{c.acc_mean:.3f} vs "
                     f"{METHODS[c.best][0]} {c.baseline_acc[c.best][0]:.3f}, "
                     f"{d:+.3f} ± {s:.3f} ({word})")
    worse = sum(c.diff[0] < 0 for c in judged)
    clear = sum(c.diff[0] + c.diff[1] < 0 for c in judged)
    head = (f"At equal policy tokens {name} is below the best baseline at {worse} of "
            f"{len(judged)} budgets (by more than one std over seeds at {clear})" if worse else
            f"At equal policy tokens {name} is at or above the best baseline at all "
            f"{len(judged)} budgets")
    bests = sorted({METHODS[c.best][0] for c in judged})
    return (f"{head} (best baseline there: {', '.join(bests)}; baseline accuracy "
            "interpolated linearly in log tokens on each seed's own curve, at that seed's "
            f"{name} tokens; ± is the std over seeds of the per-seed difference). "
            + "; ".join(parts) + ".")


def plot(points: list[Point], path: Path, title: str) -> None:
    """Accuracy vs policy tokens per question (log x), one line per method, error bars
    (std over seeds) on both axes, each point labelled with its budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = {"cot": "*", "self_consistency": "o", "best_of_n": "s", "best_of_n_prod": "v",
               "weighted_vote": "^", "pass_at_n": "x", "bfs": "D", "mcts_star": "P",
               "mcts_star_full": "X", "mcts_star_widen": "h"}
    for method, (label, knob) in METHODS.items():
        ps = sorted((p for p in points if p.method == method), key=lambda p: p.tokens_mean)
        if not ps:
            continue
        ax.errorbar([p.tokens_mean for p in ps], [p.acc_mean for p in ps],
                    xerr=[p.tokens_std for p in ps], yerr=[p.acc_std for p in ps],
                    marker=markers[method], markersize=10 if method == "cot" else 6,
                    linewidth=2.2 if method == TARGET else 1.4, capsize=3, label=label,
                    linestyle="--" if method == CEILING else "-")
        # Budget labels: the sampled rules share their token points (one pass), so only
        # self-consistency (the lowest line) carries N; a point close to the last labelled
        # one of its line stays unlabelled (MCTS*'s saturated T), as does the variant drawn
        # on top of MCTS*.
        if method in ("cot", "best_of_n", "best_of_n_prod", "weighted_vote", "pass_at_n",
                      "mcts_star_full"):
            continue
        groups: list[list[Point]] = []
        for p in ps:
            head = groups[-1][0] if groups else None
            if head and p.tokens_mean < 1.1 * head.tokens_mean and \
                    abs(p.acc_mean - head.acc_mean) < 0.02:
                groups[-1].append(p)
            else:
                groups.append([p])
        tag = "" if method == "bfs" else f"{knob}="
        for g in groups:
            text = g[0].budget if len(g) == 1 else f"{g[0].budget}..{g[-1].budget}"
            ax.annotate(f"{tag}{text}", (g[0].tokens_mean, g[0].acc_mean), fontsize=6.5,
                        textcoords="offset points", xytext=(4, -9), alpha=0.75)
    ax.set_xscale("log")
    ax.set_xlabel("policy tokens per question (mean over seeds, log scale)")
    ax.set_ylabel("accuracy (test questions)")
    ax.set_title(title, fontsize=10)
    ax.text(0.99, 0.01, "labels: N samples, BFS beam x b, MCTS* iterations T; "
            "error bars: std over seeds", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=7, alpha=0.7)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def read_cells(folder: Path, keys: set[str] | None = None) -> tuple[list[Cell], list[str]]:
    """Cached cells under ``folder`` (``cells/**/*.json``; with ``keys``, only those) and the
    ``uptime`` line recorded when each finished. A file holds one cell (``cell``) or the cells
    of a sampling pass (``cells``); where an older separate run of a rule (one N, its own
    samples) and a sampling pass give the same (seed, method, budget), the pass's is kept."""
    single, shared, loads = [], [], []
    for f in sorted(folder.glob("cells/**/*.json")):
        data = json.loads(f.read_text())
        if keys is None or data["key"] in keys:
            if "cells" in data:
                shared += [Cell(**c) for c in data["cells"]]
            else:
                single.append(Cell(**data["cell"]))
            loads.append(data.get("uptime", ""))
    from_pass = {(c.seed, c.method, c.budget) for c in shared}
    return [c for c in single if (c.seed, c.method, c.budget) not in from_pass] + shared, loads


def load_range(lines: list[str]) -> str:
    """min..max of the 1-minute load averages in ``uptime`` lines."""
    vals = []
    for line in lines:
        if "load average:" in line:
            vals.append(float(line.split("load average:")[1].split(",")[0]))
    return f"{min(vals):.2f}..{max(vals):.2f}" if vals else "not recorded"


# ---------------------------------------------------------------------------- models
@dataclass(frozen=True)
class SeedModels:
    """The iteration-0 models of one seed's loop folder.

    ``policy`` is where policy_0 is loaded from; ``policy_id`` is the path the folder's
    manifest names (the model's identity in the cell keys). They differ only with
    ``--policy SEED=PATH``: a copy of policy_0 the user vouches is the same model (the
    manifest's path was deleted)."""

    seed: int
    folder: Path
    policy: str
    prm: str
    policy_id: str = ""

    def __post_init__(self) -> None:
        if not self.policy_id:
            object.__setattr__(self, "policy_id", self.policy)


def loop_models(seed: int, folder: Path, policy_copy: Path | None = None) -> SeedModels:
    """Policy_0 and PRM_0 of a loop folder (``iter_0/policy/manifest.json``,
    ``iter_0/prm/model``), policy_0 loaded from ``policy_copy`` when given; SystemExit (one
    line) when the folder lacks them."""
    manifest = folder / "iter_0" / "policy" / "manifest.json"
    prm = folder / "iter_0" / "prm" / "model"
    if not manifest.is_file() or not (prm / "config.json").is_file():
        raise SystemExit(
            f"error: seed {seed}: {folder} is not a loop folder with iteration 0 done "
            f"(needs iter_0/policy/manifest.json and iter_0/prm/model): pass --run "
            f"{seed}=<outputs/loop_runs/countdown-s{seed}-...> or --make to run iteration 0")
    policy = json.loads(manifest.read_text())["outputs"]["model"]
    if policy_copy is not None:
        if not (policy_copy / "config.json").is_file():
            raise SystemExit(f"error: seed {seed}: --policy {policy_copy} is not a model folder")
        return SeedModels(seed, folder, str(policy_copy), str(prm), policy_id=str(policy))
    if not Path(policy).is_dir():
        raise SystemExit(f"error: seed {seed}: policy_0 {policy} (named by {manifest}) is "
                         f"missing: pass --policy {seed}=<a copy of it>")
    return SeedModels(seed, folder, str(policy), str(prm))


def make_iteration0(seed: int, folder: Path) -> None:
    """The loop's iteration 0 (policy_0, D_V0, PRM_0; CoT evaluation only) through run.py."""
    cmd = [sys.executable, str(ROOT / "run.py"), f"seed={seed}", "stage.iterations=0",
           "stage.eval_methods=[cot]", "stage.policy_eval=null", "logger=null",
           f"stage.dir={folder}"]
    log.warning("seed %d: making iteration 0: %s", seed, shlex.join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT)


def check_folder_config(models: SeedModels, cfg: Any) -> None:
    """The loop folder's world must be the composed one (else the test questions differ)."""
    from omegaconf import OmegaConf

    path = models.folder / "loop_config.json"
    if not path.is_file():
        return
    saved = json.loads(path.read_text())["config"]
    data = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items()
            if k not in ("shard", "num_shards")}
    mine = {k: v for k, v in saved.get("data", {}).items() if k not in ("shard", "num_shards")}
    if mine != data or int(saved.get("seed", models.seed)) != models.seed:
        raise SystemExit(f"error: seed {models.seed}: {models.folder} was made with another "
                         "data config or seed than this run composes")


# ---------------------------------------------------------------------------- running
def cell_plan(mcts: Any, ns: list[int], beams: list[str], ts: list[int],
              full_ts: Iterable[int] = (), widen_ts: Iterable[int] = ()
              ) -> list[tuple[str, str, Any]]:
    """(method, budget, typed search config) of every cell of one seed; a BFS budget is
    ``WIDTHxBRANCH`` or ``WIDTH`` (MCTS*'s branch). The sample-selection rules at every N of
    ``ns`` come from ONE entry, the sampling pass (:data:`PASS`, budget max(ns))."""
    import dataclasses

    from rest_mcts.search.configs import search_config

    plan: list[tuple[str, str, Any]] = [("cot", "greedy", search_config("cot"))]
    if ns:
        plan.append((PASS, str(max(ns)), search_config("sampled", n=max(ns),
                                                       temperature=mcts.temperature)))
    for beam in beams:
        width, _, branch = beam.partition("x")
        b = int(branch or mcts.branch)
        plan.append(("bfs", f"{int(width)}x{b}", search_config(
            "bfs", branch=b, beam_width=int(width), max_depth=mcts.max_depth,
            temperature=mcts.temperature, max_step_tokens=mcts.max_step_tokens)))
    plan += [("mcts_star", str(t), dataclasses.replace(mcts, iterations=t)) for t in ts]
    plan += [("mcts_star_full", str(t), dataclasses.replace(mcts, iterations=t,
                                                            early_stop=False)) for t in full_ts]
    plan += [("mcts_star_widen", str(t), dataclasses.replace(mcts, iterations=t, widen=True))
             for t in widen_ts]
    return plan


def cell_key(search: Any, models: SeedModels, split: str, problems: int) -> str:
    blob = json.dumps({"search": search.to_dict(), "policy": models.policy_id, "prm": models.prm,
                       "split": split, "problems": problems, "seed": models.seed},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_cell(ctx: Any, models: SeedModels, method: str, budget: str, search: Any,
             run: Any, out: Path, ns: Iterable[int] = ()) -> tuple[str, list[Cell]]:
    """One plan entry through the loop's search path, cached as ``cells/s<seed>/<name>.json``:
    one cell, or for the sampling pass (:data:`PASS`) the cells of every rule at each N of
    ``ns`` (:func:`pass_cells`, from the run's results.jsonl)."""
    from rest_mcts.runtime.search_run import run_search
    from rest_mcts.search.registry import config_needs_scorer
    from rest_mcts.utils.io import read_jsonl

    key = cell_key(search, models, run.split, run.num_problems)
    name = f"{method}-{budget}-{key}"
    path = out / "cells" / f"s{models.seed}" / f"{name}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        return key, [Cell(**c) for c in data.get("cells") or [data["cell"]]]
    start = time.time()
    folder = out / "runs" / f"s{models.seed}" / name
    metrics = run_search(ctx, folder, search, run, policy_path=models.policy,
                         prm_path=models.prm if config_needs_scorer(search) else None)
    wall = time.time() - start
    if method == PASS:
        cells = pass_cells(models.seed, read_jsonl(folder / "results.jsonl"), ns, wall)
        record: dict[str, Any] = {"cells": [asdict(c) for c in cells]}
    else:
        cells = [Cell(seed=models.seed, method=method, budget=budget, acc=metrics["eval/acc"],
                      tokens=metrics["eval/policy_tokens_per_question"],
                      questions=int(metrics["eval/num_questions"]),
                      prm_calls=metrics["eval/prm_calls_per_question"], wall_seconds=wall)]
        record = {"cell": asdict(cells[0])}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, **record, "search": search.to_dict(),
                               "policy": models.policy_id, "policy_loaded": models.policy,
                               "prm": models.prm,
                               "split": run.split, "problems": run.num_problems,
                               "uptime": uptime(), "metrics": metrics}, indent=1))
    tmp.replace(path)
    log.warning("seed %d %s %s: acc %.3f, %.0f tokens/question (%.0f s)", models.seed, method,
                budget, metrics["eval/acc"], metrics["eval/policy_tokens_per_question"], wall)
    return key, cells


def loop_check(models_used: list[SeedModels], cells: list[Cell]) -> str:
    """CoT and MCTS* (T = the loop's) here against the loop folder's own iteration-0
    evaluation (``iter_0/eval_cot``, ``iter_0/eval_mcts_star``): the same models, questions
    and seeds must give the same numbers."""
    rows = []
    for m in models_used:
        for method in ("cot", "mcts_star"):
            manifest = m.folder / "iter_0" / f"eval_{method}" / "manifest.json"
            if not manifest.is_file():
                continue
            data = json.loads(manifest.read_text())
            out = data["outputs"]
            budget = "greedy"
            if method == "mcts_star":
                produced = data.get("produced_by", "")
                if "'iterations': " not in produced:
                    continue
                budget = produced.split("'iterations': ")[1].split(",")[0]
            here = [c for c in cells if (c.seed, c.method, c.budget) == (m.seed, method, budget)]
            if here:
                label = METHODS[method][0] + ("" if method == "cot" else
                                              f" {budget_label(method, budget)}")
                rows.append([m.seed, label,
                             f"{out['eval/acc']:.3f} / "
                             f"{out['eval/policy_tokens_per_question']:.1f}",
                             f"{here[0].acc:.3f} / {here[0].tokens:.1f}"])
    if not rows:
        return ""
    return ("\n\nCheck against each loop folder's own iteration-0 evaluation (same models, "
            "questions and seed; accuracy / tokens per question):\n\n"
            + markdown_table(["seed", "method", "loop folder's eval", "this run"], rows))


def rel(path: Path) -> str:
    """``path`` relative to the repository root when it is under it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "uptime unavailable"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", default=[], metavar="SEED=FOLDER",
                        help="a finished loop folder of that seed (its iter_0 policy and PRM)")
    parser.add_argument("--policy", action="append", default=[], metavar="SEED=PATH",
                        help="load that seed's policy_0 from PATH instead of the path its loop "
                             "folder names (a copy of the same model; cell keys unchanged)")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the report's notes (e.g. where a policy copy came from)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds (default: those of --run, else 0 1 2)")
    parser.add_argument("--make", action="store_true",
                        help="seeds without --run: run the loop's iteration 0 into "
                             "<out>/loop_s<seed> (policy_0 bootstrap, D_V0, PRM_0)")
    parser.add_argument("--problems", type=int, default=200, help="test questions per seed")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64],
                        help="samples N of self-consistency, best-of-N (last value, product), "
                             "weighted vote and pass@N, all read from one sampling pass of "
                             "max(N) solutions per question")
    parser.add_argument("--beam", nargs="+", default=["1x3", "2x3", "4x3", "8x3", "8x6", "16x8"],
                        help="BFS budgets WIDTHxBRANCH (beam width x branch b; WIDTH alone: "
                             "MCTS*'s b)")
    parser.add_argument("--iterations", type=int, nargs="+", default=[1, 2, 3, 5, 10, 50],
                        help="MCTS* iterations T")
    parser.add_argument("--full-iterations", type=int, nargs="*", default=[50],
                        help="MCTS* with early_stop=false (all T rounds, as the loop's "
                             "training search): T values (none: skip)")
    parser.add_argument("--widen-iterations", type=int, nargs="*",
                        default=[5, 10, 20, 50, 100, 200],
                        help="MCTS* with widen=true (this repo's progressive widening; early "
                             "stop kept, as the loop's evaluation): T values (none: skip)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_budget")
    parser.add_argument("--report-only", action="store_true",
                        help="no search: table and plot from the cached cells under --out")
    parser.add_argument("--results", type=Path, default=ROOT / "experiments" / "results")
    parser.add_argument("overrides", nargs="*", help="config overrides, as for run.py")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    load_before = uptime()
    start = time.time()

    runs = {}
    for item in args.run:
        seed, _, folder = item.partition("=")
        if not folder or not seed.isdigit():
            raise SystemExit(f"error: --run {item!r}: expected SEED=FOLDER, "
                             "e.g. 0=outputs/loop_runs/countdown-s0-...")
        runs[int(seed)] = Path(folder)
    seeds = args.seeds or sorted(runs) or [0, 1, 2]
    copies = {}
    for item in args.policy:
        seed, _, path = item.partition("=")
        if not path or not seed.isdigit():
            raise SystemExit(f"error: --policy {item!r}: expected SEED=PATH")
        copies[int(seed)] = Path(path)

    keys: set[str] | None = None
    models_used: list[SeedModels] = []
    if not args.report_only:
        from _common import compose

        from rest_mcts.runtime.context import Context
        from rest_mcts.runtime.search_run import SearchRun
        from rest_mcts.search.configs import search_config_from

        keys = set()
        for seed in seeds:
            folder = runs.get(seed, args.out / f"loop_s{seed}")
            made = (folder / "iter_0" / "prm" / "model").is_dir()
            if seed not in runs and args.make and not made:
                make_iteration0(seed, folder)
            models = loop_models(seed, folder, copies.get(seed))
            models_used.append(models)
            cfg = compose("search=mcts_star", f"seed={seed}", "~logger",
                          f"paths.output_dir={args.out / 'hydra'}", *args.overrides)
            check_folder_config(models, cfg)
            ctx = Context.from_config(cfg)
            mcts = search_config_from(cfg.search)
            run = SearchRun(split="test", num_problems=args.problems, save_trees=False,
                            concurrency=int(cfg.stage.concurrency),
                            cache_values=bool(cfg.stage.cache_values), prefix="eval")
            for method, budget, search in cell_plan(mcts, args.n, args.beam, args.iterations,
                                                   args.full_iterations, args.widen_iterations):
                key, _ = run_cell(ctx, models, method, budget, search, run, args.out, args.n)
                keys.add(key)

    cells, loads = read_cells(args.out, keys)
    if not cells:
        raise SystemExit(f"error: no cached cells under {args.out}/cells")
    points = aggregate(cells)
    comps = compare_at_equal_tokens(cells)
    budgets = {m: ", ".join(p.budget for p in points if p.method == m) or "not run"
               for m in METHODS}
    variants = "".join(
        f"\n\n## {METHODS[v][0]} against the baselines at equal tokens\n\n"
        f"{comparison_table(c, target=v)}\n\n{verdict(c, target=v)}"
        for v in VARIANTS if (c := compare_at_equal_tokens(cells, target=v)))
    wall = time.time() - start
    questions = sorted({c.questions for c in cells})
    cell_seeds = sorted({c.seed for c in cells})
    command = shlex.join(["python", "experiments/bench_budget.py", *sys.argv[1:]])
    models_lines = "\n".join(
        f"- seed {m.seed}: `{m.folder}` -- policy_0 `{m.policy_id}`"
        + ("" if m.policy == m.policy_id else f" (loaded from the copy `{m.policy}`)")
        + f", PRM_0 `{m.prm}`" for m in models_used
    ) or "- (report from cached cells; the cell JSONs name the models)"
    notes = "".join(f"\n- Note: {n}" for n in args.note)
    title = (f"Countdown, iteration-0 policy + PRM_0, {'/'.join(map(str, questions))} test "
             f"questions x {len(cell_seeds)} seeds (mean ± std over seeds)")
    plot(points, args.results / "bench_budget.png", title)
    report = f"""# bench_budget: accuracy against policy tokens per question

`{command}`

- Machine load before: `{load_before}`
- Machine load after: `{uptime()}`
- Wall time of this invocation: {wall / 60:.1f} min; the cells themselves (cached, not rerun:
  `{rel(args.out)}/cells/`, each with its wall seconds and `uptime` at its end) took
  {sum(c.wall_seconds for c in cells) / 60:.1f} min of search in all, 1-minute load average
  at their ends {load_range(loads)}. 2-core CPU shared with other jobs,
  `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}`, `nice -n 5`.
- Seeds {', '.join(map(str, cell_seeds))}; {'/'.join(map(str, questions))} test questions per
  seed (each seed's own test split, generated from its seed; the same questions for every
  method of that seed). Each cell: one run of the loop's search path
  (`rest_mcts.runtime.search_run.run_search`, concurrency 64, values cached per question).
  Overrides: {' '.join(args.overrides) or 'none'}.
- Budgets. Self-consistency, PRM best-of-N (last step value; product of step values, the
  paper's App. E.3), PRM-weighted vote and pass@N (the ceiling): N = {budgets['best_of_n']},
  all read from ONE sampling pass per seed of max(N) solutions per question
  (`search=sampled`; the first N samples of a question are a sample of size N), at
  temperature = MCTS*'s, 0.7, as in the loop's evaluation. BFS with the PRM: beam width x
  branch b = {budgets['bfs']} (depth cap, step cap, temperature = MCTS*'s). MCTS*
  (`search=mcts_star`, the paper's settings: b = 3, m = 2 rollout steps, alpha = 0.5,
  l = 0.9, early stop as in evaluation): T = {budgets['mcts_star']}. Two variants beyond the
  paper, for budgets the paper's tree cannot spend: MCTS* without early stop (all T rounds, as
  the loop's training search): T = {budgets['mcts_star_full']}; MCTS* with this repo's
  progressive widening (`widen=true`, early stop kept, as the loop's `mcts_star_widen`
  evaluation): T = {budgets['mcts_star_widen']}.
- Error bars: standard deviation over seeds (n - 1), on accuracy and on tokens.

Models (iteration 0 of each seed's loop folder):
{models_lines}{notes}{loop_check(models_used, cells)}

![accuracy vs tokens](bench_budget.png)

## Accuracy and policy tokens per question (mean ± std over seeds)

{results_table(points)}

Where budgets stop buying tokens (on the default world, 3 numbers): in the paper's MCTS*
every node is expanded once (b = 3 children), finished nodes are never expanded, and a
solution has at most 2 steps, so a tree has at most 1 + 3 + 9 nodes and is spent within a few
iterations; a larger T, with or without early stop, then adds almost no tokens. BFS with
b = 3 likewise keeps all 3 depth-1 nodes once the beam is 3 or more (depth 2 ends every
solution). Both curves therefore end near the MCTS* T = 50 point; BFS reaches further only
with a larger b, MCTS* only with widening (`widen=true`, this repo's variant).

## MCTS* against the baselines at equal tokens

{comparison_table(comps)}

{verdict(comps)}{variants}
"""
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bench_budget.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()

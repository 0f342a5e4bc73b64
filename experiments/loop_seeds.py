"""The self-training loop over seeds: each seed's tables, the iteration-0 gates and the claims.

    python run.py -m seed=0,1,2                      # the main job: the tuning seeds
    python run.py -m seed=3,4,5                      # once, after the defaults were frozen
    python experiments/loop_seeds.py outputs/loop_runs/countdown-s0-* \\
        outputs/loop_runs/countdown-s1-* outputs/loop_runs/countdown-s2-* \\
        outputs/loop_runs/countdown-s3-* outputs/loop_runs/countdown-s4-* \\
        outputs/loop_runs/countdown-s5-* --held-out 3,4,5 \\
        --notes "2-core CPU at load average 4; about 9 h per seed"

Reads each loop folder's ``results.csv`` (one row per iteration 0..K, the columns of
:mod:`rest_mcts.loop.report`); a per-depth column that a folder's CSV lacks (one written
before the CSV held them) is taken from the manifests of its steps ``iter_k/eval_policy``
and ``iter_k/eval_prm``. A folder's seed is ``config.seed`` in its ``loop_config.json``,
else the ``-s<seed>-`` in its name. The report (markdown, printed and written to
experiments/results/loop_seeds.md unless ``--out``) holds:

1. the command line, the folders and the ``--notes``;
2. per seed, the methods by iteration: accuracy (policy tokens per question), † where a
   sampled rule's N curve did not bracket MCTS*'s tokens (``sampled/bracketed`` 0), and a
   second table of prompt tokens / PRM calls per question; then the mean ± standard error
   over seeds;
3. the base models per seed and iteration: the policy (greedy, pass@k, step skill and its
   ratio to a random legal move's at depths 1-3), the PRM (sibling ranking accuracy overall
   and at depths 1-3, oracle MSE) and the data (D_V rows, D_G traces);
4. the iteration-0 gates of each seed (:func:`rest_mcts.loop.gates.summary`);
5. the claims, per seed and on the mean ± standard error over seeds (sample std / sqrt(n))
   of each claim's difference (:data:`EVERY_ITERATION`, :data:`RISES`).

Seeds in ``--held-out`` carry a ``*`` in every table. A column a folder lacks reads as nan
("-"), and a claim that needs it reads "n/a" instead of yes/NO.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import re
import shlex
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from _common import ROOT, markdown_table

from rest_mcts.loop import gates
from rest_mcts.loop.report import DEPTHS, METHODS, SAMPLED_PREFIXES
from rest_mcts.tracking.names import lookup

log = logging.getLogger("loop_seeds")

NAN = float("nan")
HELD_OUT = ("held out: run once after the defaults were frozen; never used to choose "
            "settings")
SEED_IN_NAME = re.compile(r"-s(\d+)(?:-|$)")
Row = Mapping[str, float]


@dataclass(frozen=True)
class Run:
    """One loop folder: its seed, whether the seed is held out, its rows by iteration."""

    folder: Path
    seed: int
    held_out: bool
    rows: list[dict[str, float]]

    @property
    def label(self) -> str:
        """The seed as the tables show it: ``3*`` when held out."""
        return f"{self.seed}*" if self.held_out else str(self.seed)


# ---------------------------------------------------------------- reading the folders


def seed_of(folder: Path) -> int:
    """``config.seed`` of the folder's ``loop_config.json``, else ``-s<seed>-`` in its name."""
    record = folder / "loop_config.json"
    if record.is_file():
        seed = (json.loads(record.read_text()).get("config") or {}).get("seed")
        if seed is not None:
            return int(seed)
    match = SEED_IN_NAME.search(folder.name)
    if match is None:
        raise SystemExit(f"error: no seed for {folder}: no loop_config.json with config.seed "
                         "and no -s<seed>- in its name")
    return int(match.group(1))


def step_outputs(folder: Path) -> dict[str, float]:
    """The numeric outputs in a finished step's ``manifest.json`` ({} when there is none)."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return {}
    outputs = json.loads(manifest.read_text()).get("outputs") or {}
    return {k: float(v) for k, v in outputs.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def manifest_columns(folder: Path, k: int) -> dict[str, float]:
    """Iteration k's policy step-skill and PRM columns, named as in the results row
    (:func:`rest_mcts.loop.evaluate.evaluate_iteration`), from its steps' manifests."""
    policy = step_outputs(folder / f"iter_{k}" / "eval_policy")
    prm = step_outputs(folder / f"iter_{k}" / "eval_prm")
    return {**{"policy/" + key[len("eval/"):]: v for key, v in policy.items()
               if key.startswith("eval/step_")},
            **{"prm/" + key.replace("/", "_"): v for key, v in prm.items()}}


def read_rows(folder: Path) -> list[dict[str, float]]:
    """``results.csv`` of a loop folder, one dict per iteration in order (an empty cell is
    left out), each completed by :func:`manifest_columns` where the CSV lacks a column."""
    path = folder / "results.csv"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (is {folder} a finished loop folder?)")
    with open(path) as fh:
        rows = [{k: float(v) for k, v in row.items() if k and v not in ("", None)}
                for row in csv.DictReader(fh)]
    if not rows:
        raise SystemExit(f"error: {path} has no rows")
    for i, row in enumerate(rows):
        row["iteration"] = float(lookup(row, "iteration", i))  # an older name: loop/iter
    rows.sort(key=lambda row: row["iteration"])
    return [{**manifest_columns(folder, int(row["iteration"])), **row} for row in rows]


def load_runs(folders: Sequence[Path], held_out: set[int]) -> list[Run]:
    """One :class:`Run` per folder, in seed order; two folders of one seed are refused (the
    standard error is over seeds)."""
    runs = sorted((Run(f, seed_of(f), False, read_rows(f)) for f in folders),
                  key=lambda run: run.seed)
    seeds = [run.seed for run in runs]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise SystemExit(f"error: more than one folder for seed(s) {twice}: pass one per seed")
    return [Run(r.folder, r.seed, r.seed in held_out, r.rows) for r in runs]


# ---------------------------------------------------------------- numbers


def value(row: Row, key: str) -> float:
    """``row[key]`` (or the value under an older name of the metric,
    :data:`rest_mcts.tracking.names.ALIASES`) as a float; nan when the row lacks it."""
    return float(lookup(row, key, NAN))


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error over seeds (sample standard deviation / sqrt(n)); nan when a
    value is nan, and a nan standard error for a single value."""
    if not values or any(math.isnan(v) for v in values):
        return NAN, NAN
    if len(values) == 1:
        return values[0], NAN
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def number(v: float, spec: str = "{:.3f}") -> str:
    """``spec`` of v, or "-" for nan."""
    return "-" if math.isnan(v) else spec.format(v)


def plus_minus(mean: float, se: float, spec: str = "{:.3f}") -> str:
    """``mean ± se`` ("-" for a nan mean; the ± part left out for a nan standard error); a
    ``+`` in ``spec`` signs the mean only."""
    if math.isnan(mean):
        return "-"
    return spec.format(mean) + ("" if math.isnan(se) else " ± " + spec.replace("+", "").format(se))


# ---------------------------------------------------------------- the claims


def margin_over(baseline: str) -> Callable[[Row], float]:
    """MCTS*'s accuracy minus ``baseline``'s in one row."""
    return lambda row: value(row, "mcts/acc") - value(row, baseline)


def step_skill_12(row: Row) -> float:
    """The policy's step skill, the mean of depths 1 and 2 (nan unless both are there)."""
    return (value(row, "policy/step_skill@1") + value(row, "policy/step_skill@2")) / 2


# Claims (a)-(c): the difference is positive at every iteration (name, difference of a row).
EVERY_ITERATION: list[tuple[str, Callable[[Row], float]]] = [
    ("(a) MCTS* > self-consistency", margin_over("sc/acc")),
    ("(b) MCTS* > PRM best-of-N (last step's value)", margin_over("best_of_n/acc")),
    ("(c) MCTS* > PRM best-of-N (product of step values)", margin_over("best_of_n_prod/acc")),
]
# Claims (d)-(f): the metric is higher at the last iteration than at iteration 0.
RISES: list[tuple[str, Callable[[Row], float]]] = [
    ("(d) PRM sibling accuracy rises", lambda row: value(row, "prm/val_sibling_acc")),
    ("(e) policy greedy accuracy rises", lambda row: value(row, "policy/greedy_acc")),
    ("(f) policy step skill (mean of depths 1, 2) rises", step_skill_12),
]


def rise(rows: Sequence[Row], metric: Callable[[Row], float]) -> float:
    """``metric`` at the last iteration minus at iteration 0 (nan with one iteration only)."""
    return metric(rows[-1]) - metric(rows[0]) if len(rows) > 1 else NAN


def holds(diffs: Sequence[float]) -> str:
    """"yes" if every difference is positive, "NO" if one is not, "n/a" if one is nan."""
    if not diffs or any(math.isnan(d) for d in diffs):
        return "n/a"
    return "yes" if all(d > 0 for d in diffs) else "NO"


def claim_cell(diff: float, se: float = NAN) -> str:
    """A difference (± its standard error) and yes/NO, or "n/a"."""
    if math.isnan(diff):
        return "n/a"
    return f"{plus_minus(diff, se, '{:+.3f}')} {holds([diff])}"


def every_iteration_table(runs: Sequence[Run], diff: Callable[[Row], float]) -> str:
    """One of claims (a)-(c): its difference at each iteration per seed, the mean ± SE over
    seeds at the iterations every seed has, and whether it holds at every iteration."""
    width = max(len(run.rows) for run in runs)
    common = min(len(run.rows) for run in runs)
    lines = []
    for run in runs:
        diffs = [diff(row) for row in run.rows]
        lines.append([run.label, *(claim_cell(d) for d in diffs),
                      *("-" for _ in range(width - len(diffs))), holds(diffs)])
    means = [mean_se([diff(run.rows[i]) for run in runs]) for i in range(common)]
    lines.append([f"mean ± SE (n={len(runs)})", *(claim_cell(m, se) for m, se in means),
                  *("-" for _ in range(width - common)), holds([m for m, _ in means])])
    return markdown_table(["seed", *(f"iter {i}" for i in range(width)), "every iteration"],
                          lines)


def rises_table(runs: Sequence[Run]) -> str:
    """Claims (d)-(f): last iteration minus iteration 0 per seed, and the mean ± SE over
    seeds of those differences."""
    diffs = [[rise(run.rows, metric) for _, metric in RISES] for run in runs]
    lines = [[run.label, *(claim_cell(d) for d in row)] for run, row in zip(runs, diffs)]
    lines.append([f"mean ± SE (n={len(runs)})",
                  *(claim_cell(*mean_se([row[j] for row in diffs])) for j in range(len(RISES)))])
    return markdown_table(["seed", *(name for name, _ in RISES)], lines)


# ---------------------------------------------------------------- the tables


def methods_of(runs: Sequence[Run]) -> list[tuple[str, str]]:
    """The evaluated methods (prefix, header) that some folder has, in the loop's order."""
    return [(prefix, header) for prefix, header in METHODS
            if any(f"{prefix}/acc" in row for run in runs for row in run.rows)]


def dagger(rows: Sequence[Row], prefix: str) -> str:
    """" †" for a sampled rule when a row's N curve did not bracket MCTS*'s tokens."""
    beyond = any(lookup(row, "sampled/bracketed") == 0.0 for row in rows)
    return " †" if prefix in SAMPLED_PREFIXES and beyond else ""


def method_cell(row: Row, prefix: str) -> str:
    """``acc (policy tokens per question)``, with † from :func:`dagger`."""
    acc, tokens = value(row, f"{prefix}/acc"), value(row, f"{prefix}/tokens")
    if math.isnan(acc):
        return "-"
    return f"{acc:.3f}" + ("" if math.isnan(tokens) else f" ({tokens:.0f}{dagger([row], prefix)})")


def cost_cell(row: Row, prefix: str) -> str:
    """``prompt tokens / PRM calls`` per question."""
    return (f"{number(value(row, f'{prefix}/prompt_tokens'), '{:.0f}')} / "
            f"{number(value(row, f'{prefix}/prm_calls'), '{:.1f}')}")


def seed_tables(run: Run, methods: Sequence[tuple[str, str]]) -> str:
    """A seed's methods by iteration, then their prompt tokens / PRM calls per question."""
    header = ["method", *(f"iter {int(row['iteration'])}" for row in run.rows)]
    accuracy = markdown_table(header, [[name, *(method_cell(row, p) for row in run.rows)]
                                       for p, name in methods])
    costs = markdown_table(header, [[name, *(cost_cell(row, p) for row in run.rows)]
                                    for p, name in methods])
    return (f"### seed {run.label} (`{run.folder.name}`)\n\nAccuracy (policy tokens per "
            f"question):\n\n{accuracy}\n\nPrompt tokens / PRM calls per question:\n\n{costs}")


def mean_table(runs: Sequence[Run], methods: Sequence[tuple[str, str]]) -> str:
    """Each method's accuracy, mean ± SE over seeds, with the mean policy tokens per
    question, at the iterations every seed has."""
    common = min(len(run.rows) for run in runs)

    def cell(i: int, prefix: str) -> str:
        rows = [run.rows[i] for run in runs]
        acc = mean_se([value(row, f"{prefix}/acc") for row in rows])
        tokens, _ = mean_se([value(row, f"{prefix}/tokens") for row in rows])
        if math.isnan(acc[0]):
            return "-"
        return plus_minus(*acc) + ("" if math.isnan(tokens) else
                                   f" ({tokens:.0f}{dagger(rows, prefix)})")

    return markdown_table(["method", *(f"iter {i}" for i in range(common))],
                          [[name, *(cell(i, p) for i in range(common))] for p, name in methods])


def skill_cell(row: Row, d: int) -> str:
    """The policy's step skill at depth d (its ratio to a random legal move's)."""
    skill = value(row, f"policy/step_skill@{d}")
    ratio = value(row, f"policy/step_skill_ratio@{d}")
    if math.isnan(skill):
        return "-"
    return f"{skill:.3f} ({number(ratio, '{:.1f}x')})"


BASE_HEADER = ["seed", "iter", "policy greedy", "policy pass@k",
               *(f"step skill d={d} (x random)" for d in DEPTHS), "PRM sibling acc",
               *(f"sibling acc d={d}" for d in DEPTHS), "PRM oracle mse", "D_V rows",
               "D_G traces"]


def base_line(label: str, row: Row) -> list[str]:
    """One line of the base models' table."""
    return [label, number(value(row, "iteration"), "{:.0f}"),
            number(value(row, "policy/greedy_acc")), number(value(row, "policy/pass@k")),
            *(skill_cell(row, d) for d in DEPTHS), number(value(row, "prm/val_sibling_acc")),
            *(number(value(row, f"prm/val_sibling_acc@{d}")) for d in DEPTHS),
            number(value(row, "prm/val_oracle_mse"), "{:.4f}"),
            number(value(row, "data/d_v_rows"), "{:.0f}"),
            number(value(row, "data/d_g_traces"), "{:.0f}")]


def base_table(runs: Sequence[Run]) -> str:
    """The policy, the PRM and the data per seed and iteration, then their means over seeds
    at the iterations every seed has."""
    lines = [base_line(run.label, row) for run in runs for row in run.rows]
    keys = sorted({key for run in runs for row in run.rows for key in row})
    for i in range(min(len(run.rows) for run in runs)):
        mean = {key: mean_se([value(run.rows[i], key) for run in runs])[0] for key in keys}
        lines.append(base_line("mean", mean))
    return markdown_table(BASE_HEADER, lines)


def gates_section(runs: Sequence[Run]) -> str:
    """The iteration-0 gates of each seed, one line each (:func:`gates.summary`)."""
    parts = []
    for run in runs:
        first = run.rows[0] if run.rows and run.rows[0]["iteration"] == 0 else None
        lines = gates.summary(first) if first is not None else ["no iteration-0 row"]
        parts.append(f"seed {run.label}:\n\n" + "\n".join(f"- {line}" for line in lines))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the report


def header(runs: Sequence[Run], command: str, notes: str | None) -> str:
    """The command line, the notes, the folders and the legend."""
    folders = "\n".join(
        f"- seed {run.label}: `{run.folder}` (iterations "
        f"{int(run.rows[0]['iteration'])}-{int(run.rows[-1]['iteration'])})" for run in runs)
    parts = ["# The self-training loop over seeds", f"`{command}`"]
    if notes:
        parts.append(notes)
    parts.append(f"Folders:\n\n{folders}")
    legend = ["Accuracy on the held-out test questions (policy tokens per question). † : a "
              "sampled rule (SC, BoN, vote, pass@N) whose N curve does not bracket MCTS*'s "
              "tokens; the value is its end's, at the tokens shown. Means are over seeds ± "
              "the standard error (sample std / sqrt(n)), at the iterations every folder "
              "has; '-': a column the folder lacks."]
    if any(run.held_out for run in runs):
        legend.append(f"`*` {HELD_OUT}.")
    parts.append("\n\n".join(legend))
    return "\n\n".join(parts)


def report(runs: Sequence[Run], command: str, notes: str | None = None) -> str:
    """The whole report in markdown (see the module docstring)."""
    methods = methods_of(runs)
    parts = [header(runs, command, notes), "## Methods by iteration"]
    parts += [seed_tables(run, methods) for run in runs]
    parts += [f"### mean over seeds (n={len(runs)})\n\n" + mean_table(runs, methods),
              "## Base models and data\n\n" + base_table(runs),
              "## Iteration-0 gates\n\n" + gates_section(runs),
              "## Claims\n\nEach cell: the difference, and whether the claim holds there "
              "(yes/NO; n/a: a column it needs is missing). The mean row: mean ± SE over "
              "seeds of the differences."]
    parts += [f"### {name} at every iteration\n\nMCTS* accuracy minus the baseline's.\n\n"
              + every_iteration_table(runs, diff) for name, diff in EVERY_ITERATION]
    parts.append("### (d)-(f): the last iteration minus iteration 0\n\n" + rises_table(runs))
    return "\n\n".join(parts) + "\n"


def parse_seeds(text: str) -> set[int]:
    """``"3,4,5"`` -> {3, 4, 5}."""
    try:
        return {int(s) for s in text.split(",") if s.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seeds")


def main(argv: Sequence[str] | None = None) -> str:
    """Parse the command line, write and print the report; returns its text."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="loop folders (stage.dir)")
    parser.add_argument("--held-out", type=parse_seeds, default=set(),
                        help="seeds run once after the defaults were frozen, e.g. 3,4,5")
    parser.add_argument("--notes", default=None,
                        help="text under the header: the machine, its load, wall times")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "experiments" / "results" / "loop_seeds.md")
    args = parser.parse_args(argv)
    runs = load_runs(args.folders, args.held_out)
    missing = sorted(args.held_out - {run.seed for run in runs})
    if missing:
        log.warning("held-out seed(s) %s not among the folders", missing)
    text = report(runs, shlex.join(["python", "experiments/loop_seeds.py", *argv]), args.notes)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return text


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    main()

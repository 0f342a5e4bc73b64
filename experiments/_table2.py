"""The paper's Table 2 on this project: ReST-MCTS* self-training against ReST-EM and DPO
over two iterations, at equal policy tokens per training question, over seeds.

    .venv/bin/python experiments/_table2.py --seeds 0,1,2,3,4,5 \\
        --out experiments/results/table2_countdown.md -- threads=1

For each seed, :func:`run_table2` runs (or resumes) three loops, one after another:
``stage=loop`` (ReST-MCTS*, first: the budget is measured there), then ``stage.method=rest_em``
and ``stage.method=dpo`` with ``stage.budget.match=<that seed's ReST-MCTS* folder>``, so each
baseline samples, per training question and iteration, the policy tokens MCTS* spent there
(docs/loop.md, "Baselines"). Every loop lives in ``<root>/<method>-s<seed>/`` (``--root``,
default ``outputs/table2``) and resumes when run again.

The table (:func:`table2_markdown`) has the paper's layout: one row per method, one column per
iteration 0, 1, 2; each cell the held-out accuracy of the policy alone (greedy, the loop's
``policy/greedy_acc``; ``cot/acc`` where the policy evaluation is off) as the mean over seeds
and min..max, and beside it the policy tokens per training question that iteration spent on
its training data (``data/train_tokens_per_question``, mean over seeds; iteration 0 trains
nothing). The file starts with the command and the machine's load (``uptime``).
``experiments/paper_tables.py`` imports :func:`run_table2`.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]

# (stage.method, table label); rest_mcts first: the others match its budget
METHODS: tuple[tuple[str, str], ...] = (
    ("rest_mcts", "ReST-MCTS*"),
    ("rest_em", "ReST-EM"),
    ("dpo", "DPO (verifier pairs; Self-Rewarding in the paper)"),
)
ACCURACY = ("policy/greedy_acc", "cot/acc")  # the first a row holds
TOKENS = "data/train_tokens_per_question"
Row = Mapping[str, float]


def loop_folder(root: Path, method: str, seed: int) -> Path:
    return Path(root) / f"{method}-s{seed}"


def loop_command(root: Path, method: str, seed: int, overrides: Sequence[str] = ()) -> list[str]:
    """``run.py stage=loop`` of one method and seed; a baseline matches the seed's ReST-MCTS*
    loop folder."""
    cmd = [sys.executable, str(ROOT / "run.py"), "stage=loop", f"seed={seed}",
           f"stage.dir={loop_folder(root, method, seed)}",
           f"hydra.run.dir={Path(root) / 'hydra' / f'{method}-s{seed}'}"]
    if method != "rest_mcts":
        cmd += [f"stage.method={method}",
                f"stage.budget.match={loop_folder(root, 'rest_mcts', seed)}"]
    return cmd + list(overrides)


def read_results(folder: Path) -> list[dict[str, float]]:
    """A loop folder's ``results.csv``: one dict per iteration (empty cells left out); a
    ReST-MCTS* row written before the CSV held :data:`TOKENS` takes it from its search's
    manifest."""
    import json

    path = Path(folder) / "results.csv"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (is {folder} a finished loop folder?)")
    with open(path) as fh:
        rows = [{k: float(v) for k, v in row.items() if k and v not in ("", None)}
                for row in csv.DictReader(fh)]
    for row in rows:
        search = Path(folder) / f"iter_{int(row.get('iteration', 0))}" / "search" / "manifest.json"
        if TOKENS not in row and search.is_file():
            outputs = json.loads(search.read_text()).get("outputs") or {}
            if "search/policy_tokens_per_question" in outputs:
                row[TOKENS] = float(outputs["search/policy_tokens_per_question"])
    return sorted(rows, key=lambda row: row.get("iteration", 0.0))


def accuracy(row: Row) -> float | None:
    return next((row[k] for k in ACCURACY if k in row), None)


def table2_markdown(results: Mapping[str, Mapping[int, Sequence[Row]]],
                    iterations: int = 2) -> str:
    """The table: ``results`` maps a method (of :data:`METHODS`) to seed -> its rows by
    iteration. A cell: ``mean (min..max) · tok/q``; "-" where no seed has the iteration."""
    header = ["method", *(f"iteration {k}" for k in range(iterations + 1))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, label in METHODS:
        if method not in results:
            continue
        cells = [label]
        for k in range(iterations + 1):
            rows = [r[k] for r in results[method].values() if len(r) > k]
            accs = [a for a in (accuracy(r) for r in rows) if a is not None]
            if not accs:
                cells.append("-")
                continue
            cell = f"{statistics.mean(accs):.3f} ({min(accs):.3f}..{max(accs):.3f})"
            tokens = [r[TOKENS] for r in rows if TOKENS in r]
            cell += f" · {statistics.mean(tokens):.0f} tok/q" if tokens else ""
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    seeds = sorted({s for per in results.values() for s in per})
    note = (f"Held-out accuracy of the policy alone (greedy), mean (min..max) over seeds "
            f"{', '.join(map(str, seeds))}; tok/q: policy tokens per training question spent on "
            "the iteration's training data (MCTS* searches for ReST-MCTS*, samples to the same "
            "budget for the others; mean over seeds). Iteration 0 is policy_0 for every method.")
    return note + "\n\n" + "\n".join(lines) + "\n"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "uptime unavailable"


def run_table2(
    seeds: Sequence[int],
    *,
    root: Path = ROOT / "outputs" / "table2",
    out: Path | None = ROOT / "experiments" / "results" / "table2.md",
    overrides: Sequence[str] = (),
    iterations: int = 2,
    run: Callable[[list[str]], None] | None = None,
    command: str | None = None,
) -> str:
    """Run (or resume) the three loops of every seed, rest_mcts first, and return (and write
    to ``out`` unless None) the table with its command and the machine's load.

    Args:
        seeds: the seeds.
        root: where the loop folders go (``<root>/<method>-s<seed>``).
        overrides: config overrides of every loop (``threads=1``, a smaller world, ...).
        iterations: K (``stage.iterations``).
        run: runs one command (default: ``subprocess.run(cmd, check=True, cwd=ROOT)``).
        command: the command line the file names (default: this script's equivalent).
    """
    run = run or (lambda cmd: subprocess.run(cmd, check=True, cwd=ROOT))
    overrides = [f"stage.iterations={iterations}", *overrides]
    load_before = uptime()
    results: dict[str, dict[int, list[dict[str, float]]]] = {m: {} for m, _ in METHODS}
    for seed in seeds:
        for method, _ in METHODS:
            run(loop_command(root, method, seed, overrides))
            results[method][seed] = read_results(loop_folder(root, method, seed))
    command = command or " ".join(shlex.quote(a) for a in [
        ".venv/bin/python", "experiments/_table2.py", "--seeds", ",".join(map(str, seeds)),
        "--root", str(root), "--out", str(out), "--iterations", str(iterations), "--",
        *overrides[1:]])
    text = ("# Table 2: self-training methods at equal policy tokens per training question\n\n"
            f"Command: `{command}`\n\nMachine load before: `{load_before}`; after: "
            f"`{uptime()}`\n\n" + table2_markdown(results, iterations))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4,5", help="comma-separated seeds")
    parser.add_argument("--root", type=Path, default=ROOT / "outputs" / "table2")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "table2.md")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="config overrides of every loop (after --)")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    print(run_table2(seeds, root=args.root, out=args.out, overrides=args.overrides,
                     iterations=args.iterations))


if __name__ == "__main__":
    main()

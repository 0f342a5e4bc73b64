"""Average the self-training loop's results table over seeds.

    python run.py -m seed=0,1,2                      # the main job, three seeds
    python experiments/loop_seeds.py outputs/loop_runs/countdown-s0-* outputs/loop_runs/countdown-s1-* ...

Reads each loop folder's ``results.csv`` (one row per iteration), prints every seed's tables
(the evaluated methods' accuracy and policy tokens per question; the PRM and data columns)
and the mean (and min..max) per iteration, checks the claims of the main job (iteration 0:
MCTS* above CoT and above self-consistency at MCTS*'s tokens; at every iteration: MCTS*
(paper, the configured search) above self-consistency and above best-of-N with the PRM, both
at MCTS*'s tokens; iteration K: policy CoT (200 questions) and policy greedy (stage.policy_eval's
larger set) above iteration 0, PRM sibling ranking accuracy against the exact values above
iteration 0's, as issue 12 states the claims) per seed and on the mean, and writes the
report to experiments/results/loop_seeds.md. A column a folder lacks (an older loop, or a
method left out of ``stage.eval_methods``) reads as nan, and a claim that needs it fails.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The loop's methods (rest_mcts.loop.evaluate.EVAL_METHODS: column prefixes), then the PRM.
METHODS = ["cot", "sc", "best_of_n", "best_of_n_prod", "weighted_vote", "pass@n", "bfs", "mcts",
           "mcts_lean", "mcts_widen"]
# sc/n: older folders' one N; sampled/n_max: the one sampling pass the rules are read from
METHOD_COLUMNS = ["sc/n", "sampled/n_max"] + [f"{m}/{what}" for m in METHODS
                                               for what in ("acc", "tokens")]
OTHER_COLUMNS = ["policy/greedy_acc", "policy/pass@k", "prm/val_sibling_acc", "prm/val_oracle_mse",
                 "prm/val_oracle_acc@0.1", "data/d_v_rows", "data/d_g_traces"]
SHOWN = METHOD_COLUMNS + OTHER_COLUMNS
NAN = float("nan")


def read(folder: Path) -> list[dict[str, float]]:
    path = folder / "results.csv"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (is {folder} a finished loop folder?)")
    with open(path) as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def claims(rows: list[dict[str, float]]) -> dict[str, bool]:
    first, last = rows[0], rows[-1]
    return {
        "iter 0: MCTS* > CoT": first["mcts/acc"] > first["cot/acc"],
        "iter 0: MCTS* > SC (same tokens)": first["mcts/acc"] > first["sc/acc"],
        # MCTS* (paper) against the sampling baselines at its tokens, every iteration
        "every iter: MCTS* > SC and PRM BoN (same tokens)": all(
            row["mcts/acc"] > row.get("sc/acc", NAN)
            and row["mcts/acc"] > row.get("best_of_n/acc", NAN) for row in rows),
        f"iter {int(last['iteration'])}: CoT > iter 0": last["cot/acc"] > first["cot/acc"],
        # the policy alone on stage.policy_eval's larger question set
        f"iter {int(last['iteration'])}: policy greedy > iter 0":
            last.get("policy/greedy_acc", NAN) > first.get("policy/greedy_acc", NAN),
        # a folder from before val/sibling_acc existed has no such column: the claim fails
        f"iter {int(last['iteration'])}: PRM sibling acc > iter 0":
            last.get("prm/val_sibling_acc", NAN) > first.get("prm/val_sibling_acc", NAN),
    }


def table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="loop folders (stage.dir)")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "loop_seeds.md")
    args = parser.parse_args()
    runs = {folder.name: read(folder) for folder in args.folders}
    iterations = min(len(rows) for rows in runs.values())
    parts = [f"# loop_seeds\n\n`python experiments/loop_seeds.py` over {len(runs)} loop folders: "
             + ", ".join(runs) + "\n"]
    for columns in (METHOD_COLUMNS, OTHER_COLUMNS):  # two tables, each fits a screen
        lines = []
        for name, rows in runs.items():
            for row in rows[:iterations]:
                lines.append([name, str(int(row["iteration"]))]
                             + [f"{row.get(k, NAN):.3f}" for k in columns])
        for i in range(iterations):
            values = {k: [rows[i].get(k, NAN) for rows in runs.values()] for k in columns}
            lines.append(["**mean**", str(i)] + [
                f"**{sum(v) / len(v):.3f}** ({min(v):.3f}..{max(v):.3f})" for v in values.values()
            ])
        parts.append(table(["run", "iter", *columns], lines))
    mean_rows = [
        {"iteration": float(i), **{k: sum(rows[i].get(k, NAN) for rows in runs.values()) / len(runs)
                                   for k in SHOWN}}
        for i in range(iterations)
    ]
    checks = {name: claims(rows[:iterations]) for name, rows in runs.items()}
    checks["mean"] = claims(mean_rows)
    names = list(next(iter(checks.values())))
    parts.append(table(["run", *names], [
        [run, *("yes" if ok[n] else "NO" for n in names)] for run, ok in checks.items()
    ]))
    report = "\n\n".join(parts) + "\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)


if __name__ == "__main__":
    main()

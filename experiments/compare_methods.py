"""Accuracy and policy tokens per question of every search method on held-out Countdown
problems, with the iteration-0 policy, each scored by the oracle and by an untrained PRM.

    python experiments/compare_methods.py [--problems 200] [--seed 0] [overrides ...]

Every method runs through `stage=eval` (the same code path as `python run.py stage=eval`).
Self-consistency and best-of-N are also run with as many samples as MCTS* (oracle) spent
policy tokens, so methods are compared at equal compute. The oracle scorer is for analysis
only: it shows what the search does with a perfect value model. The table goes to stdout
and to experiments/results/compare_methods.md.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import time

from _common import ROOT, compose, markdown_table

SCORERS = {"oracle": "prm=oracle", "untrained": "prm=tiny"}


def run_eval(name: str, overrides: list[str], out_root, common: list[str]) -> dict[str, float]:
    from rest_mcts.stages import run_stage

    cfg = compose(
        "stage=eval", "~logger", f"paths.output_dir={out_root / name}", *common, *overrides
    )
    start = time.time()
    run_stage(cfg)
    from rest_mcts.utils.io import read_json

    metrics = read_json(out_root / name / "metrics.json")
    logging.getLogger("compare").warning("%s done in %.0f s", name, time.time() - start)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="config overrides, as for run.py")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    out_root = ROOT / "outputs" / "compare_methods" / time.strftime("%Y-%m-%d_%H-%M-%S")
    common = [f"stage.num_problems={args.problems}", f"seed={args.seed}", *args.overrides]
    runs: list[tuple[str, str, dict]] = []

    def add(label: str, scorer: str, overrides: list[str]) -> dict:
        tag = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{label}-{scorer}").strip("_")
        metrics = run_eval(tag, overrides, out_root, common)
        runs.append((label, scorer, metrics))
        return metrics

    cot = add("CoT (greedy)", "-", ["search=cot"])
    sc8 = add("self-consistency@8", "-", ["search=self_consistency", "search.n=8"])
    mcts = {}
    for scorer, prm in SCORERS.items():
        mcts[scorer] = add("MCTS*", scorer, ["search=mcts_star", prm])
        add("BFS (beam 3, b=3)", scorer, ["search=bfs", prm])
        add("best-of-8", scorer, ["search=best_of_n", "search.n=8", prm])
        add("value-weighted vote@8", scorer, ["search=weighted_vote", "search.n=8", prm])

    # Equal compute: as many sampled solutions as MCTS* (oracle) spent policy tokens on.
    per_sample = sc8["eval/policy_tokens_per_question"] / 8
    n_eq = max(1, math.ceil(mcts["oracle"]["eval/policy_tokens_per_question"] / per_sample))
    add(f"self-consistency@{n_eq} (= MCTS* oracle tokens)", "-",
        ["search=self_consistency", f"search.n={n_eq}"])
    add(f"best-of-{n_eq} (= MCTS* oracle tokens)", "oracle",
        ["search=best_of_n", f"search.n={n_eq}", "prm=oracle"])

    rows = [
        [label, scorer, f"{m['eval/acc']:.3f}", f"{m['eval/policy_tokens_per_question']:.0f}",
         f"{m['eval/prm_calls_per_question']:.1f}", f"{m['eval/wall_seconds_per_question']:.2f}"]
        for label, scorer, m in runs
    ]
    header = ["method", "scorer", "accuracy", "policy tokens / question",
              "PRM calls / question", "wall s / question (batched)"]
    table = markdown_table(header, rows)
    n = int(cot["eval/num_questions"])
    note = (
        f"{n} held-out Countdown problems (test split), iteration-0 policy, seed {args.seed}, "
        f"overrides: {' '.join(args.overrides) or 'none'}. Untrained = the policy backbone "
        "with a fresh regression head."
    )
    print(note + "\n\n" + table)
    suffix = "" if args.seed == 0 and not args.overrides else f"_seed{args.seed}"
    out = ROOT / "experiments" / "results" / f"compare_methods{suffix}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# compare_methods\n\n`python experiments/compare_methods.py`\n\n"
        + note + "\n\n" + table + "\n"
    )


if __name__ == "__main__":
    main()

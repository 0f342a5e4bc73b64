"""Policy SFT options on one loop's D_G: what makes policy_1 better than policy_0?

    python experiments/sft_options.py outputs/loop_runs/countdown-s0-<hash> [--split val]

Takes a finished loop folder (default config of its seed), its base policy and its D_G_1
(``iter_1/extract/d_g.jsonl``: the correct traces of MCTS* on the training questions), and
fine-tunes policy_1 with each setting of :data:`OPTIONS` through the loop's own
``train_policy_sft``; every policy is then evaluated alone (greedy accuracy, share of legal
greedy steps, pass@8 at temperature 1) on every question of ``--split`` (default ``val``:
the loop reports ``test``, so choosing an option here does not tune on the reported split).
A quick probe of the mechanism; the loop variants (``experiments/loop_variants.py``) measure
the chosen options through whole loops on several seeds. Writes
experiments/results/sft_options_<folder>.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import ROOT, compose, markdown_table

# name: overrides of the loop's SFT settings (stage.sft over policy.*)
OPTIONS: dict[str, dict] = {
    "default (lr 1e-3, 4 ep)": {},
    "lr 3e-4, 4 ep": {"lr": 3e-4},
    "lr 1e-4, 4 ep": {"lr": 1e-4},
    "lr 1e-4, 12 ep": {"lr": 1e-4, "epochs": 12},
    "lr 3e-4, 12 ep": {"lr": 3e-4, "epochs": 12},
    "lr 1e-3, 12 ep": {"epochs": 12},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--only", nargs="*", help="names of OPTIONS to run (default: all)")
    args = parser.parse_args()
    from rest_mcts.runtime.context import Context
    from rest_mcts.loop.evaluate import evaluate_policy_at
    from rest_mcts.loop.train import train_policy_sft
    from rest_mcts.utils.io import read_json

    folder = args.folder.resolve()
    seed = read_json(folder / "loop_config.json")["config"]["seed"]
    cfg = compose("stage=loop", f"seed={seed}", f"paths.output_dir={folder}-sft_options")
    ctx = Context.from_config(cfg)
    sft = ctx.policy.overridden("stage.sft", cfg.stage.get("sft"))
    base = read_json(folder / "iter_0" / "policy" / "manifest.json")["outputs"]["model"]
    d_g = folder / "iter_1" / "extract" / "d_g.jsonl"
    out = folder.parent / f"{folder.name}-sft_options"

    def evaluate(model: str) -> dict[str, float]:
        return evaluate_policy_at(ctx, model, num_problems=100000, samples=8, temperature=1.0,
                                  split=args.split)

    results = {"policy_0 (no SFT)": evaluate(base)}
    for name, change in OPTIONS.items():
        if args.only and name not in args.only:
            continue
        target = out / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
        metrics_file = target / "metrics.json"
        if metrics_file.is_file():
            results[name] = json.loads(metrics_file.read_text())
            continue
        train = train_policy_sft(ctx, [d_g], target / "model", base, settings=sft.replace(**change),
                                 ckpt_dir=target / "checkpoints", val_share=float(cfg.stage.val_share))
        results[name] = {**evaluate(str(target / "model")), "train/steps": train["train/steps"]}
        metrics_file.write_text(json.dumps(results[name], indent=2))
    n = int(next(iter(results.values()))["eval/num_problems"])
    rows = [[name, f"{m['eval/greedy_acc']:.3f}", f"{m['eval/legal_step_rate']:.3f}",
             f"{m['eval/pass@8']:.3f}", f"{m.get('train/steps', 0):.0f}"]
            for name, m in results.items()]
    report = (f"# Policy SFT options on D_G_1 of {folder.name}\n\n"
              f"`python experiments/sft_options.py {args.folder}` -- {n} {args.split} questions; "
              f"D_G_1: {sum(1 for _ in open(d_g))} traces; SFT from policy_0.\n\n"
              + markdown_table(["policy", "greedy acc", "legal steps (greedy)", "pass@8",
                                "SFT steps"], rows) + "\n")
    print(report)
    (ROOT / "experiments" / "results" / f"sft_options_{folder.name}.md").write_text(report)


if __name__ == "__main__":
    main()

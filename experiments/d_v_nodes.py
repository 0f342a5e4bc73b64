"""D_V "paths only" vs "every legal node": PRM_0 quality on the same validation trees.

    python experiments/d_v_nodes.py outputs/loop_runs/countdown-s0-<hash> outputs/loop_runs/countdown-s1-<hash> ...

Each argument is a finished loop folder run with ``stage.d_v_nodes=paths`` (the default). Its
iteration-0 BFS trees (``iter_0/d_v0/bfs/trees``) give both data sets: the loop's own D_V0
(nodes on a root-to-finished-leaf path) and every legal node of the same trees
(``d_v_rows(nodes="all")``). PRM_0 is trained on the second with the loop's exact settings
(``train_prm_model``, ``stage.prm_train.init_epochs``, same seed, same base policy) and both
PRMs are scored by ``prm_validation`` on the loop's fixed validation set (``prm_eval_set``:
every node of BFS trees on the val split) against the exact values: sibling ranking
accuracy, MSE to the exact value, the paper's 0.1-accuracy. The report goes to
experiments/results/d_v_nodes.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import ROOT, compose, markdown_table

KEYS = [("val/sibling_acc", "sibling acc"), ("val/oracle_mse", "oracle MSE"),
        ("val/oracle_acc@0.1", "oracle acc@0.1"), ("val/oracle_spearman", "Spearman")]


def run(folder: Path) -> dict[str, dict[str, float]]:
    from rest_mcts.runtime.context import Context
    from rest_mcts.loop.data import d_v_rows, load_trees
    from rest_mcts.loop.evaluate import prm_validation
    from rest_mcts.loop.train import train_prm_model
    from rest_mcts.utils.io import read_json, write_jsonl

    record = read_json(folder / "loop_config.json")["config"]
    if record["stage"].get("d_v_nodes", "paths") != "paths":
        raise SystemExit(f"error: {folder} was run with stage.d_v_nodes="
                         f"{record['stage']['d_v_nodes']}; give a paths-only loop folder")
    cfg = compose("stage=loop", f"seed={record['seed']}", f"paths.output_dir={folder}-d_v_all")
    from loop_variants import AFTER_ITERATION_0, flat
    from rest_mcts.stages.loop import loop_config

    # iteration 0 (D_V0, PRM_0, the validation set) as today's default config makes it
    mine, theirs = flat(loop_config(cfg)), flat(record)
    differ = [k for k in sorted(mine.keys() | theirs.keys()) if mine.get(k) != theirs.get(k)
              and not f"{k}=".startswith(AFTER_ITERATION_0)]
    if differ:
        raise SystemExit(f"error: {folder}'s iteration 0 was not made by the default config of "
                         f"seed {record['seed']} (differs in {', '.join(differ)})")
    ctx = Context.from_config(cfg)
    base = read_json(folder / "iter_0" / "policy" / "manifest.json")["outputs"]["model"]
    eval_file = read_json(folder / "prm_eval_set" / "manifest.json")["outputs"]["file"]
    out = folder.parent / f"{folder.name}-d_v_all"
    trees = load_trees(folder / "iter_0" / "d_v0" / "bfs" / "trees")
    rows = d_v_rows(trees, nodes="all")
    write_jsonl(out / "d_v_all.jsonl", rows)
    model = out / "prm" / "model"
    if not (model / "manifest.json").is_file():
        train_prm_model(ctx, [out / "d_v_all.jsonl"], model, base,
                        settings=ctx.prm.replace(epochs=int(cfg.stage.prm_train.init_epochs)),
                        ckpt_dir=out / "prm" / "checkpoints", val_share=float(cfg.stage.val_share))
    paths_rows = sum(1 for _ in open(folder / "iter_0" / "d_v0" / "d_v.jsonl"))
    result = {
        "paths": {**prm_validation(ctx, str(folder / "iter_0" / "prm" / "model"), eval_file),
                  "rows": float(paths_rows)},
        "all": {**prm_validation(ctx, str(model), eval_file), "rows": float(len(rows))},
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "d_v_nodes.md")
    args = parser.parse_args()
    results = {folder.name: run(folder.resolve()) for folder in args.folders}
    lines = []
    for name, by_nodes in results.items():
        for nodes in ("paths", "all"):
            m = by_nodes[nodes]
            lines.append([name, nodes, f"{m['rows']:.0f}",
                          *(f"{m.get(k, float('nan')):.4f}" for k, _ in KEYS)])
    for nodes in ("paths", "all"):
        vals = [[r[nodes].get(k, float("nan")) for r in results.values()] for k, _ in KEYS]
        lines.append(["**mean**", nodes, "", *(
            f"**{sum(v) / len(v):.4f}** ({min(v):.4f}..{max(v):.4f})" for v in vals)])
    report = ("# D_V paths only vs every legal node: PRM_0 on the same validation trees\n\n"
              "`python experiments/d_v_nodes.py " + " ".join(args.folders[i].name for i in
                                                            range(len(args.folders)))
              + "`\n\n" + markdown_table(["loop", "D_V nodes", "D_V0 rows",
                                          *(h for _, h in KEYS)], lines) + "\n")
    print(report)
    args.out.write_text(report)


if __name__ == "__main__":
    main()

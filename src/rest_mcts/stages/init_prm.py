"""stage=init_prm: the initial PRM data D_V0 and PRM_0 (Algorithm 1, line 1 of the paper).

`stage.method=bfs` (tree sampling from the base policy) or `reference` (reference
solutions and a weak model's negatives): `rest_mcts.loop.d_v0`. PRM_0 is then trained on
D_V0 from the policy backbone with a fresh regression head into `<run>/prm`.

    python run.py stage=init_prm                         # bfs on stage.num_problems questions
    python run.py stage=init_prm stage.method=reference
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rest_mcts.config import from_node
from rest_mcts.loop.d_v0 import InitPRMSettings, build_d_v0
from rest_mcts.loop.data import check_d_v_nodes
from rest_mcts.loop.train import train_prm_model
from rest_mcts.runtime.policy0 import ensure_policy0
from rest_mcts.runtime.spec import RunSpec
from rest_mcts.tracking import stage_run


def init_prm(cfg: DictConfig, spec: RunSpec | None = None) -> dict[str, float]:
    ctx = (spec or RunSpec.from_config(cfg)).ctx
    init = from_node(InitPRMSettings, cfg.stage, option="stage")
    out = Path(cfg.paths.output_dir)
    tracker = stage_run(spec)
    base = ensure_policy0(ctx, out)
    nodes = cfg.stage.get("d_v_nodes", "paths")
    check_d_v_nodes(nodes, "stage.d_v_nodes")
    metrics = build_d_v0(ctx, init, out, base, nodes)
    metrics.update(train_prm_model(ctx, [out / "d_v.jsonl"], out / "prm", base,
                                   logger=tracker.lightning_logger(),
                                   val_share=cfg.stage.val_share))
    tracker.log_artifact(out / "d_v.jsonl", "d_v", "dataset", aliases=["d_v0"])
    tracker.log_artifact(out / "prm", "prm", "model", aliases=["prm_0"])
    return metrics

"""stage=init_prm: the initial PRM data D_V0 and PRM_0 (Algorithm 1, line 1 of the paper).

`stage.method=bfs` (tree sampling from the base policy) or `reference` (reference
solutions and a weak model's negatives): `rest_mcts.loop.d_v0`. PRM_0 is then trained on
D_V0 from the policy backbone with a fresh regression head into `<run>/prm`
(`rest_mcts.loop.prm0.build_prm0`, which also builds `prm=trained`'s cached PRM_0).

    python run.py stage=init_prm                         # bfs on stage.num_problems questions
    python run.py stage=init_prm stage.method=reference
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rest_mcts.loop.prm0 import build_prm0, prm0_recipe
from rest_mcts.runtime.policy0 import ensure_policy0
from rest_mcts.runtime.spec import RunSpec
from rest_mcts.tracking import stage_run


def init_prm(cfg: DictConfig, spec: RunSpec | None = None) -> dict[str, float]:
    ctx = (spec or RunSpec.from_config(cfg)).ctx
    recipe = prm0_recipe(cfg.stage, option="stage", strict=False)
    out = Path(cfg.paths.output_dir)
    tracker = stage_run(spec)
    base = ensure_policy0(ctx, out)
    metrics = build_prm0(ctx, recipe, out, out / "prm", base, logger=tracker.lightning_logger())
    tracker.log_artifact(out / "d_v.jsonl", "d_v", "dataset", aliases=["d_v0"])
    tracker.log_artifact(out / "prm", "prm", "model", aliases=["prm_0"])
    return metrics

"""stage=bootstrap: train (or reuse) the iteration-0 policy, then evaluate it held out.

The tiny Llama policy is trained on a mix of correct solutions and random legal paths
(`data.bootstrap`), so that it writes legal steps but solves only a minority of problems
greedily (`rest_mcts.runtime.policy0.train_policy0`); cached under a key of its config.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from rest_mcts.loop.evaluate import evaluate_policy_at
from rest_mcts.runtime.policy0 import policy0_metrics, train_policy0
from rest_mcts.runtime.spec import RunSpec
from rest_mcts.tracking import stage_run

log = logging.getLogger(__name__)


def bootstrap(cfg: DictConfig, spec: RunSpec | None = None) -> dict[str, float]:
    ctx = (spec or RunSpec.from_config(cfg)).ctx
    s, out, path = cfg.stage, Path(cfg.paths.output_dir), ctx.policy0_dir()
    tracker = stage_run(spec)
    if s.use_cache and (path / "manifest.json").exists():
        log.info("reusing cached iteration-0 policy %s", path)
        metrics = policy0_metrics(path)
    else:
        metrics = train_policy0(ctx, path, ckpt_dir=out / "checkpoints",
                                logger=tracker.lightning_logger())
    metrics.update(evaluate_policy_at(ctx, path, num_problems=s.eval_problems,
                                      samples=s.eval_samples, temperature=s.eval_temperature))
    log.info("iteration-0 policy: greedy acc %.3f, legal steps %.3f, pass@%d %.3f (%s)",
             metrics["eval/greedy_acc"], metrics["eval/legal_step_rate"], s.eval_samples,
             metrics[f"eval/pass@{s.eval_samples}"], path)
    tracker.log_artifact(path, "policy", "model", aliases=["policy_0"])
    return metrics

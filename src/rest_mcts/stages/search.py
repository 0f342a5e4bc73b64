"""stage=search and stage=eval: a search method over many questions on the batching engine.

Writes `shard.json`, `trees/<id>.json`, `results.jsonl` and `metrics.json` into the run
folder; running again with the same `hydra.run.dir` skips the questions already done
(`rest_mcts.loop.search_run`). With `data.shard`/`data.num_shards` a job searches its share
of the questions (Slurm arrays, README "Slurm"); `stage=merge` joins the shards.
`stage=search` labels the trees for training (verified leaves); `stage=eval` reports accuracy
on a held-out split.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rest_mcts.config import check_value, from_node
from rest_mcts.loop.context import Context
from rest_mcts.loop.search_run import SearchRun, run_search
from rest_mcts.loop.train import ensure_policy0
from rest_mcts.search.configs import search_config_from
from rest_mcts.tracking import stage_run


def limited(cfg: DictConfig) -> int:
    """``stage.num_problems``, at most ``data.limit`` when set (a dataset world also reads at
    most ``data.limit`` records; a generated world, Countdown, searches at most that many)."""
    limit = cfg.data.get("limit")
    if limit is None:
        return cfg.stage.num_problems
    check_value("data.limit", limit, 1, integer=True)
    return min(int(cfg.stage.num_problems), int(limit))


def search(cfg: DictConfig) -> dict[str, float]:
    ctx = Context.from_config(cfg)
    method = search_config_from(cfg.search)
    run = from_node(SearchRun, cfg.stage, prefix=cfg.stage.name,
                    shard=int(cfg.data.get("shard", 0)),
                    num_shards=int(cfg.data.get("num_shards", 1)),
                    num_problems=limited(cfg))
    ctx.require_trained_prm(method)  # before any model is loaded
    out = Path(cfg.paths.output_dir)
    tracker = stage_run()
    policy = ensure_policy0(ctx, out)
    metrics = run_search(ctx, out, method, run, policy_path=policy, prm_path=ctx.prm_path)
    tracker.log_samples(out, f"{run.prefix}/samples", method=method.name)
    return metrics

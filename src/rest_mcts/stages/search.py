"""stage=search and stage=eval: a search method over many questions on the batching engine.

Writes `shard.json`, `trees/<id>.json`, `results.jsonl` and `metrics.json` into the run
folder; running again with the same `hydra.run.dir` skips the questions already done
(`rest_mcts.runtime.search_run`). One run at a time owns the folder, and only the config that
made it resumes there (`claim_run_dir`: `run_config.json`; `run_stage` holds the lock).
With `data.shard`/`data.num_shards` a job searches its share of the questions (Slurm
arrays, docs/scale_out.md, "Slurm"); `stage=merge` joins the shards.
`stage=search` labels the trees for training (verified leaves); `stage=eval` reports accuracy
on a held-out split.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rest_mcts.config import check_value, from_node
from rest_mcts.loop.prm0 import ensure_prm0
from rest_mcts.runtime.claims import claim_config
from rest_mcts.runtime.keys import run_key_config
from rest_mcts.runtime.policy0 import ensure_policy0
from rest_mcts.runtime.search_run import SearchRun, run_search
from rest_mcts.runtime.spec import RunSpec
from rest_mcts.search.registry import config_needs_scorer
from rest_mcts.tracking import stage_run

# The record of the config that made a search/eval folder.
RUN_CONFIG = "run_config.json"

def limited(cfg: DictConfig) -> int:
    """``stage.num_problems``, at most ``data.limit`` when set (a dataset world also reads at
    most ``data.limit`` records; a generated world, Countdown, searches at most that many)."""
    limit = cfg.data.get("limit")
    if limit is None:
        return cfg.stage.num_problems
    check_value("data.limit", limit, 1, integer=True)
    return min(int(cfg.stage.num_problems), int(limit))


def search_config(cfg: DictConfig) -> dict:
    """Every option that shapes a search/eval folder's results
    (:func:`rest_mcts.runtime.keys.run_key_config`: the result config less speed-only options,
    :data:`rest_mcts.runtime.keys.THROUGHPUT_KEYS`). Sharding is left out: ``shard.json``
    holds it (:func:`rest_mcts.runtime.search_run.claim_shard`)."""
    return run_key_config(cfg)


def claim_run_dir(cfg: DictConfig, out: Path) -> None:
    """Record the run's config in ``out/run_config.json``, or check it on a resume: a folder
    made by another config is refused in one line naming the options that differ (its answers
    would be reported under this config)."""
    claim_config(out, search_config(cfg), RUN_CONFIG, option="hydra.run.dir")


def search(cfg: DictConfig, spec: RunSpec | None = None) -> dict[str, float]:
    """Search (or evaluate on) the run's questions with ``spec.search`` (``spec``: the run
    spec ``run_stage`` built; None: built here)."""
    spec = spec or RunSpec.from_config(cfg)
    ctx, method = spec.ctx, spec.search
    run = from_node(SearchRun, cfg.stage, prefix=cfg.stage.name,
                    shard=int(cfg.data.get("shard", 0)),
                    num_shards=int(cfg.data.get("num_shards", 1)),
                    num_problems=limited(cfg))
    ctx.require_trained_prm(method)  # before any model is loaded
    out = Path(cfg.paths.output_dir)
    tracker = stage_run(spec)
    policy = ensure_policy0(ctx, out)
    prm = ensure_prm0(ctx, out, policy) if config_needs_scorer(method) else ctx.prm_path
    metrics = run_search(ctx, out, method, run, policy_path=policy, prm_path=prm)
    tracker.log_samples(out, f"{run.prefix}/samples", method=method.name)
    return metrics

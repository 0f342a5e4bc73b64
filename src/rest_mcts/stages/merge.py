"""stage=merge: join the folders of a sharded stage=search|eval (``data.shard`` of
``data.num_shards``, e.g. the jobs of a Slurm multirun) into one ``results.jsonl``, its trees,
``merge.json`` (duplicated and missing questions, one line each) and ``metrics.json``
recomputed from the merged rows (``rest_mcts.runtime.merge``).

    python run.py stage=merge stage.sweep_dir=multirun/search/<time>
    python run.py stage=merge 'stage.dirs=[outputs/search/a,outputs/search/b]'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from rest_mcts.runtime.merge import merge_shards, shard_dirs
from rest_mcts.tracking import stage_run

if TYPE_CHECKING:
    from rest_mcts.runtime.spec import RunSpec


def merge(cfg: DictConfig, spec: RunSpec | None = None) -> dict[str, float]:
    """``spec``: unused (this stage needs no Context)."""
    dirs = shard_dirs(list(cfg.stage.get("dirs") or []), cfg.stage.get("sweep_dir"))
    tracker = stage_run(spec)
    metrics, _ = merge_shards(dirs, cfg.paths.output_dir, bool(cfg.stage.get("copy_trees", True)))
    tracker.log_samples(cfg.paths.output_dir, "eval/samples")
    return metrics

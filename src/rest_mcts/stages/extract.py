"""stage=extract: D_V (`d_v.jsonl`), D_G (`d_g.jsonl`) and `counts.json` of a folder of
verified search trees (`rest_mcts.loop.data.extract_data`, the loop's own writer).

    python run.py stage=extract stage.trees_dir=outputs/search/<run>/trees
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from rest_mcts.config import ConfigError, check_value
from rest_mcts.loop.data import check_d_v_nodes, extract_data
from rest_mcts.tracking import stage_run

if TYPE_CHECKING:
    from rest_mcts.runtime.spec import RunSpec


def extract(cfg: DictConfig, spec: RunSpec | None = None) -> dict[str, float]:
    """``spec``: unused (this stage needs no Context)."""
    if not cfg.stage.trees_dir:
        raise ConfigError("stage.trees_dir is required (a folder of verified search trees)")
    if cfg.stage.min_value is not None:
        check_value("stage.min_value", cfg.stage.min_value, 0, 1)
    nodes = cfg.stage.get("d_v_nodes", "paths")
    check_d_v_nodes(nodes, "stage.d_v_nodes")
    tracker = stage_run(spec)
    metrics = extract_data(cfg.stage.trees_dir, cfg.paths.output_dir, cfg.stage.min_value, nodes)
    for name in ("d_v", "d_g"):
        tracker.log_artifact(f"{cfg.paths.output_dir}/{name}.jsonl", name, "dataset")
    return metrics

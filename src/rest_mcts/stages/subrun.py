"""Running one stage inside another: a copy of the config with a few settings replaced.

The self-training loop runs searches, training and evaluation as steps of one job; each step
gets the loop's config with its own output folder, models and search method, and no logger
of its own (the loop logs once per iteration).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rest_mcts.config import ConfigError


def derive(cfg: DictConfig, updates: dict[str, Any]) -> DictConfig:
    """A copy of ``cfg`` with dotted keys replaced (``{"stage.split": "test", ...}``);
    a DictConfig or dict value replaces the whole node."""
    new = copy.deepcopy(cfg)
    with open_dict(new):
        for key, value in updates.items():
            OmegaConf.update(new, key, value, merge=False, force_add=True)
    return new


def config_dir() -> Path:
    """The primary config folder: the one Hydra composed from (when running under Hydra),
    else the repository's ``conf/``."""
    try:
        from hydra.core.hydra_config import HydraConfig

        for source in HydraConfig.get().runtime.config_sources:
            if source.provider == "main" and source.path.startswith("file://"):
                return Path(source.path[len("file://"):])
    except ValueError:  # not running under Hydra
        pass
    return Path(__file__).resolve().parents[3] / "conf"


def search_config(cfg: DictConfig, name: str, overrides: dict[str, Any] | None = None) -> DictConfig:
    """The config of search method ``name`` (``conf/search/<name>.yaml``) with overrides."""
    path = config_dir() / "search" / f"{name}.yaml"
    if not path.is_file():
        choices = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"search method '{name}' not found (choose from {choices})")
    node = OmegaConf.load(path)
    for key, value in (overrides or {}).items():
        if key not in node:
            raise ConfigError(f"search={name} has no option '{key}' (options: {sorted(node)})")
        node[key] = value
    return node


def run_search_in(
    cfg: DictConfig,
    out_dir: str | Path,
    *,
    search: DictConfig,
    split: str,
    num_problems: int,
    policy_path: str | Path,
    prm_path: str | Path | None,
    label_trees: bool,
    stage_name: str = "search",
) -> dict[str, float]:
    """``stage=search`` (or ``eval``) into ``out_dir`` with the given models and method.

    Resumable like the stage itself: questions already in ``out_dir/results.jsonl`` are
    skipped. Metric names are prefixed ``search/`` (or ``eval/``)."""
    from rest_mcts.stages.search import run_search_stage

    stage = OmegaConf.create({
        "name": stage_name, "split": split, "num_problems": int(num_problems),
        "label_trees": label_trees, "save_trees": True,
        "concurrency": cfg.stage.get("concurrency", 64),
        "cache_values": cfg.stage.get("cache_values", True),
    })
    sub = derive(cfg, {
        "stage": stage,
        "search": search,
        "paths.output_dir": str(out_dir),
        "model.path": str(policy_path),
        "prm.path": None if prm_path is None else str(prm_path),
        "logger": None,
    })
    return run_search_stage(sub)

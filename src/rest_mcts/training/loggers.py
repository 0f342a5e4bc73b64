"""Build the Lightning logger from the `logger` config group."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import instantiate

log = logging.getLogger(__name__)


def build_logger(cfg_logger: DictConfig | None, save_dir: str | Path) -> Any:
    """Instantiate `cfg.logger` (wandb, csv) or return False when it is null.

    wandb runs offline when `offline` is null and WANDB_API_KEY is unset, so a machine
    without a key or network still logs everything locally (`wandb sync` uploads it later).
    """
    if cfg_logger is None:
        return False
    node = OmegaConf.to_container(cfg_logger, resolve=True)
    node["save_dir"] = str(save_dir)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    if "WandbLogger" in str(node.get("_target_", "")):
        if node.get("offline") is None:
            node["offline"] = not os.environ.get("WANDB_API_KEY")
        if node["offline"]:
            os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        log.info("wandb logger (%s)", "offline" if node["offline"] else "online")
    return instantiate(node, "logger")


def finish_logger(logger: Any) -> None:
    """Close the wandb run (serial multirun jobs share one process)."""
    if logger and "Wandb" in type(logger).__name__:
        import wandb

        wandb.finish()


def log_and_finish(logger: Any, metrics: dict[str, float]) -> None:
    """Log a stage's final scalar metrics to the run's logger, then close it."""
    if logger:
        logger.log_metrics({k: float(v) for k, v in metrics.items()})
        logger.save()
    finish_logger(logger)

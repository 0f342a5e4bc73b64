"""Build the Lightning logger from the `logger` config group, and close wandb runs.

Stages log through :mod:`rest_mcts.tracking` (one wandb run per stage, which hands Lightning
a WandbLogger on that run); this module builds a stand-alone logger from the config
(`run_logger`; `build_logger` lives in :mod:`rest_mcts.tracking`, below this layer) and
closes wandb runs. Serial multirun jobs
(`python run.py -m ...`) share one process: a wandb run left open by one job (finished or
failed) would swallow the next job's metrics, so every path closes it -- `run_logger` as a
context manager, and `close_wandb_run` in `rest_mcts.stages.run_stage`'s `finally`.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig

from rest_mcts.tracking import _wandb_logger_class, build_logger

__all__ = ["build_logger", "close_wandb_run", "finish_logger", "is_wandb", "run_logger"]


def is_wandb(logger: Any) -> bool:
    """Is `logger` a Lightning WandbLogger (whose run must be closed with wandb.finish)?"""
    if not logger:
        return False
    wandb_logger = _wandb_logger_class()
    return wandb_logger is not None and isinstance(logger, wandb_logger)


def close_wandb_run(failed: bool = False) -> bool:
    """Finish the process's open wandb run, if any (marked failed with `failed`).

    Returns whether a run was open. Never imports wandb: no import, no run."""
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return False
    wandb.finish(exit_code=1 if failed else 0)
    return True


def finish_logger(logger: Any) -> None:
    """Close the wandb run (serial multirun jobs share one process)."""
    if is_wandb(logger):
        close_wandb_run()


@contextlib.contextmanager
def run_logger(cfg_logger: DictConfig | None, save_dir: str | Path) -> Iterator[Any]:
    """`with run_logger(cfg.logger, out) as logger:` -- the logger of `build_logger`, whose
    wandb run is closed on leaving the block, also when the block raises (marked failed)."""
    logger = build_logger(cfg_logger, save_dir)
    try:
        yield logger
    except BaseException:
        if is_wandb(logger):
            close_wandb_run(failed=True)
        raise
    finish_logger(logger)


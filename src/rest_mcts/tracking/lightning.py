"""The Lightning logger built from the ``logger`` config group, and the closing of wandb runs.

Stages log through :class:`rest_mcts.tracking.run.StageRun` (one wandb run per stage, which
hands Lightning a WandbLogger on that run, or the CSV logger :func:`build_logger` makes);
:func:`run_logger` gives a stand-alone logger whose run closes with its block. Serial
multirun jobs (``python run.py -m ...``) share one process: a wandb run left open by one job
(finished or failed) would swallow the next job's metrics, so every path closes it --
:func:`run_logger` as a context manager, and :func:`close_wandb_run` on
:func:`rest_mcts.stages.run_stage`'s resource stack.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import instantiate
from rest_mcts.tracking.credentials import has_credentials

log = logging.getLogger(__name__)

# Options of conf/logger/wandb.yaml that are ours, not WandbLogger's / wandb.init's.
OWN_OPTIONS = ("log_artifacts", "table_rows")


def build_logger(cfg_logger: DictConfig | None, save_dir: str | Path) -> Any:
    """Instantiate `cfg.logger` (wandb, csv) or return False when it is null.

    wandb runs offline when `offline` is null and no credentials exist (WANDB_API_KEY or a
    key stored by `wandb login`: :func:`has_credentials`), so a machine
    without a key or network still logs everything locally (`wandb sync` uploads it later).
    Stages log through :class:`StageRun`, which hands Lightning a logger on its run.
    """
    if cfg_logger is None:
        return False
    node = OmegaConf.to_container(cfg_logger, resolve=True)
    for key in OWN_OPTIONS:  # ours, not WandbLogger's
        node.pop(key, None)
    node["save_dir"] = str(save_dir)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    wandb_logger = _is_wandb_class(node.get("_target_"))
    if wandb_logger:
        if node.get("offline") is None:
            node["offline"] = not has_credentials()
        if node["offline"]:
            os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        log.info("wandb logger (%s)", "offline" if node["offline"] else "online")
    logger = instantiate(node, "logger")
    if wandb_logger:
        # Lightning always passes `anonymous=None` to wandb.init, which wandb (0.31 here)
        # answers with "The anonymous setting has no effect" on every run; None means unset.
        init = getattr(logger, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous") is None:
            init.pop("anonymous", None)
    return logger


def _wandb_logger_class() -> type | None:
    """Lightning's WandbLogger class (None when Lightning cannot provide it)."""
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:
        return None
    return WandbLogger


def _is_wandb_class(target: Any) -> bool:
    """Does the `_target_` path name Lightning's WandbLogger or a subclass of it?"""
    if not target:
        return False
    from hydra.utils import get_class

    wandb_logger = _wandb_logger_class()
    try:
        cls = get_class(str(target))
    except Exception:  # instantiate reports a bad target with its own one-line error
        return False
    return wandb_logger is not None and isinstance(cls, type) and issubclass(cls, wandb_logger)


def is_wandb_node(node: Any) -> bool:
    """Does the logger config name Lightning's WandbLogger (without importing wandb)?"""
    if node is None:
        return False
    target = str(node.get("_target_", ""))
    if target.endswith("WandbLogger"):
        return True
    return _is_wandb_class(target)


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

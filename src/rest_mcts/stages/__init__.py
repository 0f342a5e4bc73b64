"""Stages: one plain function per stage, taking the composed config, returning metrics.

`run_stage` validates the config, seeds everything, runs the stage and writes the flat
scalar metrics to `<output_dir>/metrics.json`.
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from rest_mcts.config import validate
from rest_mcts.utils.io import write_json
from rest_mcts.utils.seeding import seed_everything

log = logging.getLogger(__name__)

# stage name -> "module:function" (imported lazily: stages pull in torch/transformers).
STAGES: dict[str, str] = {
    "bootstrap": "rest_mcts.stages.bootstrap:bootstrap",
    "search": "rest_mcts.stages.search:search",
    "eval": "rest_mcts.stages.search:evaluate",
    "train_prm": "rest_mcts.stages.train_prm:train_prm",
    "train_policy": "rest_mcts.stages.train_policy:train_policy",
    "init_prm": "rest_mcts.stages.init_prm:init_prm",
    "extract": "rest_mcts.stages.extract:extract",
    "loop": "rest_mcts.stages.loop:loop",
}


def get_stage(name: str) -> Callable[[DictConfig], dict]:
    module, func = STAGES[name].split(":")
    return getattr(importlib.import_module(module), func)


def run_stage(cfg: DictConfig) -> float | None:
    """Validate, seed, run `cfg.stage.name`, write metrics.json; returns the main metric.

    A wandb run the stage left open (it failed, or forgot) is closed on the way out, so the
    next job of a serial multirun starts its own."""
    from rest_mcts.training.loggers import close_wandb_run
    from rest_mcts.utils.console import setup_console

    validate(cfg, STAGES)
    setup_console()
    seed_everything(cfg.seed)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    failed = True
    try:
        metrics = get_stage(cfg.stage.name)(cfg)
        failed = False
    finally:
        close_wandb_run(failed=failed)
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics["time/stage_seconds"] = time.time() - start
    write_json(out / "metrics.json", metrics)
    log.info("metrics written to %s", out / "metrics.json")
    return metrics.get("eval/acc", metrics.get("eval/greedy_acc"))

"""Stages: thin wrappers, one per `stage=<name>`: config -> typed objects -> call -> metrics.

`run_stage` validates the config, seeds everything, runs the stage and writes the flat
scalar metrics to `<output_dir>/metrics.json`, next to the resolved config it ran with
(`<output_dir>/config.yaml`; Hydra's `.hydra/config.yaml` keeps the interpolations). The work itself lives in the library
(`rest_mcts.loop` for Algorithm 1 and its parts); no stage imports another stage.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import validate
from rest_mcts.utils.io import write_json
from rest_mcts.utils.seeding import seed_everything

log = logging.getLogger(__name__)

# stage name -> "module:function" (imported lazily: stages pull in torch/transformers).
STAGES: dict[str, str] = {
    "bootstrap": "rest_mcts.stages.bootstrap:bootstrap",
    "search": "rest_mcts.stages.search:search",
    "eval": "rest_mcts.stages.search:search",
    "train_prm": "rest_mcts.stages.train_prm:train_prm",
    "train_policy": "rest_mcts.stages.train_policy:train_policy",
    "init_prm": "rest_mcts.stages.init_prm:init_prm",
    "extract": "rest_mcts.stages.extract:extract",
    "loop": "rest_mcts.stages.loop:loop",
    "merge": "rest_mcts.stages.merge:merge",
    "view": "rest_mcts.stages.view:view",
}


# Stages that build no policy backend or value scorer (their packages are not checked).
NO_MODEL_STAGES = ("merge", "view", "extract")

# Stages whose run folder one run owns at a time (a lock held for the stage's lifetime) and
# only the config that made it resumes (rest_mcts.stages.search.claim_run_dir).
OWNED_FOLDER_STAGES = ("search", "eval")


def get_stage(name: str) -> Callable[[DictConfig], dict]:
    module, func = STAGES[name].split(":")
    return getattr(importlib.import_module(module), func)


def check_config(cfg: DictConfig) -> None:
    """Every option a run depends on, before any work: the plain checks
    (:func:`rest_mcts.config.validate`), the search method's typed config and the typed
    configs shared by all stages (:class:`rest_mcts.loop.context.Context`) and the packages
    of the configured backends (``backend=vllm`` needs vLLM: asked before policy_0 is trained
    or a model loaded); one-line ConfigError on the first bad one."""
    from rest_mcts.backends.registry import check_installed
    from rest_mcts.loop.context import Context
    from rest_mcts.search.configs import search_config_from

    validate(cfg, STAGES)
    if cfg.get("search") is not None:
        search_config_from(cfg.search)
    Context.from_config(cfg)
    if cfg.stage.name not in NO_MODEL_STAGES:
        check_installed({"backend": ("policy", cfg.get("backend")),
                         "prm.scorer": ("scorer", OmegaConf.select(cfg, "prm.scorer"))})


def is_global_zero() -> bool:
    """Is this process global rank zero of a distributed training run (or no such run)?

    Lightning's strategies set the rank on ``rank_zero_only`` at setup (its import reads
    ``RANK``/``LOCAL_RANK`` for launched ranks); a stage that never loaded Lightning is rank 0."""
    rank_zero = sys.modules.get("lightning_utilities.core.rank_zero")
    return rank_zero is None or getattr(rank_zero.rank_zero_only, "rank", 0) == 0


def write_resolved_config(cfg: DictConfig, out: Path) -> None:
    """`out/config.yaml`: the job's config with every interpolation resolved (what a sweep's
    summary reads the job's settings from) and secrets left out
    (:func:`rest_mcts.tracking.resolved_config`: an `${oc.env:...}` key stays out of the
    folder). A value that cannot be resolved outside Hydra is kept as written."""
    from rest_mcts.tracking import resolved_config

    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(resolved_config(cfg))))


def close_executor_pools() -> None:
    """End the Ray actors (and the local Ray cluster) a stage used, if any
    (:func:`rest_mcts.loop.executors.close_pools`); nothing to do when none was imported."""
    executors = sys.modules.get("rest_mcts.loop.executors")
    if executors is not None:
        executors.close_pools()


def run_stage(cfg: DictConfig) -> float | None:
    """Validate, seed, run `cfg.stage.name`, write config.yaml (resolved) and metrics.json;
    returns the main metric.

    The stage's wandb run (:mod:`rest_mcts.tracking`: config, final metrics) is closed on the
    way out, marked failed when the stage raised, and so is any other wandb run the stage left
    open, so the next job of a serial multirun starts its own; so are the Ray actors of
    ``executor=ray``, which live for the whole stage. A search/eval folder is locked for the
    stage's lifetime and checked against the config that made it, before anything is written
    there (:data:`OWNED_FOLDER_STAGES`)."""
    from rest_mcts.utils.console import setup_console

    # converted GGUF checkpoints are cached here (rest_mcts.models.gguf); the environment
    # carries it to worker processes
    os.environ["REST_MCTS_CACHE_DIR"] = str(cfg.paths.cache_dir)
    check_config(cfg)
    setup_console()
    seed_everything(cfg.seed)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as owned:
        if cfg.stage.name in OWNED_FOLDER_STAGES:  # before anything is written there
            from rest_mcts.stages.search import claim_run_dir
            from rest_mcts.loop.claims import own_folder

            owned.enter_context(own_folder(out))
            claim_run_dir(cfg, out)
        metrics = _run_in(cfg, out)
    return metrics.get("eval/acc", metrics.get("eval/greedy_acc"))


def _run_in(cfg: DictConfig, out: Path) -> dict[str, float]:
    """The stage itself, its tracker run and its files in ``out`` (:func:`run_stage`)."""
    from rest_mcts.tracking import begin_stage_run, end_stage_run
    from rest_mcts.training.loggers import close_wandb_run

    if is_global_zero():
        write_resolved_config(cfg, out)
    start = time.time()
    begin_stage_run(cfg, out)
    failed, metrics = True, None
    try:
        metrics = {k: float(v) for k, v in get_stage(cfg.stage.name)(cfg).items()}
        metrics["time/stage_seconds"] = time.time() - start
        failed = False
    finally:
        try:
            end_stage_run(metrics, failed=failed)  # final metrics, then the run is closed
        finally:
            close_wandb_run(failed=failed)
            close_executor_pools()
    if is_global_zero():  # under DDP every rank runs the stage; one writes its metrics
        write_json(out / "metrics.json", metrics)
        log.info("metrics written to %s", out / "metrics.json")
    return metrics

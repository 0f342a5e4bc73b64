"""Stages: thin wrappers, one per `stage=<name>`: config -> typed objects -> call -> metrics.

`run_stage` validates the config and builds the typed run spec once (`RunSpec`: the run's
Context and search config), seeds everything, runs the stage on that spec and writes the flat
scalar metrics to `<output_dir>/metrics.json`, next to the resolved config it ran with
(`<output_dir>/config.yaml`; Hydra's `.hydra/config.yaml` keeps the interpolations). Every
stage function takes `(cfg, spec)`. The work itself lives in the library (`rest_mcts.loop`
for Algorithm 1 and its parts, `rest_mcts.runtime` for what it stands on); no stage imports
another stage.

One module per stage: `loop` (the main job), `bootstrap`, `init_prm`, `search` (also
``stage=eval``), `extract`, `train_prm`, `train_policy`, `merge` and `view`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import validate
from rest_mcts.utils.io import write_json
from rest_mcts.utils.seeding import environment, fix_threads, seed_everything

if TYPE_CHECKING:  # imported where used: the stages pull in torch/transformers
    from rest_mcts.runtime.spec import RunSpec

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

# Stages that open no tracker run (no wandb run, no CSV log): they make files to look at,
# not results (their metrics.json is still written).
UNTRACKED_STAGES = ("view",)

# Stages whose run folder one run owns at a time (a lock held for the stage's lifetime) and
# only the config that made it resumes (rest_mcts.stages.search.claim_run_dir).
OWNED_FOLDER_STAGES = ("search", "eval")


def get_stage(name: str) -> Callable[[DictConfig, RunSpec], dict]:
    module, func = STAGES[name].split(":")
    return getattr(importlib.import_module(module), func)


def check_config(cfg: DictConfig, resources: contextlib.ExitStack | None = None) -> RunSpec:
    """Every option a run depends on, before any work: the plain checks
    (:func:`rest_mcts.config.validate`), the packages of the configured backends
    (``backend=vllm`` needs vLLM: asked before policy_0 is trained or a model loaded), then
    the run spec the stage runs with, built here once (:class:`rest_mcts.runtime.spec.RunSpec`:
    the search method's typed config and the typed configs shared by all stages,
    :class:`rest_mcts.runtime.context.Context`), an outcome model's stage and search
    (``prm=orm``), and ``prm=trained``'s ``prm.init``
    (:func:`rest_mcts.loop.prm0.check_prm_trained`); one-line ConfigError on the first bad one.
    ``resources``: the stage's resource stack (the executor registers its shutdown there)."""
    from rest_mcts.backends.registry import check_installed
    from rest_mcts.runtime.spec import RunSpec

    validate(cfg, STAGES)
    if cfg.stage.name not in NO_MODEL_STAGES:
        check_installed({"backend": ("policy", cfg.get("backend")),
                         "prm.scorer": ("scorer", OmegaConf.select(cfg, "prm.scorer"))})
    spec = RunSpec.from_config(cfg, resources)
    spec.ctx.check_outcome_model(cfg.stage.name, spec.search)
    if spec.ctx.prm_init is not None:  # prm=trained: its recipe, and a stage that can use it
        from rest_mcts.loop.prm0 import check_prm_trained

        check_prm_trained(cfg.stage.name, spec.ctx)
    return spec


def is_global_zero() -> bool:
    """Is this process global rank zero of a distributed training run (or no such run)?

    Lightning's strategies set the rank on ``rank_zero_only`` at setup (its import reads
    ``RANK``/``LOCAL_RANK`` for launched ranks); a stage that never loaded Lightning is rank 0."""
    rank_zero = sys.modules.get("lightning_utilities.core.rank_zero")
    return rank_zero is None or getattr(rank_zero.rank_zero_only, "rank", 0) == 0


def announce_engine(cfg: DictConfig) -> None:
    """``engine=auto`` (the pretrained model configs): say once, as the run starts, which
    engine it chose, why, and what serves the models (a group named on the command line wins
    over the choice); a warning when torch sees a GPU but vLLM is not installed."""
    if OmegaConf.select(cfg, "engine.name") != "auto" or cfg.stage.name in NO_MODEL_STAGES:
        return
    from rest_mcts.backends.registry import lookup
    from rest_mcts.engines import auto_choice

    serving = [f"policy backend {lookup('policy', cfg.backend).name}"]
    scorer = OmegaConf.select(cfg, "prm.scorer")
    if scorer is not None:
        serving.append(f"value scorer {lookup('scorer', scorer).name}")
    choice = auto_choice()
    (log.warning if choice.is_notice else log.info)("%s", choice.message(", ".join(serving)))


def write_resolved_config(cfg: DictConfig, out: Path) -> None:
    """`out/config.yaml`: the job's config with every interpolation resolved (what a sweep's
    summary reads the job's settings from) and secrets left out
    (:func:`rest_mcts.tracking.resolved_config`: an `${oc.env:...}` key stays out of the
    folder). A value that cannot be resolved outside Hydra is kept as written."""
    from rest_mcts.tracking import resolved_config

    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(resolved_config(cfg))))


def run_stage(cfg: DictConfig) -> float | None:
    """Validate, build the run spec, seed, run `cfg.stage.name`, write config.yaml (resolved)
    and metrics.json; returns the main metric.

    The stage's resources live on one :class:`contextlib.ExitStack` that this function owns
    and closes in reverse order when the stage ends, also when it raises: each registers its
    close there as it is created. They are the stage's wandb run (none for
    :data:`UNTRACKED_STAGES`; :mod:`rest_mcts.tracking`:
    config, final metrics; marked failed when the stage raised), any other wandb run the stage
    left open (so the next job of a serial multirun starts its own), the lock of a search/eval
    folder, held for the stage's lifetime and checked against the config that made it before
    anything is written there (:data:`OWNED_FOLDER_STAGES`), and the executor
    (``executor=ray``: its actors live for the whole stage)."""
    from rest_mcts.utils.console import setup_console

    # converted GGUF checkpoints are cached here (rest_mcts.models.gguf); the environment
    # carries it to worker processes
    os.environ["REST_MCTS_CACHE_DIR"] = str(cfg.paths.cache_dir)
    with contextlib.ExitStack() as resources:
        spec = check_config(cfg, resources)  # the executor registers its shutdown
        setup_console()
        if is_global_zero():
            announce_engine(cfg)
        threads = fix_threads(cfg.get("threads"))
        seed_everything(cfg.seed)
        out = Path(cfg.paths.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        if is_global_zero():
            write_json(out / "environment.json", environment(threads))
        if cfg.stage.name in OWNED_FOLDER_STAGES:  # before anything is written there
            from rest_mcts.runtime.claims import own_folder
            from rest_mcts.stages.search import claim_run_dir

            resources.enter_context(own_folder(out))
            claim_run_dir(cfg, out)
        metrics = _run_in(cfg, spec, out, resources)
    return metrics.get("eval/acc", metrics.get("eval/greedy_acc"))


def _run_in(cfg: DictConfig, spec: RunSpec, out: Path,
            resources: contextlib.ExitStack) -> dict[str, float]:
    """The stage itself on ``spec``, its tracker run and its files in ``out``
    (:func:`run_stage`)."""
    from rest_mcts.tracking import begin_stage_run, stage_run

    if is_global_zero():
        write_resolved_config(cfg, out)
    start = time.time()
    if cfg.stage.name in UNTRACKED_STAGES:
        tracker = stage_run(None)  # a run that logs nothing and opens nothing
    else:
        resources.push(_close_leftover_wandb)  # after the stage's own run (registered next)
        tracker = begin_stage_run(cfg, out, resources)  # ends with the stack, failed on a raise
    spec = dataclasses.replace(spec, tracker=tracker)  # the stage reaches its run here
    metrics = {k: float(v) for k, v in get_stage(cfg.stage.name)(cfg, spec).items()}
    metrics["time/stage_seconds"] = time.time() - start
    tracker.final_metrics = metrics  # logged as the run ends
    if is_global_zero():  # under DDP every rank runs the stage; one writes its metrics
        write_json(out / "metrics.json", metrics)
        log.info("metrics written to %s", out / "metrics.json")
    return metrics


def _close_leftover_wandb(kind: type | None, err: BaseException | None, tb: object) -> None:
    """Exit callback of the stage's resource stack: finish any wandb run the stage left open
    (marked failed when the stage raised); the exception, if any, goes on."""
    from rest_mcts.tracking import close_wandb_run

    close_wandb_run(failed=kind is not None)

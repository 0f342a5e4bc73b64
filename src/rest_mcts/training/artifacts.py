"""Fit a module with resumable Lightning checkpoints, then save the trained model as a
Hugging Face folder (safetensors) that the backends load.

One place for what every model's training shares (`fit_and_save`: policy_0, PRM, policy SFT):
the Trainer built from a `TrainerSpec` with a `ModelCheckpoint` (``last.ckpt`` resumes with ``ckpt_path=...``), and an atomic
``save_pretrained`` of the final weights (LoRA adapters merged) plus a ``manifest.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rest_mcts.config import ConfigError
from rest_mcts.training.knobs import mergeable_model
from rest_mcts.training.settings import TrainerSpec
from rest_mcts.utils.io import atomic_folder, write_json

log = logging.getLogger(__name__)


def _sharded(trainer: Any) -> bool:
    """Do the ranks hold only shards of the weights (FSDP, DeepSpeed ZeRO-3)?"""
    from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

    strategy = trainer.strategy
    return isinstance(strategy, FSDPStrategy) or (
        isinstance(strategy, DeepSpeedStrategy) and getattr(strategy, "zero_stage_3", False)
    )


def fit(
    trainer_spec: TrainerSpec,
    module: Any,
    data: Any,
    *,
    max_epochs: int,
    ckpt_dir: Path,
    logger: Any = False,
    ckpt_path: str | None = None,
    callbacks: list | None = None,
) -> Any:
    """Build the Trainer from ``trainer_spec`` and fit; returns the trainer.

    Lightning checkpoints go to ``ckpt_dir`` (``last.ckpt`` is kept); ``ckpt_path`` resumes
    a run from one (optimizer, scheduler, global step, the data order and the random
    generators included: :mod:`rest_mcts.training.resumable`)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from rest_mcts.training.resumable import RNGState

    from rest_mcts.utils.console import setup_console

    setup_console()  # Lightning is loaded now: its lines print once, without its adverts
    if ckpt_path and not Path(ckpt_path).is_file():
        raise ConfigError(f"stage.ckpt_path='{ckpt_path}' is not a checkpoint file")
    trainer = trainer_spec.build(
        max_epochs=max_epochs,
        logger=logger,
        callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_last=True), RNGState(),
                   *(callbacks or [])],
    )
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path or None)
    return trainer


def fit_and_save(
    trainer_spec: TrainerSpec,
    module: Any,
    data: Any,
    *,
    tokenizer: Any,
    out_dir: str | Path,
    manifest: dict,
    max_epochs: int,
    ckpt_dir: Path,
    logger: Any = False,
    ckpt_path: str | None = None,
    callbacks: list | None = None,
) -> tuple[Any, dict[str, float]]:
    """Fit ``module`` on ``data``, then save ``module.model`` with ``manifest.json`` (its
    ``metrics`` filled in) into ``out_dir`` atomically: the one fit-and-save of every model
    this project trains (PRM, policy SFT, the bootstrapped policy_0).

    Returns:
        The trainer and its metrics: every ``val/*`` callback metric plus ``train/steps``.
    """
    trainer = fit(trainer_spec, module, data, max_epochs=max_epochs, ckpt_dir=ckpt_dir,
                  logger=logger, ckpt_path=ckpt_path, callbacks=callbacks)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    metrics["train/steps"] = float(trainer.global_step)
    save_trained_model(trainer, module.model, tokenizer, out_dir, {**manifest, "metrics": metrics})
    return trainer, metrics


def save_trained_model(
    trainer: Any, model: Any, tokenizer: Any, folder: str | Path, manifest: dict
) -> Path | None:
    """Save the trained model (safetensors, LoRA merged) and ``manifest.json`` into
    ``folder``, atomically (a temporary sibling renamed into place: a killed run never leaves
    half a model). Under sharded strategies the full weights are gathered first (every rank
    must call this); only global rank zero writes, and every rank returns once it has.
    Returns the folder (None on other ranks).
    """
    weights = trainer.strategy.lightning_module_state_dict() if _sharded(trainer) else None
    folder = Path(folder) if trainer.is_global_zero else None
    if folder is not None:
        _write_model(model, tokenizer, folder, manifest, weights)
    # the other ranks wait for the folder: code after training (evaluation) may load it
    trainer.strategy.barrier("save_trained_model")
    return folder


def _write_model(
    model: Any, tokenizer: Any, folder: Path, manifest: dict, weights: dict | None
) -> None:
    """Global rank zero's half of :func:`save_trained_model`: the atomic write."""
    from rest_mcts.models.factory import save_model

    plain = mergeable_model(model)
    with atomic_folder(folder) as tmp:
        if weights is not None:
            state = {k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")}
            plain.save_pretrained(tmp, state_dict=state)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
        else:
            save_model(plain, tokenizer, tmp)
        write_json(tmp / "manifest.json", manifest)
    log.info("saved %s to %s", type(plain).__name__, folder)

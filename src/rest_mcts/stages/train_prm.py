"""stage=train_prm: train the value model (PRM) on quality-value targets D_V.

D_V comes from verified search trees (`stage.trees_dir`, the `trees/` folder of a
`stage=search` run with `stage.label_trees=true`: targets v_k from `search.value`) and/or
from D_V JSONL files (`stage.data_files`). The PRM starts from `prm.path`, or from the
policy's backbone with a fresh regression head (as in the paper). It is trained with the
Lightning PRM module and saved with `save_pretrained` into `<run dir>/prm` with a manifest,
next to the D_V file it was trained on (`dv.jsonl`); Lightning checkpoints go to
`<run dir>/checkpoints/prm` and `stage.ckpt_path=.../last.ckpt` resumes a run.

:func:`train_prm_model` is the reusable part (the self-training loop calls it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import ConfigError
from rest_mcts.stages.common import build_world, resolve_policy_path
from rest_mcts.training.loggers import build_logger, log_and_finish
from rest_mcts.training.prm_data import ValueRow
from rest_mcts.utils.io import append_jsonl
from rest_mcts.worlds.base import Question

log = logging.getLogger(__name__)


def rows_from_trees(trees_dir: str | Path) -> list[ValueRow]:
    """D_V from every verified tree JSON in a folder (trees without a correct leaf give none)."""
    from rest_mcts.search.value import extract_samples
    from rest_mcts.stages.extract import load_trees

    rows = []
    for tree in load_trees(trees_dir):
        rows += [ValueRow(s.question, s.steps, s.target) for s in extract_samples(tree)]
    return rows


def countdown_oracle(world):
    """(reachable?, exact quality value) of a partial solution, from the world's oracle."""
    if not hasattr(world, "distance"):
        return None
    from rest_mcts.backends.oracle_scorer import OracleScorer

    scorer = OracleScorer(world)

    def oracle(question: str, steps):
        q = Question("oracle", question)
        return world.reachable(q, list(steps)), scorer.score([(question, tuple(steps))])[0]

    return oracle


def _load_prm_start(init_path: str | Path, seed: int):
    """The value model to train: ``init_path`` itself when it is a value model (a PRM of an
    earlier iteration), else that causal LM's backbone with a fresh regression head."""
    from rest_mcts.models.factory import load_value_model, value_model_from_causal_lm

    config_file = Path(init_path) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        return load_value_model(init_path)
    return value_model_from_causal_lm(str(init_path), seed=seed)


def train_prm_model(
    cfg: DictConfig,
    rows_or_files: Sequence[ValueRow | str | Path],
    out_dir: str | Path,
    init_path: str | Path,
    *,
    logger: Any = False,
    ckpt_path: str | None = None,
    ckpt_dir: str | Path | None = None,
    val_share: float = 0.1,
    max_length: int = 256,
) -> dict[str, float]:
    """Train the PRM on D_V and save it to ``out_dir``.

    Args:
        cfg: the composed config (`prm.*` hyperparameters and knobs, `trainer`, `data`, `seed`).
        rows_or_files: D_V rows (`ValueRow`) and/or D_V JSONL files.
        out_dir: folder of the trained PRM (`save_pretrained`, safetensors, manifest.json).
        init_path: a value-model folder (continue training it) or a causal-LM folder (its
            backbone with a fresh regression head, as the paper initialises the PRM).
        logger: Lightning logger (False: none).
        ckpt_path: Lightning checkpoint to resume from.
        ckpt_dir: where Lightning checkpoints go (default `<out_dir parent>/checkpoints/<name>`).
        val_share: share of questions held out for validation.
        max_length: longer PRM inputs are dropped.

    Returns:
        Flat metrics: ``val/mse``, ``val/acc@0.1`` (``val/oracle_acc``, ``val/oracle_mse`` on
        Countdown), ``val/mse_mean_baseline`` (predicting the training mean), ``data/*`` counts
        and ``train/steps``.
    """
    from rest_mcts.models.factory import load_tokenizer
    from rest_mcts.training.artifacts import fit, save_trained_model
    from rest_mcts.training.knobs import check_training_config, prepare_model
    from rest_mcts.training.prm import PRMRegressionModule, value_metrics
    from rest_mcts.training.prm_data import ValueDataModule, read_value_rows

    check_training_config(cfg, "prm")
    out_dir = Path(out_dir)
    ckpt_dir = Path(ckpt_dir) if ckpt_dir else out_dir.parent / "checkpoints" / out_dir.name
    rows: list[ValueRow] = []
    for source in rows_or_files:
        rows += [source] if isinstance(source, ValueRow) else read_value_rows(source)
    tokenizer = load_tokenizer(init_path)
    model = prepare_model(
        _load_prm_start(init_path, cfg.seed), task="value",
        gradient_checkpointing=cfg.prm.get("gradient_checkpointing", False),
        lora=cfg.prm.get("lora"), group="prm",
    )
    data = ValueDataModule(
        tokenizer, rows=rows, val_share=val_share, batch_size=cfg.prm.batch_size,
        max_length=max_length, seed=cfg.seed,
    )
    val_rows = data.val_set.rows if data.val_set else []
    module = PRMRegressionModule(
        model, lr=cfg.prm.lr, weight_decay=cfg.prm.weight_decay,
        warmup_ratio=cfg.prm.warmup_ratio, val_rows=val_rows,
        oracle=countdown_oracle(build_world(cfg)),
    )
    trainer = fit(
        cfg, module, data, max_epochs=cfg.prm.epochs, ckpt_dir=ckpt_dir, logger=logger,
        ckpt_path=ckpt_path,
    )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    if val_rows:
        baseline = value_metrics([data.mean_target] * len(val_rows), val_rows)
        metrics["val/mse_mean_baseline"] = baseline["val/mse"]
    metrics.update({
        "data/rows": float(len(rows)),
        "data/train_rows": float(len(data.train_set)),
        "data/val_rows": float(len(val_rows)),
        "train/steps": float(trainer.global_step),
    })
    save_trained_model(trainer, module.model, tokenizer, out_dir, {
        "produced_by": "train_prm_model",
        "init_path": str(init_path),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "metrics": metrics,
    })
    log.info("PRM saved to %s: %s", out_dir, {k: round(v, 4) for k, v in metrics.items()})
    return metrics


def train_prm(cfg: DictConfig) -> dict[str, float]:
    """stage=train_prm: D_V from trees and/or files, PRM from `prm.path` or the policy."""
    from rest_mcts.training.knobs import check_training_config
    from rest_mcts.training.prm_data import read_value_rows

    check_training_config(cfg, "prm")
    out = Path(cfg.paths.output_dir)
    rows: list[ValueRow] = []
    if cfg.stage.trees_dir:
        rows += rows_from_trees(cfg.stage.trees_dir)
    for f in cfg.stage.data_files or []:
        rows += read_value_rows(f)
    if not rows:
        raise ConfigError("stage=train_prm has no data: set stage.trees_dir and/or stage.data_files")
    append_jsonl(out / "dv.jsonl", ({"question": r.question, "steps": list(r.steps),
                                     "target": r.target} for r in rows))
    init_path = cfg.prm.path or resolve_policy_path(cfg)
    logger = build_logger(cfg.get("logger"), out)
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    metrics = train_prm_model(
        cfg, rows, out / "prm", init_path, logger=logger, ckpt_path=cfg.stage.get("ckpt_path"),
        val_share=cfg.stage.val_share, max_length=cfg.stage.max_length,
    )
    log_and_finish(logger, metrics)
    return metrics

"""stage=train_prm: train the value model (PRM) on quality-value targets D_V.

D_V comes from verified search trees (`stage.trees_dir`, the `trees/` folder of a
`stage=search` run with `stage.label_trees=true`: targets v_k from `search.value`) and/or
from D_V JSONL files (`stage.data_files`). The PRM starts from `prm.path`, or from the
policy's backbone with a fresh regression head (as in the paper). It is trained with the
Lightning PRM module and saved with `save_pretrained` into `<run dir>/prm`, next to the D_V
file it was trained on (`dv.jsonl`) and a manifest.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import ConfigError, instantiate
from rest_mcts.stages.common import build_world, resolve_policy_path
from rest_mcts.training.loggers import build_logger, log_and_finish
from rest_mcts.training.prm_data import ValueRow
from rest_mcts.utils.io import append_jsonl, write_json
from rest_mcts.worlds.base import Question

log = logging.getLogger(__name__)


def rows_from_trees(trees_dir: str | Path) -> list[ValueRow]:
    """D_V from every verified tree JSON in a folder (trees without a correct leaf give none)."""
    from rest_mcts.search.tree import Tree
    from rest_mcts.search.value import extract_samples

    folder = Path(trees_dir)
    if not folder.is_dir():
        raise ConfigError(f"stage.trees_dir='{folder}' is not a folder of search trees")
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            tree = Tree.load(path)
        except (KeyError, ValueError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a search tree ({err})") from err
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


def train_prm(cfg: DictConfig) -> dict[str, float]:
    from lightning.pytorch.callbacks import ModelCheckpoint

    from rest_mcts.models.factory import (
        load_tokenizer,
        load_value_model,
        save_model,
        value_model_from_causal_lm,
    )
    from rest_mcts.training.prm import PRMRegressionModule, value_metrics
    from rest_mcts.training.prm_data import ValueDataModule, read_value_rows

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

    policy_path = resolve_policy_path(cfg)
    tokenizer = load_tokenizer(cfg.prm.path or policy_path)
    if cfg.prm.path:
        model = load_value_model(cfg.prm.path)
    else:
        model = value_model_from_causal_lm(str(policy_path), seed=cfg.seed)
    data = ValueDataModule(
        tokenizer, rows=rows, val_share=cfg.stage.val_share, batch_size=cfg.prm.batch_size,
        max_length=cfg.stage.max_length, seed=cfg.seed,
    )
    world = build_world(cfg)
    oracle = countdown_oracle(world)
    val_rows = data.val_set.rows if data.val_set else []
    module = PRMRegressionModule(
        model, lr=cfg.prm.lr, weight_decay=cfg.prm.weight_decay,
        warmup_ratio=cfg.prm.warmup_ratio, val_rows=val_rows, oracle=oracle,
    )
    logger = build_logger(cfg.get("logger"), out)
    trainer = instantiate(
        cfg.trainer, "trainer", max_epochs=cfg.prm.epochs, logger=logger,
        callbacks=[ModelCheckpoint(dirpath=out / "checkpoints" / "prm", save_last=True)],
    )
    trainer.fit(module, datamodule=data)

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
    save_model(module.model, tokenizer, out / "prm")
    write_json(out / "prm" / "manifest.json", {
        "produced_by": "stage=train_prm",
        "config": OmegaConf.to_container(cfg, resolve=True),
        "metrics": metrics,
    })
    log.info("PRM saved to %s: %s", out / "prm", {k: round(v, 4) for k, v in metrics.items()})
    log_and_finish(logger, metrics)
    return metrics

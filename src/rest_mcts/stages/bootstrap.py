"""stage=bootstrap: train the iteration-0 policy from scratch on generated traces.

The tiny Llama policy is trained with the same Lightning SFT module that the self-training
loop uses, on a mix of correct solutions and random legal paths (`data.bootstrap`), so that
it writes legal steps but solves only a minority of problems greedily. The result is saved
with `save_pretrained` into a cache folder keyed by the config, and reused by later runs.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import instantiate
from rest_mcts.prompts import policy_prompt
from rest_mcts.stages.common import build_world, evaluate_policy_at, policy0_dir, problems
from rest_mcts.training.loggers import build_logger, finish_logger, log_and_finish
from rest_mcts.training.sft_data import SFTDataModule, SFTExample
from rest_mcts.utils.io import read_json, write_json

log = logging.getLogger(__name__)


def bootstrap(cfg: DictConfig) -> dict[str, float]:
    """Train (or reuse) the iteration-0 policy, then evaluate it on held-out problems."""
    path = policy0_dir(cfg)
    manifest = path / "manifest.json"
    logger = build_logger(cfg.get("logger"), Path(cfg.paths.output_dir))
    if cfg.stage.use_cache and manifest.exists():
        log.info("reusing cached iteration-0 policy %s", path)
        train_metrics = read_json(manifest)["train_metrics"]
    else:
        train_metrics = train_policy0(cfg, path, logger=logger)
    metrics = dict(train_metrics)
    metrics.update(
        evaluate_policy_at(
            cfg,
            path,
            num_problems=cfg.stage.eval_problems,
            samples=cfg.stage.eval_samples,
            temperature=cfg.stage.eval_temperature,
        )
    )
    log.info(
        "iteration-0 policy: greedy acc %.3f, legal steps %.3f, pass@%d %.3f (%s)",
        metrics["eval/greedy_acc"],
        metrics["eval/legal_step_rate"],
        cfg.stage.eval_samples,
        metrics[f"eval/pass@{cfg.stage.eval_samples}"],
        path,
    )
    log_and_finish(logger, metrics)
    return metrics


def make_traces(world, problem_list, n: int, correct_share: float, seed: int) -> list[SFTExample]:
    """`n` SFT examples: with probability `correct_share` a correct solution of a random
    problem, otherwise a uniformly random legal path (mostly wrong)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        problem = rng.choice(problem_list)
        if rng.random() < correct_share:
            steps = world.correct_trace(problem, rng)
        else:
            steps = world.random_trace(problem.question, rng)
        out.append(SFTExample(policy_prompt(problem.question.text), "".join(steps)))
    return out


def train_policy0(cfg: DictConfig, path: Path, logger=None) -> dict[str, float]:
    """Build the tiny policy, train it with Lightning, save it atomically to `path`.

    `logger` is the run's Lightning logger (built from `cfg.logger` when None and closed
    here; a logger passed in stays open for the caller's evaluation metrics)."""
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from rest_mcts.models.factory import build_tiny_causal_lm, count_parameters, save_model
    from rest_mcts.models.tokenizer import build_char_tokenizer
    from rest_mcts.training.policy_sft import PolicySFTModule

    start = time.time()
    world = build_world(cfg)
    boot = cfg.data.bootstrap
    train_problems = problems(cfg, world, "train", boot.train_problems)
    val_problems = problems(cfg, world, "val", boot.val_traces, at_most=True)
    train = make_traces(world, train_problems, boot.num_traces, boot.correct_share, cfg.seed)
    val = make_traces(world, val_problems, boot.val_traces, boot.correct_share, cfg.seed + 1)
    log.info("bootstrap traces: %d train (%d problems), %d val", len(train), len(train_problems), len(val))

    tokenizer = build_char_tokenizer()
    model = build_tiny_causal_lm(
        tokenizer,
        hidden_size=cfg.model.hidden_size,
        num_layers=cfg.model.num_layers,
        num_heads=cfg.model.num_heads,
        max_position_embeddings=cfg.model.max_position_embeddings,
        seed=cfg.seed,
    )
    log.info("tiny policy: %d parameters", count_parameters(model))
    pol = cfg.policy
    data = SFTDataModule(
        train, val, tokenizer, batch_size=pol.batch_size, max_length=pol.max_length,
        num_workers=pol.num_workers, seed=cfg.seed,
    )
    module = PolicySFTModule(
        model, lr=pol.lr, weight_decay=pol.weight_decay, warmup_ratio=pol.warmup_ratio,
        min_lr_ratio=pol.min_lr_ratio,
    )
    out_dir = Path(cfg.paths.output_dir)
    own_logger = logger is None
    if own_logger:
        logger = build_logger(cfg.get("logger"), out_dir)
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer = instantiate(
        cfg.trainer,
        "trainer",
        max_epochs=pol.epochs,
        logger=logger,
        callbacks=[ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last=True)],
    )
    torch.manual_seed(cfg.seed)
    trainer.fit(module, datamodule=data)
    val_loss = trainer.callback_metrics.get("val/loss")
    metrics = {
        "train/steps": float(trainer.global_step),
        "train/seconds": time.time() - start,
        "train/num_parameters": float(count_parameters(model)),
    }
    if val_loss is not None:
        metrics["val/loss"] = float(val_loss)
    if own_logger:
        finish_logger(logger)

    # Save to a temporary folder, then rename: a killed run never leaves half a model.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(module.model, tokenizer, tmp)
    write_json(
        tmp / "manifest.json",
        {
            "produced_by": "stage=bootstrap",
            "run_dir": str(out_dir),
            "config": OmegaConf.to_container(cfg, resolve=True),
            "train_metrics": metrics,
        },
    )
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, path)
    log.info("iteration-0 policy saved to %s (%.0f s)", path, metrics["train/seconds"])
    return metrics

"""stage=train_policy: supervised fine-tuning of the policy on correct solutions D_G.

D_G comes from D_G JSONL files (`stage.data_files`, ``{"question", "steps"}`` per line, see
`training.sft_data`) and/or the correct finished leaves of verified search trees
(`stage.trees_dir`). The policy starts from `model.path`, or from the cached iteration-0
policy (`stage.sft.*` settings override `policy.*` for this fine-tuning without changing the
cache key of that policy). It is trained with the Lightning SFT module (loss on the solution
tokens only) and saved with `save_pretrained` into `<run dir>/policy` with a manifest;
Lightning checkpoints go to `<run dir>/checkpoints/policy` and
`stage.ckpt_path=.../last.ckpt` resumes a run.
Greedy test accuracy is reported before and after training.

:func:`train_policy_sft` is the reusable part (the self-training loop calls it).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import ConfigError
from rest_mcts.stages.common import build_world, evaluate_policy_at, problems, resolve_policy_path
from rest_mcts.training.loggers import build_logger, log_and_finish
from rest_mcts.training.sft_data import SFTExample, solution_example

log = logging.getLogger(__name__)


def solutions_from_trees(trees_dir: str | Path) -> list[SFTExample]:
    """D_G from every verified tree JSON in a folder: one example per correct finished leaf."""
    from rest_mcts.search.value import is_correct_finish
    from rest_mcts.stages.extract import load_trees

    examples = []
    for tree in load_trees(trees_dir):
        examples += [
            solution_example(tree.question_text, tree.steps(node))
            for node in tree.finished()
            if is_correct_finish(node)
        ]
    return examples


def train_policy_sft(
    cfg: DictConfig,
    train_files: Sequence[str | Path | SFTExample],
    out_dir: str | Path,
    init_path: str | Path,
    *,
    logger: Any = False,
    ckpt_path: str | None = None,
    ckpt_dir: str | Path | None = None,
    val_share: float = 0.1,
) -> dict[str, float]:
    """Fine-tune the policy at ``init_path`` on D_G and save it to ``out_dir``.

    Args:
        cfg: the composed config (`policy.*` hyperparameters and knobs, `trainer`, `seed`).
        train_files: D_G JSONL files and/or `SFTExample`s.
        out_dir: folder of the trained policy (`save_pretrained`, safetensors, manifest.json).
        init_path: Hugging Face folder of the starting policy (and its tokenizer).
        logger: Lightning logger (False: none).
        ckpt_path: Lightning checkpoint to resume from.
        ckpt_dir: where Lightning checkpoints go (default `<out_dir parent>/checkpoints/<name>`).
        val_share: share of questions held out for val/loss.

    Returns:
        Flat metrics: ``train/steps``, ``train/seconds``, ``val/loss`` (and ``val/greedy_acc``
        when `policy.val_greedy_questions` > 0), and the ``data/*`` counts.
    """
    import torch

    from rest_mcts.models.factory import load_causal_lm, load_tokenizer
    from rest_mcts.training.artifacts import fit, save_trained_model
    from rest_mcts.training.callbacks import GreedyAccuracyCallback
    from rest_mcts.training.knobs import check_training_config, prepare_model
    from rest_mcts.training.policy_sft import PolicySFTModule
    from rest_mcts.training.sft_data import build_sft_data

    pol = cfg.policy
    check_training_config(cfg, "policy")
    start = time.time()
    out_dir = Path(out_dir)
    ckpt_dir = Path(ckpt_dir) if ckpt_dir else out_dir.parent / "checkpoints" / out_dir.name
    tokenizer = load_tokenizer(init_path)
    data = build_sft_data(
        tokenizer, list(train_files), val_share=val_share, batch_size=pol.batch_size,
        max_length=pol.max_length, num_workers=pol.num_workers, seed=cfg.seed,
    )
    torch.manual_seed(cfg.seed)
    model = prepare_model(
        load_causal_lm(init_path), task="causal_lm",
        gradient_checkpointing=pol.get("gradient_checkpointing", False),
        lora=pol.get("lora"), group="policy",
    )
    module = PolicySFTModule(
        model, lr=pol.lr, weight_decay=pol.weight_decay, warmup_ratio=pol.warmup_ratio,
        min_lr_ratio=pol.min_lr_ratio,
    )
    callbacks = []
    if pol.get("val_greedy_questions", 0) and data.val_set:
        world = build_world(cfg)
        val_problems = problems(cfg, world, "val", pol.val_greedy_questions, at_most=True)
        callbacks.append(GreedyAccuracyCallback(
            world, val_problems, tokenizer, cfg.data.max_solution_tokens
        ))
    if logger:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer = fit(
        cfg, module, data, max_epochs=pol.epochs, ckpt_dir=ckpt_dir, logger=logger,
        ckpt_path=ckpt_path, callbacks=callbacks,
    )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    metrics.update(data.stats)
    metrics.update({
        "train/steps": float(trainer.global_step),
        "train/seconds": time.time() - start,
    })
    save_trained_model(trainer, module.model, tokenizer, out_dir, {
        "produced_by": "train_policy_sft",
        "init_path": str(init_path),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "train_metrics": metrics,
    })
    return metrics


def fine_tuning_config(cfg: DictConfig) -> DictConfig:
    """`cfg` with the non-null `stage.sft.*` settings put over `policy.*`.

    `policy.*` also keys the cached iteration-0 policy (`stages.common.policy0_dir`), so
    fine-tuning settings that differ from the bootstrap's go under `stage.sft`: changing them
    never rebuilds the policy that training starts from."""
    from rest_mcts.config import check_range

    check_range(cfg, "stage.sft.lr", 0, low_open=True, what="learning rate")
    check_range(cfg, "stage.sft.warmup_ratio", 0, 1, what="share of steps")
    check_range(cfg, "stage.sft.weight_decay", 0)
    check_range(cfg, "stage.sft.batch_size", 1, integer=True)
    check_range(cfg, "stage.sft.epochs", 1, integer=True)
    sft = OmegaConf.to_container(cfg.stage.get("sft") or {}, resolve=True)
    overrides = {k: v for k, v in sft.items() if v is not None}
    return OmegaConf.merge(cfg, {"policy": overrides}) if overrides else cfg


def train_policy(cfg: DictConfig) -> dict[str, float]:
    """stage=train_policy: greedy accuracy before, SFT on D_G, greedy accuracy after."""
    from rest_mcts.training.knobs import check_training_config

    tuned = fine_tuning_config(cfg)
    check_training_config(tuned, "policy")
    sources: list[Any] = []
    if cfg.stage.trees_dir:
        sources += solutions_from_trees(cfg.stage.trees_dir)
    sources += [str(f) for f in cfg.stage.data_files or []]
    if not sources:
        raise ConfigError(
            "stage=train_policy has no data: set stage.data_files and/or stage.trees_dir "
            "(trees with correct leaves)"
        )
    out = Path(cfg.paths.output_dir)
    init_path = resolve_policy_path(cfg)
    logger = build_logger(cfg.get("logger"), out)

    def evaluate(path) -> dict[str, float]:
        return evaluate_policy_at(
            cfg, path, num_problems=cfg.stage.eval_problems, samples=cfg.stage.eval_samples,
            temperature=cfg.stage.eval_temperature,
        )

    metrics: dict[str, float] = {}
    if cfg.stage.eval_before:
        before = evaluate(init_path)
        metrics.update({k.replace("eval/", "eval/before_", 1): v for k, v in before.items()})
    metrics.update(train_policy_sft(
        tuned, sources, out / "policy", init_path, logger=logger,
        ckpt_path=cfg.stage.ckpt_path, val_share=cfg.stage.val_share,
    ))
    metrics.update(evaluate(out / "policy"))
    if cfg.stage.eval_before:
        gain = metrics["eval/greedy_acc"] - metrics["eval/before_greedy_acc"]
        metrics["eval/greedy_acc_gain"] = gain
    log.info(
        "policy SFT on %d D_G rows: greedy test acc %s -> %.3f (saved to %s)",
        int(metrics["data/rows"]),
        f"{metrics['eval/before_greedy_acc']:.3f}" if cfg.stage.eval_before else "?",
        metrics["eval/greedy_acc"], out / "policy",
    )
    log_and_finish(logger, metrics)
    return metrics

"""Training the two models of each iteration of Algorithm 1, each through one fit-and-save
helper (policy_0, the iteration-0 policy, is built before the loop:
:mod:`rest_mcts.runtime.policy0`).

* :func:`train_prm_model` -- PRM regression on D_V (MSE on quality values v_k).
* :func:`train_policy_sft` -- policy SFT on D_G (loss on the solution tokens only).
* :func:`train_policy_dpo` -- policy DPO on preference pairs (the DPO baseline loop).

Each fits with Lightning and saves with ``save_pretrained`` plus ``manifest.json``
(:func:`rest_mcts.training.artifacts.fit_and_save`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rest_mcts.prompts import prompt_format
from rest_mcts.runtime.context import Context
from rest_mcts.utils.io import read_json
from rest_mcts.training.settings import TrainSettings

if TYPE_CHECKING:  # Lightning-backed modules, imported where they are used
    from rest_mcts.training.prm_data import ValueRow
    from rest_mcts.training.sft_data import SFTExample

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- PRM
def value_oracle(world):
    """The exact quality value v* of a partial solution from the world's oracle
    (:class:`rest_mcts.search.oracle_scorer.OracleScorer`), for PRM metrics against the true
    value (:func:`rest_mcts.training.prm_metrics.value_metrics`); None for worlds without one."""
    if not hasattr(world, "distance"):
        return None
    from rest_mcts.search.oracle_scorer import OracleScorer

    scorer = OracleScorer(world)

    def oracle(question: str, steps) -> float:
        return scorer.score([(question, tuple(steps))])[0]

    return oracle


def _load_prm_start(init_path: str | Path, seed: int, revision: str | None = None):
    """The value model to train: ``init_path`` itself when it is a value model (a PRM of an
    earlier iteration), else that causal LM's backbone with a fresh regression head (a hub
    id at its pinned ``revision``)."""
    from rest_mcts.models.factory import load_value_model, value_model_from_causal_lm

    config_file = Path(init_path) / "config.json"
    config = read_json(config_file, dict) if config_file.is_file() else {}
    if any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        return load_value_model(init_path)
    return value_model_from_causal_lm(str(init_path), seed=seed, revision=revision)


def _warn_dropped(datasets: list[Any], max_length: int, option: str) -> None:
    """Warn once when PRM rows were left out for being longer than ``max_length`` tokens."""
    parts = [d for d in datasets if d is not None]
    dropped = sum(d.dropped for d in parts)
    if dropped:
        total = dropped + sum(len(d) for d in parts)
        log.warning("PRM training: %d of %d rows are longer than %d tokens and are left out "
                    "(%s)", dropped, total, max_length, option)


def train_prm_model(
    ctx: Context,
    rows_or_files: Sequence[ValueRow | str | Path],
    out_dir: str | Path,
    init_path: str | Path,
    *,
    settings: TrainSettings | None = None,
    logger: Any = False,
    ckpt_path: str | None = None,
    ckpt_dir: str | Path | None = None,
    val_share: float = 0.1,
    max_length: int | None = None,
) -> dict[str, float]:
    """Train the PRM on D_V (MSE on v_k, Eq. (1)-(3) targets) and save it to ``out_dir``.

    Args:
        ctx: the run's context (world for oracle metrics, trainer, seed).
        rows_or_files: D_V rows (``ValueRow``) and/or D_V JSONL files.
        out_dir: folder of the trained PRM (``save_pretrained``, safetensors, manifest.json).
        init_path: a value-model folder (continue training it) or a causal-LM folder (its
            backbone with a fresh regression head, as the paper initialises the PRM).
        settings: training hyperparameters (default: ``ctx.prm``).
        logger: Lightning logger (False: none).
        ckpt_path: Lightning checkpoint to resume from.
        ckpt_dir: where Lightning checkpoints go (default ``<out_dir parent>/checkpoints/<name>``).
        val_share: share of questions held out for validation.
        max_length: longer PRM inputs are left out, with a warning (None: the settings'
            ``max_length``, ``prm.max_length``).

    Returns:
        Flat metrics: ``val/mse``, ``val/acc@0.1`` (``val/oracle_*`` and ``val/sibling_*``
        with an oracle),
        ``val/mse_mean_baseline`` (predicting the training mean), ``data/*``, ``train/steps``.
    """
    from rest_mcts.models.factory import load_tokenizer
    from rest_mcts.training.artifacts import fit_and_save
    from rest_mcts.training.knobs import prepare_model
    from rest_mcts.training.prm import PRMRegressionModule
    from rest_mcts.training.prm_metrics import value_metrics
    from rest_mcts.training.prm_data import ValueDataModule, ValueRow, read_value_rows
    import torch

    s = settings or ctx.prm
    ctx.trainer.check_lora(s)
    out_dir = Path(out_dir)
    ckpt_dir = Path(ckpt_dir) if ckpt_dir else out_dir.parent / "checkpoints" / out_dir.name
    rows: list[ValueRow] = []
    for source in rows_or_files:
        rows += [source] if isinstance(source, ValueRow) else read_value_rows(source)
    revision = ctx.revision_of(init_path, prm=True)
    tokenizer = load_tokenizer(init_path, revision=revision)
    # LoRA's initialisation and dropout draw from the global generator: seeded here, a PRM does
    # not depend on what ran before it in the process (a resumed loop starts a new process)
    torch.manual_seed(ctx.seed)
    model = prepare_model(_load_prm_start(init_path, ctx.seed, revision), task="value",
                          gradient_checkpointing=s.gradient_checkpointing, lora=s.lora, group="prm")
    option = "stage.max_length" if max_length else f"{s.group}.max_length"
    max_length = max_length or s.max_length
    data = ValueDataModule(tokenizer, rows=rows, val_share=val_share, batch_size=s.batch_size,
                           max_length=max_length, seed=ctx.seed)
    _warn_dropped([data.train_set, data.val_set], max_length, option)
    val_rows = data.val_set.rows if data.val_set else []
    module = PRMRegressionModule(model, lr=s.lr, weight_decay=s.weight_decay,
                                 warmup_ratio=s.warmup_ratio, val_rows=val_rows,
                                 oracle=value_oracle(ctx.world))
    counts = {"data/rows": float(len(rows)), "data/train_rows": float(len(data.train_set)),
              "data/val_rows": float(len(val_rows))}
    _, metrics = fit_and_save(
        ctx.trainer, module, data, tokenizer=tokenizer, out_dir=out_dir, max_epochs=s.epochs,
        ckpt_dir=ckpt_dir, logger=logger, ckpt_path=ckpt_path,
        manifest={"produced_by": "train_prm_model", "init_path": str(init_path),
                  "settings": asdict(s), "data": counts},
    )
    if val_rows:
        baseline = value_metrics([data.mean_target] * len(val_rows), val_rows)
        metrics["val/mse_mean_baseline"] = baseline["val/mse"]
    metrics.update(counts)
    log.info("PRM saved to %s: %s", out_dir, {k: round(v, 4) for k, v in metrics.items()})
    return metrics


# ---------------------------------------------------------------------------- policy SFT
def train_policy_sft(
    ctx: Context,
    sources: Sequence[str | Path | SFTExample],
    out_dir: str | Path,
    init_path: str | Path,
    *,
    settings: TrainSettings | None = None,
    logger: Any = False,
    ckpt_path: str | None = None,
    ckpt_dir: str | Path | None = None,
    val_share: float = 0.1,
) -> dict[str, float]:
    """Fine-tune the policy at ``init_path`` on D_G and save it to ``out_dir``.

    Args:
        ctx: the run's context (trainer, seed, world for the greedy-accuracy callback).
        sources: D_G JSONL files and/or ``SFTExample``s.
        out_dir: folder of the trained policy (``save_pretrained``, safetensors, manifest.json).
        init_path: Hugging Face folder of the starting policy (and its tokenizer).
        settings: fine-tuning hyperparameters (default: ``ctx.policy``).
        logger: Lightning logger (False: none).
        ckpt_path: Lightning checkpoint to resume from.
        ckpt_dir: where Lightning checkpoints go (default ``<out_dir parent>/checkpoints/<name>``).
        val_share: share of questions held out for val/loss.

    Returns:
        Flat metrics: ``train/steps``, ``train/seconds``, ``val/loss`` (and ``val/greedy_acc``
        when ``val_greedy_questions`` > 0), and the ``data/*`` counts.
    """
    import torch

    from rest_mcts.models.factory import load_causal_lm, load_tokenizer
    from rest_mcts.training.artifacts import fit_and_save
    from rest_mcts.training.callbacks import GreedyAccuracyCallback
    from rest_mcts.training.knobs import prepare_model
    from rest_mcts.training.policy_sft import PolicySFTModule
    from rest_mcts.training.sft_data import build_sft_data

    s = settings or ctx.policy
    start = time.time()
    out_dir, ckpt_dir, revision = _policy_run(ctx, s, out_dir, ckpt_dir, init_path)
    tokenizer = load_tokenizer(init_path, revision=revision)
    data = build_sft_data(tokenizer, list(sources), val_share=val_share, batch_size=s.batch_size,
                          max_length=s.max_length, num_workers=s.num_workers, seed=ctx.seed,
                          fmt=prompt_format(ctx.world))
    torch.manual_seed(ctx.seed)
    model = prepare_model(load_causal_lm(init_path, revision=revision), task="causal_lm",
                          gradient_checkpointing=s.gradient_checkpointing, lora=s.lora,
                          group="policy")
    module = PolicySFTModule(model, lr=s.lr, weight_decay=s.weight_decay,
                             warmup_ratio=s.warmup_ratio, min_lr_ratio=s.min_lr_ratio)
    callbacks = []
    if s.val_greedy_questions and data.val_set:
        val_problems = ctx.problems("val", s.val_greedy_questions, at_most=True)
        callbacks.append(GreedyAccuracyCallback(ctx.world, val_problems, tokenizer,
                                                ctx.max_solution_tokens))
    _, metrics = fit_and_save(
        ctx.trainer, module, data, tokenizer=tokenizer, out_dir=out_dir, max_epochs=s.epochs,
        ckpt_dir=ckpt_dir, logger=logger, ckpt_path=ckpt_path, callbacks=callbacks,
        manifest={"produced_by": "train_policy_sft", "init_path": str(init_path),
                  "settings": asdict(s), "data": data.stats},
    )
    metrics.update(data.stats)
    metrics["train/seconds"] = time.time() - start
    return metrics


def _policy_run(ctx: Context, settings: TrainSettings, out_dir: str | Path,
                ckpt_dir: str | Path | None, init_path: str | Path) -> tuple[Path, Path, Any]:
    """What every policy training (SFT, DPO) settles first: the LoRA check, the output and
    checkpoint folders (default ``<out_dir's parent>/checkpoints/<its name>``) and the hub
    revision of ``init_path``."""
    ctx.trainer.check_lora(settings)
    out_dir = Path(out_dir)
    ckpt_dir = Path(ckpt_dir) if ckpt_dir else out_dir.parent / "checkpoints" / out_dir.name
    return out_dir, ckpt_dir, ctx.revision_of(init_path)


# ---------------------------------------------------------------------------- policy DPO
def train_policy_dpo(
    ctx: Context,
    files: Sequence[str | Path],
    out_dir: str | Path,
    init_path: str | Path,
    *,
    beta: float,
    settings: TrainSettings | None = None,
    logger: Any = False,
    ckpt_path: str | None = None,
    ckpt_dir: str | Path | None = None,
    val_share: float = 0.1,
) -> dict[str, float]:
    """DPO of the policy at ``init_path`` on preference pairs (JSONL ``files``), against a
    frozen reference loaded from the same folder (the policy at the start of the iteration),
    saved to ``out_dir`` (:mod:`rest_mcts.training.policy_dpo`).

    Args:
        beta: DPO's beta (strength of the pull towards the reference).
        settings: lr, epochs, batch size (pairs per batch), max length (default: ``ctx.policy``).
        Others as :func:`train_policy_sft`.

    Returns:
        Flat metrics: ``val/loss``, ``val/reward_acc``, ``val/reward_margin`` (with held-out
        pairs), ``train/steps``, ``train/seconds`` and the ``data/*`` counts.
    """
    import torch

    from rest_mcts.models.factory import load_causal_lm, load_tokenizer
    from rest_mcts.training.artifacts import fit_and_save
    from rest_mcts.training.knobs import prepare_model
    from rest_mcts.training.policy_dpo import PairDataModule, PolicyDPOModule, read_pairs

    s = settings or ctx.policy
    start = time.time()
    out_dir, ckpt_dir, revision = _policy_run(ctx, s, out_dir, ckpt_dir, init_path)
    tokenizer = load_tokenizer(init_path, revision=revision)
    data = PairDataModule(read_pairs(files), tokenizer, val_share=val_share,
                          batch_size=s.batch_size, max_length=s.max_length, seed=ctx.seed)
    torch.manual_seed(ctx.seed)
    model = prepare_model(load_causal_lm(init_path, revision=revision), task="causal_lm",
                          gradient_checkpointing=s.gradient_checkpointing, lora=s.lora,
                          group="policy")
    reference = load_causal_lm(init_path, revision=revision)
    module = PolicyDPOModule(model, reference, beta=beta, lr=s.lr, weight_decay=s.weight_decay,
                             warmup_ratio=s.warmup_ratio, min_lr_ratio=s.min_lr_ratio)
    _, metrics = fit_and_save(
        ctx.trainer, module, data, tokenizer=tokenizer, out_dir=out_dir, max_epochs=s.epochs,
        ckpt_dir=ckpt_dir, logger=logger, ckpt_path=ckpt_path,
        manifest={"produced_by": "train_policy_dpo", "init_path": str(init_path),
                  "reference": str(init_path), "beta": beta, "settings": asdict(s),
                  "data": data.stats},
    )
    metrics.update(data.stats)
    metrics["train/seconds"] = time.time() - start
    return metrics

"""Training the two models of Algorithm 1, each through one fit-and-save helper.

* :func:`ensure_policy0` -- the base policy: ``model.path`` when given, else the tiny policy
  bootstrapped from the world's generated traces (:func:`train_policy0`) and cached under a
  key of everything that shapes it. Only this function ever trains policy_0; resolving a
  path elsewhere never trains anything (:func:`policy0_path`).
* :func:`train_prm_model` -- PRM regression on D_V (MSE on quality values v_k).
* :func:`train_policy_sft` -- policy SFT on D_G (loss on the solution tokens only).

All three fit with Lightning and save with ``save_pretrained`` plus ``manifest.json``
(:func:`rest_mcts.training.artifacts.fit_and_save`).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rest_mcts.config import ConfigError
from rest_mcts.loop.context import Context
from rest_mcts.prompts import policy_prompt
from rest_mcts.training.settings import TrainSettings
from rest_mcts.utils.io import read_json, write_json

if TYPE_CHECKING:  # Lightning-backed modules, imported where they are used
    from rest_mcts.training.prm_data import ValueRow
    from rest_mcts.training.sft_data import SFTExample

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- policy_0
def policy0_path(ctx: Context) -> Path | str:
    """``model.path`` when given, else the cached policy_0 folder; never trains.

    Raises:
        ConfigError: there is no ``model.path`` and policy_0 has not been built yet.
    """
    if ctx.model_path:
        return ctx.model_path
    path = ctx.policy0_dir()
    if not (path / "manifest.json").exists():
        raise ConfigError(
            f"model.path is unset and no bootstrapped policy_0 is cached at {path}: "
            "run `python run.py stage=bootstrap` (or give model.path=...)"
        )
    return path


def ensure_policy0(ctx: Context, run_dir: str | Path, logger: Any = False) -> Path | str:
    """The base policy: ``model.path``, else the cached policy_0, bootstrapped first when it
    is missing (the one place where a path can cost a training run; its Lightning
    checkpoints go to ``run_dir/checkpoints/policy0``)."""
    if ctx.model_path or not ctx.policy_needs_model():
        return ctx.model_path or ""
    path = ctx.policy0_dir()
    if not (path / "manifest.json").exists():
        log.info("no cached iteration-0 policy at %s: bootstrapping it first", path)
        train_policy0(ctx, path, ckpt_dir=Path(run_dir) / "checkpoints" / "policy0", logger=logger)
    return path


def policy0_metrics(path: Path) -> dict[str, float]:
    """The training metrics recorded in a cached policy_0's manifest."""
    manifest = read_json(Path(path) / "manifest.json", dict)
    return dict(manifest.get("metrics") or manifest.get("train_metrics") or {})


def make_traces(
    world, problem_list, n: int, correct_share: float, seed: int, guided_step_prob: float = 0.0
) -> list[SFTExample]:
    """``n`` SFT examples: with probability ``correct_share`` a correct solution of a random
    problem, otherwise a random legal path (mostly wrong) whose steps keep the target
    reachable with probability ``guided_step_prob`` each (0: uniformly random legal moves)."""
    from rest_mcts.training.sft_data import SFTExample

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        problem = rng.choice(problem_list)
        if rng.random() < correct_share:
            steps = world.correct_trace(problem, rng)
        elif guided_step_prob > 0:
            steps = world.random_trace(problem.question, rng, guided=guided_step_prob)
        else:
            steps = world.random_trace(problem.question, rng)
        out.append(SFTExample(policy_prompt(problem.question.text), "".join(steps)))
    return out


def train_policy0(
    ctx: Context, path: Path, *, ckpt_dir: str | Path, logger: Any = False
) -> dict[str, float]:
    """Bootstrap policy_0: a tiny Llama trained from scratch on a mix of correct solutions and
    random legal paths (``data.bootstrap``), so that it writes legal steps but solves only a
    minority of problems greedily; saved atomically to ``path``."""
    import torch

    from rest_mcts.models.factory import build_tiny_causal_lm, count_parameters
    from rest_mcts.models.tokenizer import build_char_tokenizer
    from rest_mcts.training.artifacts import fit_and_save
    from rest_mcts.training.policy_sft import PolicySFTModule
    from rest_mcts.training.sft_data import SFTDataModule

    if ctx.tiny_model is None or ctx.bootstrap is None or not hasattr(ctx.world, "correct_trace"):
        raise ConfigError(
            f"data={ctx.data_name}: no policy_0 to bootstrap (the built-in tiny policy needs a "
            "world with a solver, e.g. data=countdown); give model.path=<a pretrained model>"
        )
    start = time.time()
    boot, pol, world = ctx.bootstrap, ctx.policy, ctx.world
    train_problems = ctx.problems(ctx.pool("bootstrap"), boot.train_problems, at_most=True)
    val_problems = ctx.problems("val", boot.val_traces, at_most=True)
    train = make_traces(world, train_problems, boot.num_traces, boot.correct_share, ctx.seed,
                        boot.guided_step_prob)
    val = make_traces(world, val_problems, boot.val_traces, boot.correct_share, ctx.seed + 1,
                      boot.guided_step_prob)
    log.info("bootstrap traces: %d train (%d problems), %d val",
             len(train), len(train_problems), len(val))
    tokenizer = build_char_tokenizer()
    spec = ctx.tiny_model
    model = build_tiny_causal_lm(
        tokenizer, hidden_size=spec.hidden_size, num_layers=spec.num_layers,
        num_heads=spec.num_heads, max_position_embeddings=spec.max_position_embeddings,
        seed=ctx.seed,
    )
    log.info("tiny policy: %d parameters", count_parameters(model))
    data = SFTDataModule(train, val, tokenizer, batch_size=pol.batch_size,
                         max_length=pol.max_length, num_workers=pol.num_workers, seed=ctx.seed)
    module = PolicySFTModule(model, lr=pol.lr, weight_decay=pol.weight_decay,
                             warmup_ratio=pol.warmup_ratio, min_lr_ratio=pol.min_lr_ratio)
    torch.manual_seed(ctx.seed)
    _, metrics = fit_and_save(
        ctx.trainer, module, data, tokenizer=tokenizer, out_dir=path, max_epochs=pol.epochs,
        ckpt_dir=Path(ckpt_dir), logger=logger,
        manifest={"produced_by": "bootstrap (policy_0)", "settings": asdict(pol),
                  "key": ctx.policy0_key},
    )
    metrics["train/seconds"] = time.time() - start
    metrics["train/num_parameters"] = float(count_parameters(model))
    manifest = read_json(path / "manifest.json", dict)  # the bootstrap's time, for the loop report
    manifest["metrics"] = {**(manifest.get("metrics") or {}), **metrics}
    write_json(path / "manifest.json", manifest)
    log.info("iteration-0 policy saved to %s (%.0f s)", path, metrics["train/seconds"])
    return metrics


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


def _load_prm_start(init_path: str | Path, seed: int):
    """The value model to train: ``init_path`` itself when it is a value model (a PRM of an
    earlier iteration), else that causal LM's backbone with a fresh regression head."""
    from rest_mcts.models.factory import load_value_model, value_model_from_causal_lm

    config_file = Path(init_path) / "config.json"
    config = read_json(config_file, dict) if config_file.is_file() else {}
    if any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        return load_value_model(init_path)
    return value_model_from_causal_lm(str(init_path), seed=seed)


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
    max_length: int = 256,
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
        max_length: longer PRM inputs are dropped.

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

    s = settings or ctx.prm
    ctx.trainer.check_lora(s)
    out_dir = Path(out_dir)
    ckpt_dir = Path(ckpt_dir) if ckpt_dir else out_dir.parent / "checkpoints" / out_dir.name
    rows: list[ValueRow] = []
    for source in rows_or_files:
        rows += [source] if isinstance(source, ValueRow) else read_value_rows(source)
    tokenizer = load_tokenizer(init_path)
    model = prepare_model(_load_prm_start(init_path, ctx.seed), task="value",
                          gradient_checkpointing=s.gradient_checkpointing, lora=s.lora, group="prm")
    data = ValueDataModule(tokenizer, rows=rows, val_share=val_share, batch_size=s.batch_size,
                           max_length=max_length, seed=ctx.seed)
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
    ctx.trainer.check_lora(s)
    start = time.time()
    out_dir = Path(out_dir)
    ckpt_dir = Path(ckpt_dir) if ckpt_dir else out_dir.parent / "checkpoints" / out_dir.name
    tokenizer = load_tokenizer(init_path)
    data = build_sft_data(tokenizer, list(sources), val_share=val_share, batch_size=s.batch_size,
                          max_length=s.max_length, num_workers=s.num_workers, seed=ctx.seed)
    torch.manual_seed(ctx.seed)
    model = prepare_model(load_causal_lm(init_path), task="causal_lm",
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

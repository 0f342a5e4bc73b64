"""policy_0, the base policy every stage starts from (Algorithm 1's pi_0, built before it).

* :func:`ensure_policy0` -- ``model.path`` when given, else the tiny policy bootstrapped from
  the world's generated traces (:func:`train_policy0`) and cached under a key of everything
  that shapes it. With ``model.bootstrap: true`` the pretrained ``model.path`` is
  fine-tuned on those traces instead (through the world's prompt format, e.g. its chat
  template, and ``policy.lora``), cached the same way. Only this function (and
  ``stage=bootstrap``) ever trains policy_0; resolving a path elsewhere never trains anything (:func:`policy0_path`).
* :func:`make_traces` -- the bootstrap's SFT traces: correct solutions mixed with random
  legal paths (``data.bootstrap``).

It fits with Lightning and saves with ``save_pretrained`` plus ``manifest.json``
(:func:`rest_mcts.training.artifacts.fit_and_save`), as the loop's training steps do.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rest_mcts.config import ConfigError
from rest_mcts.prompts import prompt_format
from rest_mcts.runtime.context import Context
from rest_mcts.utils.io import read_json, write_json

if TYPE_CHECKING:  # Lightning-backed modules, imported where they are used
    from rest_mcts.training.sft_data import SFTExample

log = logging.getLogger(__name__)


def is_given(ctx: Context) -> bool:
    """Is policy_0 ``model.path`` as it is (no bootstrap trains it)?"""
    return bool(ctx.model_path) and not ctx.model_bootstrap


def policy0_path(ctx: Context) -> Path | str:
    """``model.path`` when given, else the cached policy_0 folder; never trains.

    Raises:
        ConfigError: there is no ``model.path`` and policy_0 has not been built yet.
    """
    if is_given(ctx):
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
    if is_given(ctx) or not ctx.policy_needs_model():
        return ctx.model_path or ""
    path = ctx.policy0_dir()
    if not (path / "manifest.json").exists():
        log.warning("%s", bootstrap_notice(ctx, path))
        train_policy0(ctx, path, ckpt_dir=Path(run_dir) / "checkpoints" / "policy0", logger=logger)
    return path


# the default bootstrap (64,000 traces, batch 32, 2 epochs: 4,000 steps) took 8.5 min on 2
# quiet cores (experiments/results/fresh_clone_seed0.md): the notice's time per step
SECONDS_PER_STEP = 8.5 * 60 / 4000


def bootstrap_notice(ctx: Context, path: Path) -> str:
    """The line said before a command trains policy_0: that it will, for how many steps and
    about how long on a quiet 2-core CPU, and where the model is cached for later runs."""
    steps = math.ceil(ctx.bootstrap.num_traces / ctx.policy.batch_size) * ctx.policy.epochs
    minutes = steps * SECONDS_PER_STEP / 60
    took = f"about {minutes:.0f} min" if minutes >= 1 else "under a minute"
    return (f"no cached iteration-0 policy for this seed and config: training it first "
            f"({ctx.bootstrap.num_traces:,} traces, {steps:,} optimizer steps, {took} on 2 "
            f"quiet CPU cores); later runs reuse it from {path}")


def policy0_metrics(path: Path) -> dict[str, float]:
    """The training metrics recorded in a cached policy_0's manifest."""
    manifest = read_json(Path(path) / "manifest.json", dict)
    return dict(manifest.get("metrics") or manifest.get("train_metrics") or {})


def make_traces(
    world, problem_list, n: int, correct_share: float, seed: int, guided_step_prob: float = 0.0
) -> list[SFTExample]:
    """``n`` SFT examples: with probability ``correct_share`` a correct solution of a random
    problem, otherwise a random legal path (mostly wrong) whose steps keep the target
    reachable with probability ``guided_step_prob`` each (0: uniformly random legal moves);
    rendered in the world's prompt format (the plain format when it has none)."""
    from rest_mcts.training.rows import solution_example

    fmt = prompt_format(world)
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
        out.append(solution_example(problem.question.text, steps, fmt))
    return out


def train_policy0(
    ctx: Context, path: Path, *, ckpt_dir: str | Path, logger: Any = False
) -> dict[str, float]:
    """Bootstrap policy_0: a tiny Llama trained from scratch on a mix of correct solutions and
    random legal paths (``data.bootstrap``), so that it writes legal steps but solves only a
    minority of problems greedily; saved atomically to ``path``."""
    import torch

    from rest_mcts.models.factory import count_parameters
    from rest_mcts.training.artifacts import fit_and_save
    from rest_mcts.training.policy_sft import PolicySFTModule
    from rest_mcts.training.sft_data import SFTDataModule

    pretrained = bool(ctx.model_path)
    if (not pretrained and ctx.tiny_model is None) or ctx.bootstrap is None or not hasattr(
            ctx.world, "correct_trace"):
        raise ConfigError(
            f"data={ctx.data_name}: no policy_0 to bootstrap (the bootstrap needs a world with "
            "a solver, e.g. data=countdown, and the tiny model or model.path); give "
            "model.path=<a pretrained model> without model.bootstrap"
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
    model, tokenizer = _policy0_start(ctx)
    data = SFTDataModule(train, val, tokenizer, batch_size=pol.batch_size,
                         max_length=pol.max_length, num_workers=pol.num_workers, seed=ctx.seed)
    module = PolicySFTModule(model, lr=pol.lr, weight_decay=pol.weight_decay,
                             warmup_ratio=pol.warmup_ratio, min_lr_ratio=pol.min_lr_ratio)
    torch.manual_seed(ctx.seed)
    _, metrics = fit_and_save(
        ctx.trainer, module, data, tokenizer=tokenizer, out_dir=path, max_epochs=pol.epochs,
        ckpt_dir=Path(ckpt_dir), logger=logger,
        manifest={"produced_by": "bootstrap (policy_0)", "settings": asdict(pol),
                  "key": ctx.policy0_key, "init_path": ctx.model_path},
    )
    metrics["train/seconds"] = time.time() - start
    metrics["train/num_parameters"] = float(count_parameters(model))
    manifest = read_json(path / "manifest.json", dict)  # the bootstrap's time, for the loop report
    manifest["metrics"] = {**(manifest.get("metrics") or {}), **metrics}
    write_json(path / "manifest.json", manifest)
    log.info("iteration-0 policy saved to %s (%.0f s)", path, metrics["train/seconds"])
    return metrics


def _policy0_start(ctx: Context) -> tuple[Any, Any]:
    """The model the bootstrap trains and its tokenizer: the pretrained ``model.path`` (under
    ``policy.lora`` / gradient checkpointing when set), else a fresh tiny Llama with the
    character tokenizer."""
    from rest_mcts.models.factory import build_tiny_causal_lm, count_parameters

    if ctx.model_path:
        import torch

        from rest_mcts.models.factory import load_causal_lm, load_tokenizer
        from rest_mcts.training.knobs import prepare_model

        revision = ctx.revision_of(ctx.model_path)
        tokenizer = load_tokenizer(ctx.model_path, revision=revision)
        torch.manual_seed(ctx.seed)  # the LoRA adapters' initialisation
        model = prepare_model(load_causal_lm(ctx.model_path, revision=revision),
                              task="causal_lm",
                              gradient_checkpointing=ctx.policy.gradient_checkpointing,
                              lora=ctx.policy.lora, group="policy")
        log.info("policy_0 from %s: %d parameters", ctx.model_path, count_parameters(model))
        return model, tokenizer
    from rest_mcts.models.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    spec = ctx.tiny_model
    model = build_tiny_causal_lm(
        tokenizer, hidden_size=spec.hidden_size, num_layers=spec.num_layers,
        num_heads=spec.num_heads, max_position_embeddings=spec.max_position_embeddings,
        seed=ctx.seed,
    )
    log.info("tiny policy: %d parameters", count_parameters(model))
    return model, tokenizer

"""Model-side scaling knobs from config: gradient checkpointing and LoRA (through peft).

The same training code runs a 0.5M-parameter model on a laptop CPU and a 7B model on GPUs;
what changes is set in config (`policy.*`, `prm.*`, `trainer=...`), never in code:

- ``gradient_checkpointing: true`` recomputes activations in the backward pass
  (Hugging Face ``activation_checkpointing_enable``; ``gradient_checkpointing_enable`` in
  transformers 5.19: :mod:`rest_mcts.models.compat`), trading compute for memory.
- ``lora: {r, alpha, dropout, target_modules}`` trains low-rank adapters only; ``null`` is
  full fine-tuning. For the PRM the regression head ``score`` stays fully trainable
  (``modules_to_save``). Adapters are merged into the weights before ``save_pretrained``
  (:func:`mergeable_model`), so a LoRA-trained model loads in the backends like any other.

``peft`` is imported only when LoRA is switched on.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import torch

from rest_mcts.config import ConfigError
from rest_mcts.models.compat import enable_activation_checkpointing

log = logging.getLogger(__name__)

LORA_DEFAULTS: dict[str, Any] = {
    "r": 8,
    "alpha": 16,
    "dropout": 0.05,
    "target_modules": "all-linear",
}
# Tasks and the head that must stay fully trainable under LoRA.
TASKS = {"causal_lm": None, "value": "score"}


def check_training_config(cfg: Any, group: str) -> None:
    """Check the knobs of `<group>` (policy or prm) and of `trainer` before any work starts."""
    check_knobs(group, cfg.get(group))
    check_trainer(cfg.get("trainer"))
    check_strategy_supports_lora(cfg.get("trainer"), group, (cfg.get(group) or {}).get("lora"))


def check_strategy_supports_lora(trainer: Mapping | None, group: str, lora: Any) -> None:
    """LoRA with a sharded strategy (FSDP, DeepSpeed ZeRO-3) cannot merge its adapters on
    one rank before saving: refuse it up front."""
    if trainer is None or lora_options(group, lora) is None:
        return
    strategy = trainer.get("strategy")
    target = str(strategy.get("_target_", "")) if isinstance(strategy, Mapping) else str(strategy)
    stage3 = isinstance(strategy, Mapping) and strategy.get("stage") == 3
    if "fsdp" in target.lower() or stage3:
        raise ConfigError(
            f"{group}.lora is not supported with trainer strategy '{target}' (sharded weights): "
            "use trainer=ddp or trainer=deepspeed (ZeRO-2)"
        )


def check_knobs(group: str, node: Mapping | None) -> None:
    """Validate ``<group>.gradient_checkpointing`` and ``<group>.lora``; one-line ConfigError."""
    if node is None:
        return
    checkpointing = node.get("gradient_checkpointing", False)
    if not isinstance(checkpointing, bool):
        raise ConfigError(f"{group}.gradient_checkpointing={checkpointing!r} must be true or false")
    lora_options(group, node.get("lora"))


PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")


def check_trainer(node: Mapping | None) -> None:
    """Validate `trainer.accumulate_grad_batches` and `trainer.precision`; one-line errors."""
    if node is None:
        return
    accumulate = node.get("accumulate_grad_batches", 1)
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate!r} must be an integer >= 1 "
            "(micro-batches per optimiser step)"
        )
    precision = str(node.get("precision", "32-true"))
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision='{precision}' must be one of {', '.join(PRECISIONS)}")


def lora_options(group: str, lora: Mapping | None) -> dict[str, Any] | None:
    """The LoRA settings with defaults filled in, or None (full fine-tuning); checks each."""
    if lora is None or lora is False:
        return None
    if not isinstance(lora, Mapping):
        raise ConfigError(
            f"{group}.lora={lora!r} must be null or a mapping with keys "
            f"{', '.join(LORA_DEFAULTS)}"
        )
    unknown = sorted(set(lora) - set(LORA_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"{group}.lora has unknown key '{unknown[0]}' (allowed: {', '.join(LORA_DEFAULTS)})"
        )
    opts = {**LORA_DEFAULTS, **dict(lora)}
    r, alpha, dropout = opts["r"], opts["alpha"], opts["dropout"]
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ConfigError(f"{group}.lora.r={r!r} must be an integer >= 1 (adapter rank)")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ConfigError(f"{group}.lora.alpha={alpha!r} must be a number > 0 (scaling alpha/r)")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"{group}.lora.dropout={dropout!r} is outside [0, 1)")
    targets = opts["target_modules"]
    if isinstance(targets, str):
        ok = bool(targets)
    else:
        targets = list(targets) if targets is not None else []
        ok = bool(targets) and all(isinstance(t, str) and t for t in targets)
    if not ok:
        raise ConfigError(
            f"{group}.lora.target_modules={opts['target_modules']!r} must be 'all-linear' or a "
            "non-empty list of module names (e.g. [q_proj, v_proj])"
        )
    opts["target_modules"] = targets
    return opts


def prepare_model(
    model: torch.nn.Module,
    *,
    task: str,
    gradient_checkpointing: bool = False,
    lora: Mapping | None = None,
    group: str = "policy",
) -> torch.nn.Module:
    """Apply the knobs to a Hugging Face model before training.

    Args:
        model: a causal LM (``task="causal_lm"``) or a value model (``task="value"``).
        task: which model this is; the value model keeps its ``score`` head trainable.
        gradient_checkpointing: recompute activations in the backward pass.
        lora: LoRA settings (see :func:`lora_options`) or None for full fine-tuning.
        group: config group name, for error messages.

    Returns:
        ``model`` itself (full fine-tuning) or a peft model wrapping it.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if gradient_checkpointing:
        # Non-reentrant checkpointing works with frozen inputs (LoRA) without extra hooks.
        enable_activation_checkpointing(model, use_reentrant=False)
        model.config.use_cache = False
        log.info("%s: gradient checkpointing on", group)
    opts = lora_options(group, lora)
    if opts is None:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    head = TASKS[task]
    config = LoraConfig(
        r=opts["r"],
        lora_alpha=opts["alpha"],
        lora_dropout=opts["dropout"],
        target_modules=opts["target_modules"],
        modules_to_save=[head] if head else None,
        task_type=TaskType.SEQ_CLS if task == "value" else TaskType.CAUSAL_LM,
    )
    wrapped = get_peft_model(model, config)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    total = sum(p.numel() for p in wrapped.parameters())
    log.info("%s: LoRA r=%d, %d of %d parameters trainable", group, opts["r"], trainable, total)
    return wrapped


def is_peft(model: torch.nn.Module) -> bool:
    """Is ``model`` a peft wrapper (without importing peft)?"""
    return type(model).__module__.startswith("peft.")


def hf_model(model: torch.nn.Module) -> torch.nn.Module:
    """The Hugging Face model inside a peft wrapper (adapters stay active), else ``model``.

    Code that reaches into the model's parts (``values_at_positions`` reads the backbone and
    the ``score`` head) must use this: the wrapper renames attributes."""
    return model.get_base_model() if is_peft(model) else model


def mergeable_model(model: torch.nn.Module) -> torch.nn.Module:
    """A plain Hugging Face model to ``save_pretrained``: LoRA adapters merged into the base
    weights (and the trained copy of the head put in place); other models as they are.

    The peft wrapper is consumed (its base model is unwrapped in place)."""
    if not is_peft(model):
        return model
    return model.merge_and_unload()

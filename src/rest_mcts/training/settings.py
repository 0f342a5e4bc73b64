"""Typed training settings: built once from the composed config, validated on construction.

* :class:`TrainSettings` -- one model's optimisation hyperparameters (``policy.*`` for policy
  SFT, ``prm.*`` for PRM regression) and its scaling knobs (gradient checkpointing, LoRA).
* :class:`TrainerSpec` -- the Lightning ``Trainer`` (``trainer.*``: device, precision,
  strategy, accumulation), kept as its ``_target_`` node and built by :meth:`TrainerSpec.build`.

Training functions take these, never the global config; a bad value stops the run with the
same one-line ``error: <option>=<value> ...`` as everywhere else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from rest_mcts.config import ConfigError, Knobs, instantiate, knob
from rest_mcts.training.knobs import check_knobs, check_strategy_supports_lora, check_trainer


def _plain(node: Any) -> Any:
    """A plain (resolved) copy of an OmegaConf node; other values as they are."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


@dataclass(frozen=True)
class TrainSettings(Knobs):
    """Hyperparameters of one model's training (AdamW with warmup and cosine decay).

    Attributes:
        group: config group the values come from (``policy`` or ``prm``), for messages.
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_ratio: share of optimiser steps spent warming up.
        min_lr_ratio: floor of the cosine schedule as a share of ``lr``.
        batch_size: examples per micro-batch.
        epochs: passes over the training data.
        max_length: longest example in tokens (longer ones are dropped).
        num_workers: data-loader worker processes.
        gradient_checkpointing: recompute activations in the backward pass.
        lora: LoRA settings (``r``, ``alpha``, ``dropout``, ``target_modules``) or None.
        val_greedy_questions: policy only: greedy accuracy on this many val questions after
            each validation epoch (0: off).
    """

    group: str
    lr: float = knob(low=0, low_open=True, what="learning rate")
    weight_decay: float = knob(0.0, low=0)
    warmup_ratio: float = knob(0.0, low=0, high=1, what="share of steps")
    min_lr_ratio: float = knob(0.0, low=0, high=1, what="share of lr")
    batch_size: int = knob(64, low=1, integer=True)
    epochs: int = knob(1, low=1, integer=True)
    max_length: int = knob(128, low=1, integer=True)
    num_workers: int = knob(0, low=0, integer=True)
    gradient_checkpointing: bool = False
    lora: Mapping[str, Any] | None = None
    val_greedy_questions: int = knob(0, low=0, integer=True)

    def knob_prefix_of(self) -> str:
        return self.group

    def __post_init__(self) -> None:
        super().__post_init__()  # the knobs
        check_knobs(self.group, {"gradient_checkpointing": self.gradient_checkpointing,
                                 "lora": self.lora})

    @classmethod
    def from_node(cls, group: str, node: Mapping[str, Any], **overrides: Any) -> "TrainSettings":
        """From a config group node (``cfg.policy`` or ``cfg.prm``); other keys (``name``,
        ``path``, the scorer) are ignored; non-None ``overrides`` replace values."""
        plain = _plain(node) or {}
        names = {f.name for f in dataclasses.fields(cls)} - {"group"}
        values = {k: v for k, v in plain.items() if k in names}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(group=group, **values)

    def replace(self, **changes: Any) -> "TrainSettings":
        """A copy with non-None ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def overridden(self, option: str, overrides: Mapping[str, Any] | None) -> "TrainSettings":
        """A copy with the non-None ``overrides`` (e.g. ``stage.sft``: fine-tuning settings
        that differ from the bootstrap's), each checked under ``option``'s name."""
        changes = {k: v for k, v in _plain(overrides or {}).items() if v is not None}
        if not changes:
            return self
        dataclasses.replace(self, group=option, **changes)  # messages name `option.<key>`
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TrainerSpec:
    """The Lightning Trainer to build (``trainer`` group: a ``_target_`` node).

    Attributes:
        node: the trainer's ``_target_`` node as a plain dict.
    """

    node: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "_target_" not in self.node:
            raise ConfigError("trainer is not configured (trainer._target_ missing)")
        check_trainer(self.node)

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> "TrainerSpec":
        return cls(dict(_plain(node)))

    def check_lora(self, settings: TrainSettings) -> None:
        """LoRA cannot run under sharded strategies: refuse it before any work."""
        check_strategy_supports_lora(self.node, settings.group, settings.lora)

    @property
    def max_steps(self) -> Any:
        return self.node.get("max_steps")

    def build(self, **kwargs: Any) -> Any:
        """The ``lightning.Trainer`` with ``kwargs`` (max_epochs, logger, callbacks, ...)."""
        return instantiate(dict(self.node), "trainer", **kwargs)

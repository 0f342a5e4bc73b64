"""Lightning strategies that need Python objects a YAML file cannot spell (class sets)."""

from __future__ import annotations

import importlib
import logging
from typing import Any, Sequence

log = logging.getLogger(__name__)


def import_classes(paths: Sequence[str]) -> set[type]:
    """The classes named by import paths (``package.module.Class``); paths whose module is
    not installed are skipped, so one config can list the blocks of several model families."""
    classes = set()
    for path in paths:
        module, _, name = path.rpartition(".")
        try:
            classes.add(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            log.debug("FSDP wrap class %s not available", path)
    if not classes:
        raise ValueError(f"none of the FSDP wrap classes can be imported: {list(paths)}")
    return classes


def fsdp_strategy(
    wrap_layers: Sequence[str], activation_checkpointing: bool = False, **kwargs: Any
):
    """`FSDPStrategy` that makes each transformer block (``wrap_layers``) one FSDP unit and,
    with ``activation_checkpointing``, recomputes each block's activations."""
    from lightning.pytorch.strategies import FSDPStrategy

    layers = import_classes(wrap_layers)
    if activation_checkpointing:
        kwargs["activation_checkpointing_policy"] = layers
    return FSDPStrategy(auto_wrap_policy=layers, **kwargs)

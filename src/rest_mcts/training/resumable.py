"""Exact resume inside a training: what a Lightning checkpoint does not hold by itself.

``last.ckpt`` restores weights, optimizer, scheduler and the step counters, but not two
streams of randomness, so a training killed after epoch e and resumed would see another
data order and other random draws than the uninterrupted run:

* the shuffle generator of the training loader (each epoch's order is drawn from it):
  :class:`ShuffledDataModule` keeps one generator per fit and saves its state with the
  checkpoint (Lightning stores a datamodule's ``state_dict``);
* the process-wide generators (torch, Python ``random``, numpy: dropout, LoRA dropout, value
  head initialisation): :class:`RNGState` saves and restores them with the checkpoint.

With both, a fit resumed from the checkpoint of epoch e continues bit-identically (same
thread count and CPU type) to the fit that was never interrupted; a kill inside an epoch
redoes that epoch from its start.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch

SHUFFLE_STATE = "shuffle_generator"


class ShuffledDataModule(L.LightningDataModule):
    """A data module whose training order comes from one seeded generator, saved in the
    checkpoint: ``self.generator`` is what the training loader shuffles with."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict[str, Any]:
        return {SHUFFLE_STATE: self.generator.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if SHUFFLE_STATE in state_dict:  # checkpoints written before the state was kept
            self.generator.set_state(state_dict[SHUFFLE_STATE])


class RNGState(L.Callback):
    """Saves the process-wide random generators with each checkpoint and restores them on
    resume (torch's CPU generator, every CUDA device's, Python's ``random``, numpy's)."""

    def state_dict(self) -> dict[str, Any]:
        state = {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": _plain_numpy_state(np.random.get_state()),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        torch.set_rng_state(state_dict["torch"])
        random.setstate(state_dict["python"])
        name, keys, pos, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


def _plain_numpy_state(state: tuple) -> tuple:
    """numpy's generator state with its key array as a list: checkpoints load with
    ``weights_only=True``, which refuses numpy arrays."""
    name, keys, pos, has_gauss, cached = state
    return name, keys.tolist(), int(pos), int(has_gauss), float(cached)

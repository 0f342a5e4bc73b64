"""Seeding: one call that seeds python, numpy and torch (0 is a valid seed)."""

from __future__ import annotations

import random


def seed_everything(seed: int) -> None:
    """Seed every random generator the project uses."""
    import numpy as np
    import torch

    if seed is None:
        raise ValueError("seed must be an integer, got None")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

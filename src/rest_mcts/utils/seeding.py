"""Seeding and the numerics' thread count: one call seeds python, numpy and torch (0 is a
valid seed); one fixes torch's CPU threads and records what a result's bits depend on."""

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


def fix_threads(threads: int | None) -> int:
    """Run torch's CPU kernels on ``threads`` threads (None: torch's default, one per core);
    returns the count in force.

    A float32 reduction splits its work by thread, so the same seed gives bit-identical
    weights and samples only at the same thread count (and CPU type); a fixed count makes a
    run independent of the machine's number of cores. ``OMP_NUM_THREADS`` and
    ``MKL_NUM_THREADS`` are set too, so processes this one starts inherit the count."""
    import os

    import torch

    if threads is not None:
        torch.set_num_threads(int(threads))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(int(threads))
    return torch.get_num_threads()


def environment(threads: int) -> dict[str, object]:
    """What a run's numbers depend on besides its config and seed: torch's version, the
    thread count in force, the CPU model and Python's version (``environment.json``)."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"torch": torch.__version__, "threads": threads, "cpu": cpu,
            "cuda": torch.version.cuda if torch.cuda.is_available() else None,
            "python": platform.python_version()}

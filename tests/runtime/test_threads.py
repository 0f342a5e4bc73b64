"""The thread count is part of a run's config (`threads`), so policy_0's bits do not depend on
how many cores the machine has."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from tests.helpers.paths import ROOT

TINY_BOOTSTRAP = ["stage=bootstrap", "data=countdown3", "data.bootstrap.num_traces=256",
                  "data.bootstrap.train_problems=64", "data.bootstrap.val_traces=32",
                  "stage.eval_problems=4", "stage.eval_samples=2", "policy.epochs=1",
                  "logger=null"]


def _bootstrap(tmp_path, name: str, cores: set[int], *overrides: str) -> str:
    """md5 of the weights of a tiny policy_0 bootstrapped on ``cores`` only."""
    root = tmp_path / name
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["REST_MCTS_ROOT"] = str(root)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *TINY_BOOTSTRAP, *overrides,
         f"hydra.run.dir={root / 'run'}"],
        env=env, capture_output=True, text=True, timeout=600,
        preexec_fn=lambda: os.sched_setaffinity(0, cores))
    assert proc.returncode == 0, proc.stderr[-2000:]
    weights = list((root / "artifacts" / "policy0").glob("*/model.safetensors"))
    assert len(weights) == 1, weights
    return hashlib.md5(weights[0].read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two cores to pin a process to one of them")
def test_policy0_is_the_same_on_one_core_and_on_two(tmp_path):
    both = set(sorted(os.sched_getaffinity(0))[:2])
    one = {min(both)}
    assert _bootstrap(tmp_path, "one", one) == _bootstrap(tmp_path, "two", both)


def test_threads_must_be_a_positive_integer_or_null(compose_cfg):
    from rest_mcts.config import ConfigError, validate
    from rest_mcts.stages import STAGES

    validate(compose_cfg("threads=null"), STAGES)
    validate(compose_cfg("threads=1"), STAGES)
    for bad in ("threads=0", "threads=two", "threads=true"):
        with pytest.raises(ConfigError, match="threads="):
            validate(compose_cfg(bad), STAGES)

"""prm=trained through run.py: the first stage=eval trains PRM_0 once, with its notice, into
the cache and scores with it; a second run reuses it (rest_mcts.loop.prm0.ensure_prm0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

pytestmark = pytest.mark.slow

NOTICE = "no cached PRM_0 for this policy_0, seed and prm.init: training it first"


def eval_run(tmp_path: Path, run_dir: Path, policy: Path) -> subprocess.CompletedProcess:
    """stage=eval prm=trained on the quick world at tiny sizes (D_V0 from the solver's
    solutions and the policy's steps: an untrained policy solves nothing by BFS)."""
    cmd = [sys.executable, str(ROOT / "run.py"), "stage=eval", "prm=trained", "data=countdown3",
           f"model.path={policy}", "search=mcts_star", "search.iterations=2",
           "stage.num_problems=2", "prm.init.method=reference", "prm.init.num_problems=16",
           "prm.epochs=1", "logger=null", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_eval_trains_prm0_once_then_reuses_it(tmp_path, tiny_policy):
    first = eval_run(tmp_path, tmp_path / "eval1", tiny_policy)
    assert NOTICE in first.stderr + first.stdout
    [prm0] = list((tmp_path / "artifacts" / "prm0").iterdir())
    assert prm0.name.startswith("countdown3-s0-")
    manifest = json.loads((prm0 / "manifest.json").read_text())
    assert manifest["recipe"]["init"]["method"] == "reference"
    assert manifest["metrics"]["d_v0/d_v_rows"] > 0 and manifest["metrics"]["train/steps"] > 0
    stamp = (prm0 / "model.safetensors").stat().st_mtime_ns
    metrics = json.loads((tmp_path / "eval1" / "metrics.json").read_text())
    assert metrics["prm/untrained_head"] == 0.0 and metrics["eval/num_questions"] == 2

    second = eval_run(tmp_path, tmp_path / "eval2", tiny_policy)
    out = second.stderr + second.stdout
    assert NOTICE not in out and f"reusing cached PRM_0 from {prm0}" in out
    assert not (tmp_path / "eval2" / "prm0").exists(), "nothing trained again"
    assert (prm0 / "model.safetensors").stat().st_mtime_ns == stamp
    again = json.loads((tmp_path / "eval2" / "metrics.json").read_text())
    assert again["prm/untrained_head"] == 0.0 and again["eval/acc"] == metrics["eval/acc"]

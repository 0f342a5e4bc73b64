"""A loop killed (SIGKILL) again and again -- inside PRM_0's training, during the training
search, inside PRM_1's training, during two evaluations -- and restarted each time ends with the
very ``results.csv``, models and search results of the loop that was never interrupted."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.loop.test_loop import loop_command, loop_env, run_loop

# both PRM trainings run 2 epochs, so a kill can land after the first epoch's checkpoint (the
# untrained test policy solves nothing, so D_G is empty and the policy is not retrained: the
# policy's exact resume is tested in tests/training/test_exact_resume.py)
EPOCHS = ("stage.prm_train.init_epochs=2", "stage.prm_train.epochs=2")


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


KILL_POINTS = {  # where to kill: the first moment each holds
    "inside PRM_0's training": lambda d: (d / "iter_0/prm/checkpoints/last.ckpt").is_file(),
    "during the training search": lambda d: _nonempty(d / "iter_1/search/results.jsonl"),
    "inside PRM_1's training": lambda d: (d / "iter_1/prm/checkpoints/last.ckpt").is_file(),
    "during MCTS*'s evaluation": lambda d: (d / "iter_1/eval_mcts_star").is_dir(),
    "during the PRM's evaluation": lambda d: (d / "iter_1/eval_prm").is_dir(),
}


def _run_until(cmd: list[str], env: dict, loop_dir: Path, point) -> bool:
    """Run the loop; SIGKILL its process group when ``point(loop_dir)`` first holds.
    True when it was killed, False when it finished first."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 900
    while proc.poll() is None and time.time() < deadline:
        if point(loop_dir):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    err = proc.stderr.read().decode()[-3000:]
    assert proc.returncode == 0, err
    return False


def _rows(path: Path) -> str:
    """A search's rows by question id, without their wall times."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.get("costs", {}).pop("wall_seconds", None)
    return json.dumps(sorted(rows, key=lambda r: r["id"]), sort_keys=True)


def _fingerprint(loop_dir: Path) -> dict[str, str]:
    """What the loop produced: results.csv, every model (md5) and every search's rows."""
    found = {"results.csv": (loop_dir / "results.csv").read_text()}
    for f in loop_dir.glob("iter_*/*/model/model.safetensors"):
        found[str(f.relative_to(loop_dir))] = hashlib.md5(f.read_bytes()).hexdigest()
    for f in loop_dir.glob("iter_*/*/results.jsonl"):
        found[str(f.relative_to(loop_dir))] = _rows(f)
    return found


@pytest.mark.slow
def test_a_loop_killed_at_five_points_resumes_to_the_same_results(tmp_path, tiny_policy):
    whole = tmp_path / "whole"
    run_loop(tmp_path, tiny_policy, whole, *EPOCHS)
    expected = _fingerprint(whole)
    assert "results.csv" in expected and "iter_1/prm/model/model.safetensors" in expected

    cut = tmp_path / "cut"
    cmd, env = loop_command(tmp_path, tiny_policy, cut, *EPOCHS), loop_env(tmp_path)
    kills = [name for name, point in KILL_POINTS.items() if _run_until(cmd, env, cut, point)]
    assert len(kills) >= 4, f"the loop outran its kill points: killed only {kills}"
    run_loop(tmp_path, tiny_policy, cut, *EPOCHS)
    assert _fingerprint(cut) == expected

"""Whole stages through run.py on tiny models: search/eval outputs, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

pytestmark = pytest.mark.slow


def run_py(tmp_path: Path, *args: str, wait: bool = True, run_dir: Path | None = None):
    run_dir = run_dir or tmp_path / "run"
    cmd = [
        sys.executable, str(ROOT / "run.py"), *args, "logger=null",
        f"hydra.run.dir={run_dir}", "backend.max_batch_size=64",
    ]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def result_ids(run_dir: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (run_dir / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", ["cot", "mcts_star"])
def test_search_stage_writes_trees_results_and_metrics(tmp_path, tiny_policy, method):
    run_dir = run_py(
        tmp_path, "stage=search", f"search={method}", f"model.path={tiny_policy}",
        "stage.num_problems=5", "search.iterations=3" if method == "mcts_star" else "seed=0",
    )
    rows = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and len({r["id"] for r in rows}) == 5
    for row in rows:
        assert {"prediction", "gold", "correct", "costs", "steps"} <= set(row)
        assert row["costs"]["policy_tokens"] > 0
        assert (run_dir / "trees" / f"{row['id']}.json").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["search/num_questions"] == 5
    assert 0 <= metrics["search/acc"] <= 1
    # MCTS* scored with an untrained head (no prm.path): the run says so for sweeps to mark
    assert metrics["prm/untrained_head"] == (1.0 if method == "mcts_star" else 0.0)


def test_eval_with_oracle_scorer_runs(tmp_path, tiny_policy):
    run_dir = run_py(
        tmp_path, "stage=eval", "search=bfs", "prm=oracle", f"model.path={tiny_policy}",
        "stage.num_problems=3", "search.max_depth=2",
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval/num_questions"] == 3


def test_search_killed_with_sigkill_resumes_each_question_once(tmp_path, tiny_policy):
    args = [
        "stage=search", "search=self_consistency", "search.n=4", f"model.path={tiny_policy}",
        "stage.num_problems=24", "stage.concurrency=1",
    ]
    run_dir = tmp_path / "run"
    proc = run_py(tmp_path, *args, wait=False, run_dir=run_dir)
    results = run_dir / "results.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if results.exists() and len(results.read_text().splitlines()) >= 3:
            break
        if proc.poll() is not None:
            done = len(results.read_text().splitlines()) if results.exists() else 0
            pytest.fail(f"run ended (exit {proc.returncode}, {done} results) before it could be "
                        f"killed: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = result_ids(run_dir)
    assert 3 <= len(partial) < 24, "kill the run halfway"
    with open(results, "a") as fh:  # what a kill in the middle of a write would leave
        fh.write('{"id": "torn')
    run_py(tmp_path, *args, run_dir=run_dir)
    ids = result_ids(run_dir)
    assert len(ids) == 24 and len(set(ids)) == 24
    assert ids[: len(partial)] == partial


def test_bootstrap_trains_saves_logs_offline_and_reuses_its_cache(tmp_path):
    """stage=bootstrap end to end (tiny budget): Lightning training, wandb offline logging,
    a save_pretrained policy in the cache, evaluation metrics; a second run reuses it."""
    run_dir = tmp_path / "boot1"
    cmd = [
        sys.executable, str(ROOT / "run.py"), "stage=bootstrap", "experiment=debug",
        "logger=wandb", "stage.use_cache=true", f"hydra.run.dir={run_dir}",
        "data.bootstrap.num_traces=600", "stage.eval_problems=10",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_API_KEY", "WANDB_MODE")}
    env.update(REST_MCTS_ROOT=str(tmp_path), WANDB_DIR=str(tmp_path))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("eval/greedy_acc", "eval/legal_step_rate", "eval/pass@4", "train/steps"):
        assert key in metrics
    assert metrics["train/steps"] > 0
    assert list((run_dir / "wandb").glob("offline-run-*")), "wandb should log offline"
    [policy] = list((tmp_path / "artifacts" / "policy0").iterdir())
    assert (policy / "config.json").exists() and (policy / "model.safetensors").exists()
    assert (policy / "manifest.json").exists()
    stamp = (policy / "model.safetensors").stat().st_mtime_ns

    cmd[-3] = f"hydra.run.dir={tmp_path / 'boot2'}"
    cmd[cmd.index("logger=wandb")] = "logger=null"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reusing cached iteration-0 policy" in proc.stderr + proc.stdout
    assert (policy / "model.safetensors").stat().st_mtime_ns == stamp
    again = json.loads((tmp_path / "boot2" / "metrics.json").read_text())
    assert again["eval/greedy_acc"] == metrics["eval/greedy_acc"]


def test_search_then_train_prm_from_its_verified_trees(tmp_path, tiny_policy):
    """stage=search labels its trees; stage=train_prm learns from them and saves the PRM."""
    from rest_mcts.search.tree import Tree

    search_dir = run_py(
        tmp_path, "stage=search", "search=bfs", f"model.path={tiny_policy}",
        "stage.num_problems=6", "search.max_depth=2", "prm=oracle", run_dir=tmp_path / "s",
    )
    trees = list((search_dir / "trees").glob("*.json"))
    assert len(trees) == 6
    finished = [n for t in trees for n in Tree.load(t).finished()]
    assert all(n.correct is not None for n in finished)  # labelled by the verifier

    # the untrained policy rarely finds a correct leaf: add a D_V file with real targets
    from tests.training.test_prm_training import countdown_rows

    dv = tmp_path / "dv.jsonl"
    dv.write_text("".join(
        json.dumps({"question": r.question, "steps": list(r.steps), "target": r.target}) + "\n"
        for r in countdown_rows(40)
    ))
    out = run_py(
        tmp_path, "stage=train_prm", f"stage.trees_dir={search_dir / 'trees'}",
        f"stage.data_files=[{dv}]", f"model.path={tiny_policy}", "prm.epochs=1",
        run_dir=tmp_path / "p",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("val/mse", "val/acc@0.1", "val/sibling_acc", "val/mse_mean_baseline"):
        assert key in metrics
    assert (out / "prm" / "config.json").exists() and (out / "d_v.jsonl").exists()

    from rest_mcts.backends.hf_scorer import HFValueScorer

    scorer = HFValueScorer(str(out / "prm"))
    [value] = scorer.score([("Make 3 from 1 2", ("Step 1: 2 + 1 = 3 (left: 3)\n",))])
    assert 0.0 <= value <= 1.0

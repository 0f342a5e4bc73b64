"""A search without any trained model: `backend=mock` (scripted policy) through run.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers.paths import ROOT


def test_mock_search_through_run_py_in_seconds(tmp_path):
    """MCTS* on 8 Countdown questions with the scripted policy and the exact oracle: trees,
    results and metrics, nothing heavy imported (no policy_0 bootstrapped, Lightning never loaded)."""
    run = tmp_path / "run"
    code = (
        "import runpy, sys\nsys.argv = sys.argv[1:]\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "finally:\n    print('LIGHTNING_LOADED', 'lightning' in sys.modules)\n"
    )
    cmd = [sys.executable, "-c", code, str(ROOT / "run.py"), "stage=search", "backend=mock",
           "prm=oracle", "search=mcts_star", "search.iterations=5", "stage.num_problems=8",
           "logger=null", f"hydra.run.dir={run}"]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["costs"]["policy_tokens"] > 0 for r in rows)
    assert len(list((run / "trees").glob("*.json"))) == 8
    assert json.loads((run / "metrics.json").read_text())["search/num_questions"] == 8
    assert not (tmp_path / "artifacts").exists()  # no policy_0 was trained or cached
    assert "LIGHTNING_LOADED False" in proc.stdout  # (speed lives in experiments/, not here)
    environment = json.loads((run / "environment.json").read_text())
    assert environment["threads"] == 2 and environment["torch"] and environment["cpu"]

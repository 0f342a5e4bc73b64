"""`python run.py stage=search backend=openai` against two servers on 127.0.0.1, one behind a
proxy that answers 429/5xx at first, with an API key in the environment that must appear in
no file of the run and in no line of its (DEBUG) logs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.helpers.paths import ROOT
from tests.helpers.openai_server import FakeServer, FaultProxy

KEY = "sk-rest-mcts-test-0123456789abcdef"


@pytest.mark.slow
def test_search_through_run_py_keeps_the_api_key_out_of_everything(tmp_path):
    run = tmp_path / "run"
    with FakeServer() as a, FakeServer() as b, FaultProxy(b.root, faults=[429, 500, 503]) as proxy:
        cmd = [
            sys.executable, str(ROOT / "run.py"), "stage=search", "backend=openai", "prm=oracle",
            "search=mcts_star", "search.iterations=4", "stage.num_problems=8", "logger=null",
            f"backend.base_urls=[{a.url},{proxy.url}]", "backend.backoff_base=0.01",
            f"hydra.run.dir={run}", "hydra.verbose=true",  # every logger at DEBUG
        ]
        env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "OPENAI_API_KEY": KEY}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        heard = [h.get("Authorization") for s in (a, b) for _, _, h in s.requests]
    # the search ran through both servers, with the key, and survived the faults
    assert heard and set(heard) == {f"Bearer {KEY}"} and a.requests and b.requests
    assert sorted(status for _, status in proxy.seen if status != 200) == [429, 500, 503]
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert len(rows) == len({r["id"] for r in rows}) == 8  # each question once
    assert all(r["costs"]["policy_tokens"] > 0 for r in rows)
    # the key: in no file of the run folder (config, overrides, log, trees, results, metrics)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files) and any(p.suffix == ".log" for p in files)
    leaked = [str(p) for p in files if KEY.encode() in p.read_bytes()]
    assert leaked == []
    assert KEY not in proc.stdout and KEY not in proc.stderr
    assert "DEBUG" in proc.stdout + proc.stderr + "".join(
        p.read_text() for p in files if p.suffix == ".log")  # the logs were verbose
    # the variable's NAME is what the config records
    assert "api_key_env: OPENAI_API_KEY" in (run / ".hydra" / "config.yaml").read_text()


@pytest.mark.slow
def test_a_dead_server_stops_run_py_with_one_line_naming_the_url(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    cmd = [sys.executable, str(ROOT / "run.py"), "stage=search", "backend=openai", "prm=oracle",
           "search=cot", "stage.num_problems=2", "logger=null", f"backend.base_urls=[{url}]",
           "backend.max_retries=1", "backend.backoff_base=0.01", f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {url}/completions: ConnectError") and "after 2 attempts" in last
    assert "Traceback" not in proc.stderr

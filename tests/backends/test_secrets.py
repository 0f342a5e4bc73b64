"""The API key never reaches a log line, an error message or a file of the run, even when a
server (a proxy) echoes the request's Authorization header in its error body."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler

import pytest

from rest_mcts.backends.openai_client import RetryPolicy, ServerError, ServerPool

from tests.helpers.paths import ROOT
from tests.helpers.openai_server import _Base

KEY = "sk-echoed-0123456789abcdefghijklmnopqrstuvwxyz"


class _EchoHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 -- http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        # the key straddles the 200 characters an error quotes
        body = json.dumps({"error": "x" * 125 + " bad gateway, you sent Authorization: "
                           + str(self.headers.get("Authorization"))}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class EchoServer(_Base):
    """Answers every POST with HTTP 500 and a body that echoes the Authorization header."""

    def __init__(self) -> None:
        self._serve(_EchoHandler)


def test_the_pool_redacts_the_key_from_warnings_and_errors(monkeypatch, caplog):
    monkeypatch.setenv("SOME_PROXY_TOKEN", KEY)
    with EchoServer() as server:
        pool = ServerPool(server.url, api_key_env="SOME_PROXY_TOKEN", timeout=10,
                          retry=RetryPolicy(max_retries=1, backoff_base=0.0),
                          sleep=lambda s: None)
        try:
            with caplog.at_level(logging.WARNING), pytest.raises(ServerError) as err:
                pool.post("/completions", {"prompt": "hi"})
        finally:
            pool.close()
    message = str(err.value)
    assert "HTTP 500" in message and "Authorization: Bearer ***" in message
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings and all("HTTP 500" in w for w in warnings)
    for text in [message, *warnings]:
        assert KEY[:12] not in text  # not the key, nor the piece a cut would leave


def test_run_py_keeps_an_echoed_key_out_of_every_output(tmp_path):
    run = tmp_path / "run"
    with EchoServer() as server:
        cmd = [sys.executable, str(ROOT / "run.py"), "stage=search", "backend=openai",
               "prm=oracle", "search=cot", "stage.num_problems=1", "logger=null",
               f"backend.base_urls=[{server.url}]", "backend.api_key_env=SOME_PROXY_TOKEN",
               "backend.max_retries=1", "backend.backoff_base=0.01", f"hydra.run.dir={run}",
               "hydra.verbose=true"]
        env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "SOME_PROXY_TOKEN": KEY}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {server.url}/completions: HTTP 500")
    assert "Bearer ***" in last and "after 2 attempts" in last
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    log = [p for p in files if p.suffix == ".log"]
    assert log and "retry 1/1" in "".join(p.read_text() for p in log)  # the warning was logged
    assert [str(p) for p in files if KEY[:12].encode() in p.read_bytes()] == []
    assert KEY[:12] not in proc.stdout + proc.stderr

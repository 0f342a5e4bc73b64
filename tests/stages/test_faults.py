"""Fault injection through run.py: bad files, bad settings and unusable folders each stop the
run with one line naming the file (and line or field) or the option, exit status 2, no
traceback, before anything costly starts, and finished work is left as it was.

Every case runs run.py in a subprocess on tmp folders with the scripted policy (or no model
at all) and stops within seconds. Cases that would train policy_0 if their check were missing
carry a tiny bootstrap (``CHEAP_BOOTSTRAP``) and a timeout, so a regression stays cheap."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers.openai_server import HANG, FaultProxy
from tests.helpers.no_vllm import env_without_vllm
from tests.helpers.paths import FIXTURES, ROOT

pytestmark = pytest.mark.slow  # each case starts run.py

SEARCH = ("stage=search", "backend=mock", "prm=oracle", "data=countdown3", "search=mcts_star",
          "search.iterations=5", "stage.num_problems=4", "logger=null")
# should a check be missing, policy_0 would be trained on these few traces, not 80,000
CHEAP_BOOTSTRAP = ("data.bootstrap.num_traces=8", "data.bootstrap.val_traces=4",
                   "data.bootstrap.train_problems=8")


def run_py(tmp_path: Path, *args: str, timeout: float = 120, **env: str
           ) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "run.py"), *args]
    full_env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """The run's error line, checked: exit `code` (2: a setting or file to fix), no traceback,
    one `error:` line, stderr's last."""
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [lines[-1]], proc.stderr[-3000:]
    return lines[-1]


# ---------------------------------------------------------------------------- bad files
@pytest.fixture
def finished_search(tmp_path) -> Path:
    """A search folder with 4 finished questions (results.jsonl, trees, metrics)."""
    run = tmp_path / "run"
    proc = run_py(tmp_path, *SEARCH, f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len((run / "results.jsonl").read_bytes().splitlines()) == 4
    return run


@pytest.mark.parametrize("bad, message", [
    (b'{"id": "broken\n', "results.jsonl:3: invalid JSON"),
    (b'{"id": "caf\xe9"}\n', "results.jsonl:3: not UTF-8 text (byte 0xe9"),
    (b'[1, 2]\n', "results.jsonl:3: expected a JSON object, got a list"),
    (b'{"question": "no id"}\n', "results.jsonl:3: no field 'id'"),
])
def test_a_bad_results_line_stops_the_resume_and_keeps_the_good_rows(
        tmp_path, finished_search, bad, message):
    results = finished_search / "results.jsonl"
    lines = results.read_bytes().splitlines(keepends=True)
    results.write_bytes(b"".join(lines[:2]) + bad + b"".join(lines[2:]))
    before = results.read_bytes()
    proc = run_py(tmp_path, *SEARCH, f"hydra.run.dir={finished_search}")
    assert one_line_error(proc).startswith(f"error: {finished_search / message}")
    assert results.read_bytes() == before  # the four finished questions are still there


@pytest.mark.parametrize("bad, message", [
    ('{"question": "q", "steps": ["a\\n"], "target": 0.5\n',
     "d_v.jsonl:2: invalid JSON (Expecting ',' delimiter)"),
    ('{"question": "q", "steps": "a\\n", "target": 0.5}\n',
     "d_v.jsonl:2: field 'steps' must be a non-empty list of strings"),
    ('{"question": "q", "steps": ["a\\n"], "target": 2}\n',
     "d_v.jsonl:2: field 'target' must be a number in [0, 1], got 2"),
    ('["q", ["a\\n"], 0.5]\n', "d_v.jsonl:2: expected a JSON object, got a list"),
])
def test_a_bad_d_v_row_stops_train_prm_before_any_training(tmp_path, bad, message):
    good = json.dumps({"question": "Make 3 from 1 2", "steps": ["1 + 2 = 3\n"], "target": 1})
    d_v = tmp_path / "d_v.jsonl"
    d_v.write_text(good + "\n" + bad + good + "\n")
    prm = tmp_path / "prm0"  # a start for the PRM: nothing loads it before the data is read
    prm.mkdir()
    proc = run_py(tmp_path, "stage=train_prm", "data=countdown3", f"stage.data_files=[{d_v}]",
                  f"prm.path={prm}", "logger=null", f"hydra.run.dir={tmp_path / 'run'}",
                  *CHEAP_BOOTSTRAP)
    assert one_line_error(proc) == f"error: {tmp_path / message}"
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "run" / "prm").exists()


def test_a_non_utf8_dataset_file_names_file_and_line(tmp_path):
    rows = (FIXTURES / "math_sample.jsonl").read_bytes().splitlines()
    data = tmp_path / "math.jsonl"
    bad = rows[1].replace(b'"problem": "', b'"problem": "\xe9', 1)  # a Latin-1 e-acute
    data.write_bytes(rows[0] + b"\n" + bad + b"\n")
    proc = run_py(tmp_path, "stage=search", "backend=mock", "prm=oracle", "search=cot",
                  "data=math", f"data.path={data}", "logger=null",
                  f"hydra.run.dir={tmp_path / 'run'}")
    line = one_line_error(proc)
    assert line == f"error: {data}:2: not UTF-8 text (byte 0xe9 at column 14)"


@pytest.mark.parametrize("content, message", [
    ("", "empty file (expected JSON)"),
    ('{"step": "iter_0/policy", "outputs": ', "1: invalid JSON (Expecting value)"),
    ('{"step": "iter_0/policy"}', "no field 'outputs'"),
])
def test_an_empty_or_invalid_step_manifest_is_named(tmp_path, content, message):
    """A loop folder whose first step left a broken manifest.json: the resumed loop names it
    (model.path is an empty folder: nothing is loaded before the manifest is read)."""
    model = tmp_path / "model"
    model.mkdir()
    manifest = tmp_path / "loop" / "iter_0" / "policy" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(content)
    proc = run_py(tmp_path, "stage=loop", "data=countdown3", f"model.path={model}",
                  f"stage.dir={tmp_path / 'loop'}", "logger=null",
                  f"hydra.run.dir={tmp_path / 'run'}")
    sep = "" if message[0].isdigit() else " "
    assert one_line_error(proc) == f"error: {manifest}:{sep}{message}"


class _WrongShape(BaseHTTPRequestHandler):
    """Answers every POST with HTTP 200 and valid JSON that is no completion."""

    def do_POST(self) -> None:  # noqa: N802 -- http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"choices": [{"text": ["not", "a", "string"], "index": "x"}],
                           "usage": {"completion_tokens": "many"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_valid_json_of_the_wrong_shape_from_a_server_names_the_url(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WrongShape)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        proc = run_py(tmp_path, "stage=search", "backend=openai", f"backend.base_urls=[{url}]",
                      "backend.max_retries=0", "prm=oracle", "data=countdown3", "search=cot",
                      "stage.num_problems=2", "logger=null", f"hydra.run.dir={tmp_path / 'run'}")
    finally:
        server.shutdown()
        server.server_close()
    assert one_line_error(proc).startswith(
        f"error: {url}/completions: the answer does not have the expected fields (")


def test_a_fatal_server_error_ends_the_run_at_once_despite_hung_requests(tmp_path):
    """The PRM server refuses its second request (401) and holds the others open for ever: the
    run stops with the 401's line in seconds, not after prm.scorer.timeout (the requests in
    flight are cut, the first of them the one the scorer waits for)."""
    with FaultProxy("http://127.0.0.1:9", faults=[HANG, 401], hang=True,
                    hang_seconds=600) as proxy:
        start = time.perf_counter()
        proc = run_py(tmp_path, "stage=search", "backend=mock", "prm=openai",
                      f"prm.scorer.base_urls=[{proxy.root}]", "prm.scorer.timeout=120",
                      "prm.scorer.max_batch_size=1", "data=countdown3", "search=mcts_star",
                      "search.iterations=3", "stage.num_problems=6", "logger=null",
                      f"hydra.run.dir={tmp_path / 'run'}", timeout=60)
        seconds = time.perf_counter() - start
        held = len(proxy.seen) - 1
    assert one_line_error(proc, code=1).startswith(f"error: {proxy.root}/classify: HTTP 401")
    assert held >= 1  # requests were in flight when the 401 came
    assert seconds < 20, f"{seconds:.1f} s"

# ---------------------------------------------------------------------------- folders
def test_a_file_in_the_way_of_the_output_folder(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    for run_dir in (blocker, blocker / "run"):
        proc = run_py(tmp_path, *SEARCH, f"hydra.run.dir={run_dir}")
        assert one_line_error(proc) == (
            f"error: hydra.run.dir={run_dir}: {blocker} is a file, not a folder")
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        proc = run_py(tmp_path, *SEARCH, f"hydra.run.dir={parent / 'run'}")
    finally:
        parent.chmod(0o755)
    assert one_line_error(proc) == (f"error: hydra.run.dir={parent / 'run'}: {parent} is not "
                                    f"writable (where {parent / 'run'} would be made)")


# ---------------------------------------------------------------------------- settings
def test_a_misspelt_key_names_the_closest_option(tmp_path):
    proc = run_py(tmp_path, *SEARCH, "search.alpah=0.5", f"hydra.run.dir={tmp_path / 'run'}")
    assert one_line_error(proc) == ("error: search.alpah is not an option: did you mean "
                                    "search.alpha? (a new key is added with +search.alpah=...)")


def test_an_unknown_dtype_is_refused_before_the_bootstrap(tmp_path):
    proc = run_py(tmp_path, "stage=bootstrap", "data=countdown3", "model.dtype=float17",
                  "logger=null", f"hydra.run.dir={tmp_path / 'run'}", *CHEAP_BOOTSTRAP,
                  timeout=60)
    assert one_line_error(proc) == ("error: model.dtype='float17' must be one of float32, "
                                    "bfloat16, float16, auto")
    assert not (tmp_path / "artifacts").exists()  # no policy_0 was trained


def test_backend_vllm_without_vllm_is_refused_before_policy0_training(tmp_path):
    proc = run_py(tmp_path, "stage=search", "backend=vllm", "data=countdown3", "search=cot",
                  "stage.num_problems=2", "logger=null", f"hydra.run.dir={tmp_path / 'run'}",
                  *CHEAP_BOOTSTRAP, timeout=60, **env_without_vllm(tmp_path))
    assert one_line_error(proc) == ("error: backend: vllm is not installed (the vllm policy "
                                    "needs it): pip install -r requirements-gpu.txt")
    assert not (tmp_path / "artifacts").exists()  # no policy_0 was trained


def test_data_limit_0_is_refused_before_a_tracker_run_opens(tmp_path):
    run = tmp_path / "run"
    proc = run_py(tmp_path, *SEARCH[:-1], "logger=wandb", "data.limit=0", f"hydra.run.dir={run}",
                  WANDB_MODE="offline")
    assert one_line_error(proc) == "error: data.limit=0 is outside [1, inf]"
    assert not (run / "wandb").exists() and not (run / "config.yaml").exists()


@pytest.mark.parametrize("code", ["ENOSPC", "EACCES", "EROFS"])
def test_a_refused_write_mid_run_is_one_line(tmp_path, code):
    """A full disk or a file the run may not write, met mid-run (root ignores permissions,
    so the refusal is raised where a stage writes)."""
    script = (
        "import errno, runpy, sys, rest_mcts.stages as stages\n"
        "def refused(cfg):\n"
        f"    raise OSError(errno.{code}, __import__('os').strerror(errno.{code}), "
        f"'{tmp_path}/run/results.jsonl')\n"
        "stages.run_stage = refused\n"
        f"sys.argv = ['run.py', 'stage=search', 'logger=null', 'hydra.run.dir={tmp_path}/run']\n"
        f"runpy.run_path('{ROOT / 'run.py'}', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert one_line_error(proc) == (
        f"error: cannot write {tmp_path}/run/results.jsonl: {os.strerror(getattr(errno, code))}")

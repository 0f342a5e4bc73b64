"""A stage=search|eval folder is owned: one run at a time (a lock held for the run's
lifetime), resumed only by the config that made it (run_config.json), each question counted
once even where an old folder holds it twice."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys

import pytest

from rest_mcts.config import ConfigError
from rest_mcts.stages.search import search_config
from rest_mcts.runtime.claims import config_diff, own_folder

from tests.helpers.paths import ROOT

SEARCH = ("stage=search", "backend=mock", "prm=oracle", "data=countdown3",
          "search=mcts_star", "search.iterations=5", "stage.num_problems=4", "logger=null")


def _cfg(compose_cfg, *overrides):
    """The composed config of SEARCH (``~logger``: what run.py makes of ``logger=null``)."""
    return compose_cfg(*SEARCH[:-1], "~logger", *overrides)


def _run(compose_cfg, *overrides):
    import rest_mcts.stages as stages

    stages.run_stage(_cfg(compose_cfg, *overrides))


def test_a_second_run_into_a_held_folder_stops_in_one_line_with_exit_2(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "run.py"), *SEARCH, f"hydra.run.dir={run}"]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path)}
    with own_folder(run):  # this process is the run that holds it
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == f"error: {run} is in use by another run (pid {os.getpid()})"
    # nothing of the refused run reached the folder
    assert not (run / "results.jsonl").exists() and not (run / "config.yaml").exists()


def test_the_lock_ends_with_its_process_even_when_killed(tmp_path):
    code = ("import sys, time\nfrom rest_mcts.runtime.claims import own_folder\n"
            f"with own_folder({str(tmp_path)!r}):\n    print('held', flush=True)\n"
            "    time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    holder = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError) as err:
            with own_folder(tmp_path):
                pass
        assert str(err.value) == f"{tmp_path} is in use by another run (pid {holder.pid})"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    with own_folder(tmp_path):  # free again
        pass


def test_duplicate_rows_are_counted_once_with_one_warning(compose_cfg, tmp_path, caplog):
    _run(compose_cfg)
    results = tmp_path / "out" / "results.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    assert len(lines) == 4
    results.write_text("".join(lines + lines[:3]))  # a folder two runs once wrote at once
    with caplog.at_level(logging.WARNING):
        _run(compose_cfg)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["search/num_questions"] == 4
    warned = [r.getMessage() for r in caplog.records if "duplicate" in r.getMessage()]
    assert warned == [f"{results}: dropped 3 duplicate rows (questions answered more than once; "
                      "kept the first)"]


def test_a_folder_resumes_only_with_the_config_that_made_it(compose_cfg, tmp_path):
    _run(compose_cfg, "seed=0")
    assert (tmp_path / "out" / "run_config.json").is_file()
    # how fast it runs is no difference: questions side by side, batch sizes
    _run(compose_cfg, "seed=0", "stage.concurrency=1", "prm.batch_size=8")
    with pytest.raises(ConfigError) as err:
        _run(compose_cfg, "seed=1", "search.alpha=0.7")
    assert str(err.value) == (
        f"{tmp_path / 'out'} holds a run with another config (search.alpha: 0.5 -> 0.7, "
        "seed: 0 -> 1); choose a new hydra.run.dir or delete it")
    with pytest.raises(ConfigError, match=r"another config \(backend.wrong_rate: 0.2 -> 0.3\)"):
        _run(compose_cfg, "backend.wrong_rate=0.3")


def test_run_py_refuses_another_seed_in_one_line(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path)}
    for seed in (0, 1):
        cmd = [sys.executable, str(ROOT / "run.py"), *SEARCH, f"seed={seed}",
               f"hydra.run.dir={run}"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {run} holds a run with another config (seed: 0 -> 1)"
                                   "; choose a new hydra.run.dir or delete it")


def test_throughput_and_sharding_shape_no_result(compose_cfg):
    base = search_config(_cfg(compose_cfg))
    assert search_config(_cfg(compose_cfg, "stage.concurrency=3", "executor=ray",
                              "data.shard=1", "data.num_shards=2")) == base
    openai = search_config(_cfg(compose_cfg, "backend=openai"))
    assert search_config(_cfg(compose_cfg, "backend=openai", "backend.concurrency=2",
                              "backend.timeout=5", "backend.max_retries=0")) == openai
    assert config_diff(base, search_config(_cfg(compose_cfg, "stage.num_problems=5"))) == [
        "stage.num_problems: 4 -> 5"]

"""What a run prints: each log line once, no library noise; wandb runs are always closed."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from tests.helpers.paths import ROOT

NOISE = ("💡", "Tip:", "litlogger", "litmodels", "anonymous setting", "LeafSpec")
HYDRA_LINE = re.compile(r"^\[[^\]]+\]\[[^\]]+\]\[[A-Z]+\] - (.*)$")


def test_lightning_lines_reach_the_root_logger_once_and_tips_are_dropped(caplog):
    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    from rest_mcts.utils.console import setup_console

    setup_console()
    setup_console()  # idempotent: no second filter, no handler back
    for name in ("lightning", "lightning.pytorch"):
        logger = logging.getLogger(name)
        assert logger.propagate
        assert not [h for h in logger.handlers if type(h) is logging.StreamHandler]
    with caplog.at_level(logging.INFO):
        rank_zero_info("GPU available: False, used: False")
        rank_zero_info("💡 Tip: For seamless cloud logging, try installing [litlogger]")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["GPU available: False, used: False"]


def test_only_the_named_warnings_are_silenced():
    import warnings

    from rest_mcts.utils.console import setup_console

    setup_console()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        setup_console()  # the run's filters go in front of "default"
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]


def test_run_logger_closes_the_wandb_run_when_the_block_fails(compose_cfg, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    from rest_mcts.tracking import is_wandb, run_logger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_cfg("logger=wandb", "logger.offline=true")
    with pytest.raises(RuntimeError, match="stage failed"):
        with run_logger(cfg.logger, tmp_path / "logs") as logger:
            assert is_wandb(logger)
            logger.experiment  # starts the wandb run
            assert wandb.run is not None
            raise RuntimeError("stage failed")
    assert wandb.run is None
    assert list((tmp_path / "logs" / "wandb").glob("offline-run-*"))


def test_csv_logger_is_not_taken_for_wandb(compose_cfg, tmp_path):
    from rest_mcts.tracking import build_logger, is_wandb

    assert not is_wandb(build_logger(compose_cfg("logger=csv").logger, tmp_path))
    assert not is_wandb(False)


def test_run_stage_closes_a_wandb_run_the_stage_left_open(compose_cfg, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    import rest_mcts.stages as stages

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")

    def failing_stage(cfg, spec):
        wandb.init(dir=str(tmp_path), project="test")
        raise RuntimeError("boom")

    monkeypatch.setattr(stages, "get_stage", lambda name: failing_stage)
    with pytest.raises(RuntimeError, match="boom"):
        stages.run_stage(compose_cfg("stage=bootstrap", "~logger"))
    assert wandb.run is None


@pytest.mark.slow
def test_a_training_run_prints_each_line_once_without_library_noise(tmp_path):
    """stage=bootstrap (Lightning training, wandb offline, evaluation) through run.py."""
    cmd = [
        sys.executable, str(ROOT / "run.py"), "stage=bootstrap", "experiment=debug",
        "logger=wandb", f"hydra.run.dir={tmp_path / 'run'}",
        "data.bootstrap.train_problems=40", "data.bootstrap.num_traces=160",
        "data.bootstrap.val_traces=20", "stage.eval_problems=4", "stage.eval_samples=2",
    ]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "WANDB_MODE": "offline"}
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for noise in NOISE:
        assert noise not in out, f"{noise!r} printed:\n{out}"
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    assert not [line for line in lines if re.match(r"^(INFO|WARNING): ", line)], out
    messages = [m.group(1) for line in lines if (m := HYDRA_LINE.match(line))]
    assert any("GPU available" in m for m in messages), out  # Lightning's lines still show
    twice = [m for m, n in Counter(messages).items() if n > 1]
    assert not twice, out
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_a_value_model_from_a_causal_lm_reports_only_unexpected_keys(tiny_policy, caplog):
    from rest_mcts.models.factory import _DropScoreHeadReport, value_model_from_causal_lm

    with caplog.at_level(logging.WARNING):
        value_model_from_causal_lm(str(tiny_policy))
    assert "LOAD REPORT" not in caplog.text  # the new score head is expected

    def report(*keys: str) -> logging.LogRecord:
        rows = "\n".join(f"{k} | MISSING | " for k in keys)
        msg = f"X LOAD REPORT from: p\nKey | Status |\n----+----+-\n{rows}\n\nNotes: ..."
        return logging.LogRecord("transformers", logging.WARNING, "", 0, msg, None, None)

    drop = _DropScoreHeadReport()
    assert not drop.filter(report("score.weight"))
    assert drop.filter(report("score.weight", "model.layers.0.mlp.up_proj.weight"))
    assert drop.filter(logging.LogRecord("t", logging.WARNING, "", 0, "other", None, None))


def test_log_lines_round_floats_shown_by_s_and_leave_numeric_formats_alone():
    import io

    from rest_mcts.utils.console import round_float, setup_console

    assert round_float(0.8588235294117647) == 0.8588
    assert round_float(1234.5678) == 1235.0 and round_float(-0.000123456) == -0.0001235
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        setup_console()
        metrics = {"val/acc": 0.8588235294117647, "rows": [1 / 3, 2], "n": 3}
        log = logging.getLogger("rest_mcts.test_console")
        log.setLevel(logging.INFO)
        log.info("saved: %s; greedy %.3f; %d steps; %r; 100%%", metrics, 0.8588235294117647, 3,
                 (2 / 3,))
        log.info("no arguments: 0.8588235294117647")
    finally:
        root.removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        "saved: {'val/acc': 0.8588, 'rows': [0.3333, 2], 'n': 3}; greedy 0.859; 3 steps; "
        "(0.6667,); 100%",
        "no arguments: 0.8588235294117647",
    ]
    assert metrics["val/acc"] == 0.8588235294117647  # the caller's dict is left alone


def test_model_loads_and_saves_print_no_progress_bar(tiny_policy, tmp_path, capfd):
    """transformers' `Loading weights` / `Writing model shards` bars print on every load and
    save (dozens per loop) unless the job's console hides them; the hub's download bars stay."""
    from transformers.utils import logging as hf_logging

    from rest_mcts.models.factory import load_causal_lm, load_tokenizer, save_model
    from rest_mcts.utils.console import setup_console

    previous = hf_logging.set_tqdm_hook(None)
    try:
        load_causal_lm(tiny_policy)
        assert "Loading weights" in capfd.readouterr().err  # what a job printed before
        setup_console()
        model = load_causal_lm(tiny_policy)
        save_model(model, load_tokenizer(tiny_policy), tmp_path / "saved")
        err = capfd.readouterr().err
        assert "Loading weights" not in err and "Writing model shards" not in err
        assert hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_tqdm_hook(previous)

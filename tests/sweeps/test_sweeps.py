"""Sweep recipes and their summary (rest_mcts.sweeps): hand-made multirun folders with an ok,
a failed and a missing job; the Hydra callback; and one real multirun through run.py."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from omegaconf import OmegaConf

from rest_mcts.figures.intervals import wilson
from rest_mcts.sweeps.aggregate import Stat, aggregate, main
from rest_mcts.sweeps.jobs import read_sweep

from tests.helpers.figures import open_figures  # noqa: F401 - a fixture
from tests.helpers.paths import CONF, ROOT

BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def write_multirun(folder: Path, params: dict[str, str], task: list[str]) -> None:
    """The part of Hydra's multirun.yaml the summary reads."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"hydra": {"sweeper": {"_target_": BASIC, "max_batch_size": None, "params": params},
                     "overrides": {"task": task}}}
    (folder / "multirun.yaml").write_text(yaml.safe_dump(cfg))


def write_job(folder: Path, num: int, overrides: list[str], metrics: dict | None) -> Path:
    """A job folder as Hydra and run_stage leave it (metrics None: the job failed)."""
    job = folder / f"{num}_{','.join(overrides)}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num}}}))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    return job


def metrics(acc: float, tokens: float) -> dict:
    """A job's metrics.json: 4 questions (acc 0.25 is 1 right), the T curve at T = 5 and 8."""
    return {"eval/acc": acc, "eval/num_questions": 4.0, "eval/policy_tokens_per_question": tokens,
            "eval/acc@T=5": acc / 2, "eval/policy_tokens_per_question@T=5": tokens / 2,
            "eval/acc@T=8": acc, "eval/policy_tokens_per_question@T=8": tokens,
            "time/stage_seconds": 1.0}


@pytest.fixture
def sweep_dir(tmp_path) -> Path:
    """search.alpha=0.1,0.5 x seed=0,1,2 (6 jobs): alpha 0.1 all ok; alpha 0.5 one ok, one
    failed (no metrics.json), one missing (no folder)."""
    folder = tmp_path / "multirun"
    write_multirun(folder, {"search.alpha": "0.1,0.5", "seed": "0,1,2"},
                   ["stage=eval", "search.iterations=8"])
    for num, seed, acc in ((0, 0, 0.25), (1, 1, 0.5), (2, 2, 0.75)):
        write_job(folder, num, ["search.alpha=0.1", f"seed={seed}", "stage=eval",
                                "search.iterations=8"], metrics(acc, 100 + num))
    write_job(folder, 3, ["search.alpha=0.5", "seed=0", "stage=eval", "search.iterations=8"],
              metrics(0.5, 200))
    write_job(folder, 4, ["search.alpha=0.5", "seed=1", "stage=eval", "search.iterations=8"],
              None)
    return folder


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_stat_is_mean_sample_std_and_count():
    s = Stat.of([0.25, 0.5, 0.75])
    assert (s.mean, s.count) == (0.5, 3) and s.std == pytest.approx(0.25)
    assert math.isnan(Stat.of([1.0]).std) and Stat.of([]).count == 0


def test_read_sweep_finds_ok_failed_and_missing_jobs(sweep_dir):
    sweep = read_sweep(sweep_dir)
    assert sweep.swept == ("search.alpha", "seed") and sweep.expected == 6
    status = {(j.values["search.alpha"], j.values["seed"]): j.status for j in sweep.jobs}
    assert status == {("0.1", "0"): "ok", ("0.1", "1"): "ok", ("0.1", "2"): "ok",
                      ("0.5", "0"): "ok", ("0.5", "1"): "failed", ("0.5", "2"): "missing"}
    (missing,) = sweep.by_status("missing")
    assert missing.num == 5 and missing.folder is None


def test_summary_groups_over_seeds_and_reports_bad_jobs(sweep_dir, caplog):
    with caplog.at_level(logging.INFO, logger="rest_mcts.sweeps.aggregate"):
        summary = aggregate(sweep_dir)
    rows = read_csv(sweep_dir / "summary.csv")
    assert [r["search.alpha"] for r in rows] == ["0.1", "0.5"] and "seed" not in rows[0]
    first, second = rows
    assert (first["jobs"], first["ok"], first["failed"], first["missing"]) == ("3", "3", "0", "0")
    assert first["seeds"] == "0 1 2"
    assert float(first["eval/acc.mean"]) == 0.5 and float(first["eval/acc.std"]) == 0.25
    assert first["eval/acc.count"] == "3"
    assert (second["ok"], second["failed"], second["missing"]) == ("1", "1", "1")
    assert second["eval/acc.std"] == "" and second["eval/acc.count"] == "1"  # one seed
    text = (sweep_dir / "summary.md").read_text()
    assert "ok: 4; failed: 1; missing: 1" in text
    assert "failed: #4 search.alpha=0.5,seed=1" in text and "missing: #5" in text
    assert "0.5 ± 0.25 (3)" in text
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("failed job #4") for m in warned)
    assert any(m.startswith("missing job #5") for m in warned)
    png = sweep_dir / "search.alpha.png"
    assert png in summary.files and png.stat().st_size > 5000
    curve = read_csv(sweep_dir / "t_curve.csv")
    assert [(r["search.alpha"], r["T"]) for r in curve] == [
        ("0.1", "5"), ("0.1", "8"), ("0.5", "5"), ("0.5", "8")]
    assert float(curve[0]["acc.mean"]) == 0.25 and curve[0]["acc.count"] == "3"
    assert (sweep_dir / "t_curve.png").stat().st_size > 5000


@pytest.fixture
def figures(open_figures):
    return open_figures


def test_summary_has_wilson_intervals_on_pooled_counts(sweep_dir):
    """alpha 0.1: seeds right on 1, 2, 3 of 4 questions -> 6 of 12: centre 0.5, half
    1.959964 / 1.320131 * sqrt(0.25 / 12 + 3.841459 / 576) = 0.246217, so [0.253783, 0.746217];
    alpha 0.5: one seed, 2 of 4. In summary.csv, t_curve.csv and summary.md."""
    aggregate(sweep_dir)
    first, second = read_csv(sweep_dir / "summary.csv")
    ci = wilson(6, 12)
    assert (first["eval/acc.correct"], first["eval/acc.trials"]) == ("6", "12")
    assert float(first["eval/acc.wilson_low"]) == pytest.approx(0.253783, abs=2e-6)
    assert float(first["eval/acc.wilson_high"]) == pytest.approx(0.746217, abs=2e-6)
    assert float(first["eval/acc.wilson_low"]) == pytest.approx(ci.low, rel=1e-5)
    assert (second["eval/acc.correct"], second["eval/acc.trials"]) == ("2", "4")
    assert "eval/policy_tokens_per_question.wilson_low" not in first  # no accuracy
    curve = read_csv(sweep_dir / "t_curve.csv")
    assert (curve[0]["T"], curve[0]["acc.correct"], curve[0]["acc.trials"]) == ("5", "3", "12")
    text = (sweep_dir / "summary.md").read_text()
    assert "held-out accuracy (eval/acc)" in text and "eval/acc 95% CI" in text
    assert "[0.254, 0.746] (6 / 12)" in text and "Wilson score interval" in text


def test_summary_md_holds_no_absolute_path(sweep_dir, tmp_path):
    aggregate(sweep_dir, tmp_path / "shared")
    text = (tmp_path / "shared" / "summary.md").read_text()
    assert str(tmp_path) not in text and "/tmp" not in text
    assert "(4_search.alpha=0.5,seed=1,stage=eval,search.iterations=8)" in text  # relative
    assert text.startswith("# Sweep summary: multirun\n")


def test_plots_use_the_label_table_and_say_what_each_point_stands_on(sweep_dir, figures):
    aggregate(sweep_dir)
    by_title = {f._suptitle.get_text(): f for f in figures()}
    (against,) = [f for t, f in by_title.items() if "against rollout weight α" in t]
    acc, tokens = against.axes
    assert acc.get_ylabel() == "held-out accuracy"
    assert tokens.get_ylabel() == "policy tokens per question"
    assert acc.get_xlabel() == "rollout weight α (search.alpha)"
    title = against._suptitle.get_text()
    assert "each point: 4 questions × 3 seeds or 4 questions × 1 seed" in title
    # whiskers (mean ± std) and, beside them, one Wilson bar per point: 6 of 12 at alpha 0.1
    bars = [line.get_ydata() for line in acc.get_lines() if line.get_linewidth() == 6]
    assert [tuple(round(y, 4) for y in b) for b in bars] == [(0.2538, 0.7462), (0.1500, 0.8500)]
    caption = " ".join(t.get_text() for t in against.texts)
    assert "mean ± sample std over seeds" in caption and "95% Wilson interval" in caption
    (curve,) = [f for t, f in by_title.items() if t.startswith("MCTS* in-run T curve")]
    assert curve.axes[0].get_xlabel().startswith("MCTS* iterations T")
    assert curve.axes[0].get_ylabel() == "held-out accuracy at T"


def test_summary_redrawn_from_summary_csv_alone(sweep_dir, tmp_path, figures):
    """--from-summary: the job folders gone, summary.csv gives back the same tables (the
    pooled counts included: every seed had 4 questions) and the plots."""
    aggregate(sweep_dir, tmp_path / "kept", plots=False)
    before = read_csv(tmp_path / "kept" / "summary.csv")
    for name in ("t_curve.csv", "summary.md"):
        (tmp_path / "kept" / name).unlink()
    assert main(["--from-summary", str(tmp_path / "kept"), "--out", str(tmp_path / "again")]) == 0
    assert read_csv(tmp_path / "again" / "summary.csv") == before
    assert [r["acc.correct"] for r in read_csv(tmp_path / "again" / "t_curve.csv")] == [
        "3", "6", "1", "2"]
    text = (tmp_path / "again" / "summary.md").read_text()
    assert "Jobs asked for: 6; ok: 4; failed: 1; missing: 1" in text  # counts, no job names
    assert "[0.254, 0.746] (6 / 12)" in text and str(tmp_path) not in text
    assert (tmp_path / "again" / "search.alpha.png").stat().st_size > 5000
    assert (tmp_path / "again" / "t_curve.png").stat().st_size > 5000
    assert main(["--from-summary", str(tmp_path / "nowhere")]) == 1


def test_a_sweep_scored_by_an_untrained_value_head_says_so_once(sweep_dir, tmp_path, caplog,
                                                                 figures):
    """Jobs whose search scored with an untrained head (``prm/untrained_head`` 1 in their
    metrics): summary.md leads with it, the console says it once, the plot's title too."""
    for job in sorted(sweep_dir.glob("*/metrics.json")):
        job.write_text(json.dumps({**json.loads(job.read_text()), "prm/untrained_head": 1.0}))
    with caplog.at_level(logging.WARNING):
        aggregate(sweep_dir, tmp_path / "out")
    text = (tmp_path / "out" / "summary.md").read_text().splitlines()
    assert text[4].startswith("**UNTRAINED PRM: 4 of 4 jobs scored with an untrained value head")
    assert sum("UNTRAINED PRM" in r.getMessage() for r in caplog.records) == 1
    titles = [f._suptitle.get_text() for f in figures()]
    assert len(titles) == 2 and all("UNTRAINED PRM" in t for t in titles)  # both plots
    # and a summary redrawn from summary.csv keeps the mark
    main(["--from-summary", str(tmp_path / "out"), "--out", str(tmp_path / "redrawn")])
    redrawn = (tmp_path / "redrawn" / "summary.md").read_text().splitlines()
    assert redrawn[4].startswith("**UNTRAINED PRM: 4 of 4 jobs scored with an untrained value")


def test_a_folder_without_multirun_yaml_and_bad_metrics(tmp_path):
    """Swept keys are the ones whose values differ; an unreadable metrics.json is a failure;
    nothing can be known to be missing."""
    folder = tmp_path / "bytes"
    write_job(folder, 0, ["search.branch=2", "stage=eval"], metrics(0.5, 10))
    bad = write_job(folder, 1, ["search.branch=3", "stage=eval"], None)
    (bad / "metrics.json").write_text("{not json")
    sweep = read_sweep(folder)
    assert sweep.swept == ("search.branch",) and sweep.expected is None
    assert [j.status for j in sweep.jobs] == ["ok", "failed"]
    assert "unreadable metrics.json" in sweep.jobs[1].reason
    aggregate(folder, plots=False)
    text = (folder / "summary.md").read_text()
    assert "Jobs asked for: unknown" in text
    assert str(tmp_path) not in text  # the reason names the file relative to the folder
    assert "unreadable metrics.json: 1_search.branch=3,stage=eval/metrics.json" in text


def test_all_jobs_failed_still_writes_a_summary(tmp_path):
    folder = tmp_path / "allbad"
    write_multirun(folder, {"seed": "0,1"}, [])
    write_job(folder, 0, ["seed=0"], None)
    summary = aggregate(folder)
    assert [g.count("failed") + g.count("missing") for g in summary.groups] == [2]
    assert (folder / "summary.csv").is_file() and not list(folder.glob("*.png"))


def test_command_line(sweep_dir, tmp_path):
    out = tmp_path / "elsewhere"
    assert main([str(sweep_dir), "--out", str(out), "--no-plots"]) == 0
    assert (out / "summary.csv").is_file() and not list(out.glob("*.png"))
    assert main([str(tmp_path / "nowhere")]) == 1


def test_callback_summarises_after_the_last_job_when_one_failed(sweep_dir):
    """Hydra raises before on_multirun_end when a job failed: the last job's on_job_end
    writes the summary instead."""
    from hydra.core.utils import JobStatus
    from hydra.types import RunMode

    from rest_mcts.sweeps.callback import SweepSummary

    def job_cfg(num):
        return OmegaConf.create({"hydra": {"mode": RunMode.MULTIRUN, "job": {"num": num},
                                           "sweep": {"dir": str(sweep_dir)}}})

    callback = SweepSummary(plots=False)
    callback.on_job_end(job_cfg(4), SimpleNamespace(status=JobStatus.FAILED))
    assert not (sweep_dir / "summary.csv").exists()  # not the last job yet
    callback.on_job_end(job_cfg(5), SimpleNamespace(status=JobStatus.COMPLETED))
    assert (sweep_dir / "summary.csv").is_file()
    (sweep_dir / "summary.csv").unlink()
    callback.on_multirun_end(job_cfg(5))
    assert (sweep_dir / "summary.csv").is_file()


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "sweep").glob("*.yaml")))
def test_sweep_recipes_compose_and_name_their_command(name, compose_cfg):
    """Each recipe composes, sweeps keys that exist, names its command in its header, and a
    search-level recipe defaults to stage=eval (which reports accuracy)."""
    text = (CONF / "sweep" / f"{name}.yaml").read_text()
    assert f"python run.py -m sweep={name}" in text
    cfg = compose_cfg(f"sweep={name}")
    params = yaml.safe_load(text)["hydra"]["sweeper"]["params"]
    for key in params:
        assert OmegaConf.select(cfg, key) is not None, key
    if any(k.startswith("search.") for k in params):
        assert cfg.stage.name == "eval"


@pytest.mark.parametrize("name", ["paper_mcts_math7b", "countdown_ablation"])
def test_experiments_compose_and_name_their_command(name, compose_cfg):
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    assert "python run.py" in text and f"experiment={name}" in text
    cfg = compose_cfg(f"experiment={name}")
    assert cfg.stage.name == "eval" and cfg.search.name == "mcts_star"


def test_a_mock_multirun_of_sweep_alpha_gets_intervals_and_plots(tmp_path):
    """sweep=alpha on the scripted policy and the oracle, narrowed to 2 values x 2 seeds of
    16 questions: the callback's summary has the pooled Wilson columns (32 questions a value),
    human labels in summary.md, relative paths only, and both plots."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, str(ROOT / "run.py"), "-m", "sweep=alpha", "search.alpha=0.0,0.5",
           "seed=0,1", "backend=mock", "prm=oracle", "stage.num_problems=16",
           "search.iterations=8", "logger=null", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(sweep / "summary.csv")
    assert [(r["search.alpha"], r["eval/acc.trials"]) for r in rows] == [("0.0", "32"),
                                                                        ("0.5", "32")]
    for r in rows:
        ci = wilson(int(r["eval/acc.correct"]), 32)
        assert int(r["eval/acc.correct"]) == round(float(r["eval/acc.mean"]) * 32)
        assert float(r["eval/acc.wilson_low"]) == pytest.approx(ci.low, abs=1e-6)
        assert float(r["eval/acc.wilson_high"]) == pytest.approx(ci.high, abs=1e-6)
    curve = read_csv(sweep / "t_curve.csv")
    assert {r["acc.trials"] for r in curve} == {"32"} and all(r["acc.wilson_high"] for r in curve)
    text = (sweep / "summary.md").read_text()
    assert "held-out accuracy (eval/acc)" in text and "eval/acc 95% CI" in text
    assert str(tmp_path) not in text
    for png in ("search.alpha.png", "t_curve.png"):
        assert (sweep / png).stat().st_size > 5000


@pytest.mark.slow
def test_a_real_multirun_through_run_py_is_summarised(tmp_path):
    """sweep=alpha narrowed to 2 jobs (alpha 0 and 0.5, one seed) with the scripted policy and
    the oracle: one folder per job with its resolved config and metrics.json, then the
    callback's summary.csv, summary.md and search.alpha.png."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, str(ROOT / "run.py"), "-m", "sweep=alpha", "search.alpha=0.0,0.5",
           "seed=0", "backend=mock", "prm=oracle", "stage.num_problems=3",
           "search.iterations=4", "logger=null", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name.split("_")[0] for p in jobs] == ["0", "1"]
    for job in jobs:
        resolved = OmegaConf.load(job / "config.yaml")
        assert resolved.stage.name == "eval" and resolved.paths.output_dir == str(job)
        assert "eval/acc@T=4" in json.loads((job / "metrics.json").read_text())
    rows = read_csv(sweep / "summary.csv")
    assert [r["search.alpha"] for r in rows] == ["0.0", "0.5"]
    assert all(r["ok"] == "1" and r["eval/acc.count"] == "1" for r in rows)
    assert (sweep / "search.alpha.png").stat().st_size > 5000
    assert "ok: 2; failed: 0; missing: 0" in (sweep / "summary.md").read_text()
    assert "UNTRAINED" not in (sweep / "summary.md").read_text()  # the oracle needs no training
    assert all(json.loads((j / "metrics.json").read_text())["prm/untrained_head"] == 0.0
               for j in jobs)

    # a job folder's name has no '=' or ',': a tree in it passes back unquoted
    assert "search.alpha-0.5_" in jobs[1].name and not set("=,") & set(jobs[1].name)
    tree = sorted((jobs[1] / "trees").glob("*.json"))[0]
    view = subprocess.run([sys.executable, str(ROOT / "run.py"), "stage=view", f"tree={tree}",
                           "logger=null"], env=env, capture_output=True, text=True, timeout=300)
    assert view.returncode == 0, view.stderr[-3000:]

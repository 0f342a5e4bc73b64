"""Question sharding (`data.shard`/`data.num_shards`) and `stage=merge`; the slow test runs a
real 2-job multirun through submitit's local executor (`hydra/launcher=submitit_local`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from rest_mcts.config import ConfigError
from rest_mcts.runtime.context import unsharded
from rest_mcts.runtime.merge import merge_shards, shard_dirs
from rest_mcts.runtime.search_run import SearchRun, claim_shard, shard_problems
from rest_mcts.stages import check_config
from rest_mcts.utils.io import read_json, read_jsonl, write_jsonl

from tests.helpers.paths import ROOT


def test_shards_are_disjoint_cover_and_keep_the_order():
    questions = [f"q{i}" for i in range(11)]
    shards = [shard_problems(questions, i, 3) for i in range(3)]
    assert shards[0] == ["q0", "q3", "q6", "q9"]
    assert sorted(sum(shards, [])) == sorted(questions)
    assert sum(len(s) for s in shards) == len(questions)
    assert shard_problems(questions, 0, 1) == questions


@pytest.mark.parametrize("override,message", [
    (["data.shard=2", "data.num_shards=2"], "data.shard=2 is outside [0, 1]"),
    (["data.shard=-1", "data.num_shards=2"], "data.shard=-1 is outside [0, 1]"),
    (["data.num_shards=0"], "data.num_shards=0 is outside [1, inf]"),
])
def test_bad_shard_is_one_line(compose_cfg, override, message):
    cfg = compose_cfg("stage=search", *override)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="data.shard=3 is outside"):
        SearchRun(split="test", num_problems=4, shard=3, num_shards=2)


def test_only_search_and_eval_shard(compose_cfg):
    check_config(compose_cfg("stage=eval", "data.shard=1", "data.num_shards=2"))
    with pytest.raises(ConfigError, match="only stage=search and stage=eval shard"):
        check_config(compose_cfg("stage=loop", "data.shard=1", "data.num_shards=2"))


def test_sharding_keys_no_cache():
    """policy_0 cache and loop folder keys never see data.shard (nor change from before)."""
    plain = {"name": "countdown", "shard": 1, "num_shards": 4, "world": {"_target_": "x"}}
    assert unsharded(plain) == {"name": "countdown", "world": {"_target_": "x"}}
    text = {"name": "math", "shard": 1, "num_shards": 4,
            "world": {"dataset": {"shard": 1, "num_shards": 4, "path": "p"}}}
    assert unsharded(text) == {"name": "math", "shard": 0, "num_shards": 1,
                               "world": {"dataset": {"shard": 0, "num_shards": 1, "path": "p"}}}


def test_a_folder_holds_one_shard(tmp_path):
    claim_shard(tmp_path, SearchRun(split="test", num_problems=4, shard=0, num_shards=2), ["a"])
    with pytest.raises(ConfigError, match="holds shard 0 of 2.*its own folder"):
        claim_shard(tmp_path, SearchRun(split="test", num_problems=4, shard=1, num_shards=2),
                    ["b"])


def _row(qid, correct, tokens):
    return {"id": qid, "correct": correct, "finished": True,
            "costs": {"policy_tokens": tokens, "prm_calls": 1, "policy_calls": 1}}


def _shard(root, name, shard, num_shards, ids, rows):
    d = root / name
    d.mkdir()
    (d / "shard.json").write_text(json.dumps(
        {"split": "test", "prefix": "eval", "shard": shard, "num_shards": num_shards, "ids": ids}))
    write_jsonl(d / "results.jsonl", rows)
    return d


def test_merge_recomputes_metrics_and_reports_duplicates_and_missing(tmp_path, caplog):
    # 5 questions in 2 shards: shard 0 owes q0 q2 q4 (q4 missing), shard 1 owes q1 q3 and
    # answered q1 twice (a resumed job), plus a row it does not owe.
    a = _shard(tmp_path, "0_data.shard=0", 0, 2, ["q0", "q2", "q4"],
               [_row("q0", True, 10), _row("q2", True, 20)])
    b = _shard(tmp_path, "1_data.shard=1", 1, 2, ["q1", "q3"],
               [_row("q1", False, 30), _row("q3", False, 40), _row("q1", True, 99),
                _row("zz", True, 1)])
    assert shard_dirs(sweep_dir=tmp_path) == [a, b]
    out = tmp_path / "merged"
    metrics, report = merge_shards([a, b], out)
    rows = read_jsonl(out / "results.jsonl")
    assert [r["id"] for r in rows] == ["q0", "q1", "q2", "q3"]  # one run's question order
    assert rows[1]["costs"]["policy_tokens"] == 30  # the first answer of q1 is kept
    # from the 4 rows (2 of 4 correct), not the mean of the shards' accuracies (1.0 and 0.0)
    assert metrics["eval/acc"] == 0.5 and metrics["eval/num_questions"] == 4
    assert metrics["eval/policy_tokens_per_question"] == (10 + 20 + 30 + 40) / 4
    assert metrics["eval/duplicated_questions"] == 1 and metrics["eval/missing_questions"] == 1
    assert report.duplicated == [f"question q1: answered 2 times ({b}, {b}); kept the first"]
    assert report.missing == [f"question q4 (shard 0 of 2, {a}): no result"]
    assert len(report.unexpected) == 1 and not report.missing_shards
    assert read_json(out / "merge.json")["missing"] == report.missing
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert all("\n" not in line for line in logged) and len(logged) == 3

    _, report = merge_shards([a], tmp_path / "half")
    assert report.missing_shards == ["shard 1 of 2: no folder"]
    with pytest.raises(ConfigError, match="nothing to merge"):
        shard_dirs()


@pytest.mark.slow
def test_submitit_local_multirun_then_merge_equals_one_run(tmp_path):
    """Two shard jobs through submitit's local executor, merged: every question answered
    exactly once, and the merged metrics equal one unsharded run's on the same questions."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "disabled"}
    tiny = ["backend=mock", "prm=oracle", "search=mcts_star", "search.iterations=4",
            "stage.num_problems=6", "logger=null"]

    def run(*args):
        proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], env=env,
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    start = time.perf_counter()
    sweep = tmp_path / "sweep"
    run("-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "stage=eval",
        *tiny, "data.num_shards=2", "data.shard=0,1", f"hydra.sweep.dir={sweep}")
    jobs = sorted(p.parent for p in sweep.glob("*/shard.json"))
    assert len(jobs) == 2 and (sweep / ".submitit").is_dir()  # ran through submitit
    merged = tmp_path / "merged"
    run("stage=merge", f"stage.sweep_dir={sweep}", f"hydra.run.dir={merged}")
    single = tmp_path / "single"
    run("stage=eval", *tiny, f"hydra.run.dir={single}")

    ids = [r["id"] for r in read_jsonl(merged / "results.jsonl")]
    one = read_jsonl(single / "results.jsonl")
    assert sorted(ids) == sorted(r["id"] for r in one) and len(set(ids)) == len(ids) == 6
    assert read_json(merged / "merge.json")["missing"] == []
    assert len(list((merged / "trees").glob("*.json"))) == 6
    got, want = read_json(merged / "metrics.json"), read_json(single / "metrics.json")
    for key in ("acc", "num_questions", "finished_rate", "policy_tokens_per_question",
                "prm_calls_per_question", "policy_calls_per_question"):
        assert got[f"eval/{key}"] == want[f"eval/{key}"], key
    assert got["eval/duplicated_questions"] == got["eval/missing_questions"] == 0
    # per-question seeds: each question's answer and costs match the unsharded run's
    by_id = {r["id"]: r for r in read_jsonl(merged / "results.jsonl")}
    for row in one:
        assert by_id[row["id"]]["steps"] == row["steps"]
        assert by_id[row["id"]]["costs"]["policy_tokens"] == row["costs"]["policy_tokens"]
    print(f"multirun + merge + single run: {time.perf_counter() - start:.1f} s")


def test_slurm_launcher_config_extends_submitit_slurm():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    GlobalHydra.instance().clear()
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert (launcher.gpus_per_node, launcher.cpus_per_task, launcher.mem_gb) == (1, 8, 64)
    assert launcher.timeout_min == 240

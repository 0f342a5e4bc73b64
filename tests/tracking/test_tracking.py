"""wandb runs that make a dashboard (rest_mcts.tracking): names, secrets, credentials, one
run per stage closed even on failure, the loop's one resumable run read back offline."""

from __future__ import annotations

import logging

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rest_mcts.tracking import (
    EVAL_COLUMNS,
    EVAL_SUFFIXES,
    REDACTED,
    has_credentials,
    loggable_config,
    redact,
    run_identity,
    sample_rows,
    wandb_mode,
    wandb_name,
)

from tests.helpers.paths import ROOT
from tests.helpers.wandb_records import offline_runs

SENTINEL = "sk-SENTINEL0123456789abcdefghijklmnopqrstuvwxyz"


# ---------------------------------------------------------------------------- names
def test_metric_names_map_to_split_slash_name_at_the_boundary():
    assert wandb_name("eval/acc") == "eval/acc"
    assert wandb_name("search/policy_tokens_per_question") == "search/tokens_per_question"
    assert wandb_name("prm/val_sibling_acc") == "prm/sibling_acc"
    assert wandb_name("val/sibling_acc") == "val/sibling_acc"  # as Lightning logs it
    assert wandb_name("prm/val_oracle_spearman") == "prm/oracle_spearman"
    assert wandb_name("iteration") == "loop/iter"
    assert wandb_name("mcts/acc") == "eval/mcts_acc"
    assert wandb_name("cot/tokens") == "eval/cot_tokens_per_question"
    assert wandb_name("loop/gain_cot/acc") == "loop/gain_cot_acc"
    assert wandb_name("policy/pass@k") == "policy/pass@k"
    for key in ("eval/acc", "time/stage_seconds", "loop/cot/acc", "sc/n", "stray"):
        assert wandb_name(key).count("/") == 1


def test_one_vocabulary_and_readers_accept_the_older_names(tmp_path):
    """names.ALIASES is the one table of older names: the canonical name of each, and the
    readers of run folders (the loop's report, a sweep's summary) find a metric under any."""
    from rest_mcts.loop.report import write_csv
    from rest_mcts.sweeps.aggregate import main_metrics
    from rest_mcts.tracking.names import ALIASES, canonical, lookup, names_of

    for old, new in ALIASES.items():
        assert canonical(old) == new and canonical(new) == new and new.count("/") == 1
    assert names_of("prm/sibling_acc")[0] == "prm/sibling_acc"
    assert set(names_of("prm/val_sibling_acc")) == {"prm/val_sibling_acc", "prm/sibling_acc",
                                                    "prm/sibling_rank_acc"}
    assert lookup({"prm/sibling_rank_acc": 0.5}, "prm/val_sibling_acc") == 0.5
    row = {"prm/val_sibling_acc": "", "prm/sibling_acc": 0.25}  # an empty cell is missing
    assert lookup(row, "prm/val_sibling_acc") == 0.25
    assert lookup({}, "loop/iter", 3) == 3 and lookup({"iteration": 1.0}, "loop/iter") == 1.0
    # a row holding the canonical names fills the results.csv columns of the names on disk
    write_csv([{"loop/iter": 0.0, "prm/sibling_acc": 0.75, "mcts/acc": 0.5}], tmp_path / "r.csv")
    header, row = (line.split(",") for line in (tmp_path / "r.csv").read_text().splitlines())
    cells = dict(zip(header, row))
    assert cells["iteration"] == "0.0" and cells["prm/val_sibling_acc"] == "0.75"
    assert cells["mcts/acc"] == "0.5"
    assert main_metrics(["eval/acc", "eval/policy_tokens_per_question"]) == [
        "eval/acc", "eval/policy_tokens_per_question"]
    assert main_metrics(["eval/acc", "eval/tokens_per_question"]) == [
        "eval/acc", "eval/tokens_per_question"]


def test_no_module_global_holds_the_stage_run():
    """The stage's run lives on run_stage's resource stack and the spec it hands the stage;
    a stage called on its own gets a run that logs nothing."""
    import rest_mcts.tracking.run as run_module
    from rest_mcts.tracking import StageRun, stage_run

    assert not [k for k, v in vars(run_module).items() if isinstance(v, StageRun)]
    assert not hasattr(run_module, "_ACTIVE")
    empty = stage_run(None)
    assert not empty and empty.opened
    empty.log({"eval/acc": 1.0})  # a no-op


@pytest.mark.slow
def test_eval_columns_are_the_loops_methods():
    from rest_mcts.loop.evaluate import EVAL_METHODS

    assert set(EVAL_COLUMNS) == {prefix for prefix, _ in EVAL_METHODS.values()}
    assert set(EVAL_SUFFIXES) == {"acc", "tokens", "prompt_tokens", "prm_calls"}
    assert wandb_name("pass@n/acc") == "eval/pass@n_acc"
    assert wandb_name("mcts_lean/prompt_tokens") == "eval/mcts_lean_prompt_tokens_per_question"


def test_identity_tags_the_chosen_groups_and_names_the_job(compose_cfg):
    ident = run_identity(compose_cfg("stage=eval", "search=cot", "logger.tags=[mine]"))
    assert ident["job_type"] == "eval" and ident["name"] == "eval-countdown-s0"
    tags = set(ident["tags"])
    assert {"stage:eval", "data:countdown", "search:cot", "model:tiny", "mine"} <= tags
    assert run_identity(compose_cfg("stage=loop"), default_group="g")["group"] == "g"
    assert run_identity(compose_cfg("logger.group=sweep1"), default_group="g")["group"] == "sweep1"


def test_sample_rows_read_the_first_answers_of_a_search_folder(tmp_path):
    rows = [{"id": f"q{i}", "question": "Q", "prediction": "1", "gold": "1", "correct": True,
             "value": 0.5, "steps": ["a", "b"], "costs": {"policy_tokens": 7}} for i in range(5)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "trees").mkdir()
    (tmp_path / "trees" / "q0.json").write_text(json.dumps({"nodes": [{}, {}, {}]}))
    got = sample_rows(tmp_path, 3, iter=2)
    assert len(got) == 3 and got[0]["iter"] == 2 and got[0]["tree_nodes"] == 3
    assert got[0]["steps"] == "a\nb" and got[0]["tokens"] == 7 and got[1]["tree_nodes"] is None
    assert sample_rows(tmp_path / "missing", 3) == []


# ---------------------------------------------------------------------------- secrets
def test_config_keeps_the_key_names_and_drops_the_key_values(compose_cfg, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    cfg = compose_cfg("backend=openai", "+backend.extra_body.auth=Bearer ${oc.env:OPENAI_API_KEY}",
                      "+verify.api_key=plain-secret", "+verify.max_new_tokens=3")
    plain = loggable_config(cfg)
    assert plain["backend"]["api_key_env"] == "OPENAI_API_KEY"  # the name, not the value
    assert plain["backend"]["extra_body"]["auth"] == REDACTED
    assert plain["verify"]["api_key"] == REDACTED and plain["verify"]["max_new_tokens"] == 3
    assert SENTINEL not in json.dumps(plain)
    assert redact({"hf_token": "x", "token_budget": 5, "tokens": 3}) == {
        "hf_token": REDACTED, "token_budget": 5, "tokens": 3}


@pytest.mark.slow
def test_no_secret_reaches_the_wandb_folder(compose_cfg, tmp_path, monkeypatch, wandb_env,
                                           caplog):
    """A stage's whole offline run (config, metrics, table, output) holds neither the wandb
    key nor the backend's key, though both are set and the config points at them."""
    import rest_mcts.stages as stages

    pytest.importorskip("wandb")
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.setenv("WANDB_API_KEY", SENTINEL.replace("sk-", "wb"))  # forced offline below
    cfg = compose_cfg("stage=eval", "backend=openai", "logger=wandb", "logger.offline=true",
                      "+backend.extra_body.auth=${oc.env:OPENAI_API_KEY}")
    monkeypatch.setattr(stages, "get_stage", lambda name: lambda c, spec: {"eval/acc": 0.5})
    with caplog.at_level(logging.INFO, logger="rest_mcts.tracking.run"):
        stages.run_stage(cfg)
    (run,) = offline_runs(tmp_path / "out")
    # an offline run says how to upload it, naming its own folder
    assert f"wandb sync {run.folder}" in caplog.text
    assert run.config["backend"]["api_key_env"] == "OPENAI_API_KEY"
    assert run.metric("eval/acc") == [0.5] and run.exit_code == 0
    for secret in (SENTINEL, SENTINEL.replace("sk-", "wb")):
        for folder in [tmp_path / "out", *map(Path, wandb_env.values())]:
            for path in folder.rglob("*") if folder.is_dir() else []:
                if path.is_file():
                    assert secret.encode() not in path.read_bytes(), path


# ---------------------------------------------------------------------------- online/offline
def test_online_with_a_key_or_a_netrc_login_offline_otherwise(tmp_path, monkeypatch, wandb_env):
    pytest.importorskip("wandb")
    assert not has_credentials() and wandb_mode(None) == "offline"
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {'a' * 40}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))  # what `wandb login` writes
    assert has_credentials() and wandb_mode(None) == "online"
    assert wandb_mode(True) == "offline"  # logger.offline=true overrides
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("WANDB_API_KEY", "b" * 40)
    assert has_credentials() and wandb_mode(None) == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the environment wins
    assert wandb_mode(None) == "disabled" and wandb_mode(False) == "disabled"


def test_a_key_but_no_answering_server_logs_offline_at_once(compose_cfg, tmp_path, monkeypatch,
                                                           wandb_env, caplog):
    """WANDB_API_KEY set, WANDB_BASE_URL a local port that takes connections and never answers:
    the run opens offline after a 3 s probe (not after wandb's 90 s wait) with one warning line that
    names the folder to sync, and the key is in no log line."""
    import socket

    import rest_mcts.stages as stages

    pytest.importorskip("wandb")
    key = "wb" + "c" * 38
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setattr(stages, "get_stage", lambda name: lambda c, spec: {"eval/acc": 0.5})
    with socket.socket() as silent:  # connections queue in the backlog, nothing accepts them
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("WANDB_BASE_URL", url)
        with caplog.at_level(logging.INFO, logger="rest_mcts"):
            stages.run_stage(compose_cfg("stage=eval", "logger=wandb"))
    (run,) = offline_runs(tmp_path / "out")
    assert run.metric("eval/acc") == [0.5]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"wandb: {url} does not answer (no answer within 3 s); logging offline "
                        f"to {run.folder}: upload it later with `wandb sync {run.folder}`"]
    assert key not in caplog.text


def test_a_failing_stage_closes_its_run_marked_failed(compose_cfg, tmp_path, monkeypatch,
                                                      wandb_env):
    wandb = pytest.importorskip("wandb")
    import rest_mcts.stages as stages
    from rest_mcts.tracking import stage_run

    def failing(cfg, spec):
        stage_run(spec).log({"eval/acc": 0.25})
        raise RuntimeError("boom")

    monkeypatch.setattr(stages, "get_stage", lambda name: failing)
    with pytest.raises(RuntimeError, match="boom"):
        stages.run_stage(compose_cfg("stage=eval", "logger=wandb", "logger.offline=true"))
    assert wandb.run is None
    (run,) = offline_runs(tmp_path / "out")
    assert run.exit_code == 1 and run.metric("eval/acc") == [0.25]
    assert run.job_type == "eval" and "stage:eval" in run.tags


# ---------------------------------------------------------------------------- run.py
def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE")}
    env.update(REST_MCTS_ROOT=str(tmp_path), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               WANDB_DIR=str(tmp_path / "wandb_dir"), WANDB_DATA_DIR=str(tmp_path / "wandb_data"),
               WANDB_CACHE_DIR=str(tmp_path / "wandb_cache"), NETRC=str(tmp_path / "no_netrc"),
               WANDB_CONFIG_DIR=str(tmp_path / "wandb_cfg"), **extra)
    return env


MOCK_EVAL = ["stage=eval", "backend=mock", "prm=oracle", "search=mcts_star",
             "stage.num_problems=3"]


@pytest.mark.slow
def test_logger_null_never_imports_wandb(tmp_path):
    argv = [str(ROOT / "run.py"), *MOCK_EVAL, "logger=null", f"hydra.run.dir={tmp_path / 'run'}"]
    code = (
        "import runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "finally:\n    print('WANDB_IMPORTED', 'wandb' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WANDB_IMPORTED False" in proc.stdout
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert not (tmp_path / "run" / "wandb").exists()


@pytest.mark.slow
def test_a_multirun_groups_its_jobs_and_names_them_by_their_swept_values(tmp_path):
    """`-m seed=0,1` of stage=eval: one group (the sweep folder), names `seed=0`/`seed=1`,
    job_type eval, final metrics under split/name and a table of sample answers."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, str(ROOT / "run.py"), "-m", *MOCK_EVAL, "logger=wandb",
           "seed=0,1", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [run for job in sorted(sweep.glob("*_*")) for run in offline_runs(job)]
    assert sorted(r.name for r in runs) == ["seed=0", "seed=1"]
    assert {r.group for r in runs} == {f"{sweep.parent.name}-{sweep.name}"}
    assert {r.job_type for r in runs} == {"eval"} and len({r.id for r in runs}) == 2
    for run in runs:
        assert run.exit_code == 0 and run.config["seed"] == int(run.name[-1])
        assert len(run.metric("eval/acc")) == 1 and run.metric("eval/tokens_per_question")
        assert run.metric("eval/samples/_type") == ["table-file"]
        assert list(run.folder.glob("files/media/table/eval/samples_*.table.json"))


LOOP = [
    "stage=loop", "logger=wandb", "logger.log_artifacts=true", "trainer.enable_progress_bar=false",
    "stage.train_problems=4", "stage.eval_problems=4", "stage.prm_eval_problems=3",
    "stage.init_prm.num_problems=6", "stage.init_prm.max_depth=2",
    "stage.init_prm.method=reference",
    "search.iterations=2", "search.max_step_tokens=24", "data.max_solution_tokens=48",
    "prm.epochs=1", "stage.sft.epochs=1", "stage.sc_max_n=3", "stage.policy_eval.num_problems=4",
    "stage.policy_eval.samples=2", "trainer.log_every_n_steps=1",
]


@pytest.mark.slow
def test_the_loop_logs_one_run_and_a_restart_appends_to_it(tmp_path, tiny_policy):
    """A real tiny loop (the settings of test_loop): one offline run holding the config,
    every iteration's metrics against loop/iter, a table of answers per iteration and the
    models and data as artifacts. Started again for one more iteration (a restart after
    iteration 1), it resumes the same run id and logs only iteration 2."""
    loop_dir = tmp_path / "loop"

    def run_loop(iterations: int, hydra_dir: str) -> None:
        cmd = [sys.executable, str(ROOT / "run.py"), *LOOP, f"model.path={tiny_policy}",
               f"stage.dir={loop_dir}", f"stage.iterations={iterations}",
               f"hydra.run.dir={tmp_path / hydra_dir}"]
        proc = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]

    run_loop(1, "h1")
    (first,) = offline_runs(loop_dir)
    assert json.loads((loop_dir / "wandb_run.json").read_text())["id"] == first.id
    assert first.job_type == "loop" and first.exit_code == 0
    assert first.config["stage"]["iterations"] == 1 and first.config["search"]["iterations"] == 2
    assert first.config["logger"]["log_artifacts"] is True
    rows = [h for h in first.history if "eval/cot_acc" in h]
    assert [h["loop/iter"] for h in rows] == [0, 1]
    for key in ("eval/mcts_acc", "eval/sc_acc", "eval/best_of_n_acc", "eval/weighted_vote_acc",
                "eval/bfs_acc", "eval/mcts_widen_acc", "eval/mcts_tokens_per_question",
                "prm/mse", "prm/sibling_acc", "policy/greedy_acc", "policy/pass@k"):
        assert all(key in h for h in rows), key
    assert "search/train_acc" in rows[1]
    # the Lightning training inside the loop (PRM_0, PRM_1, policy_1) logs into the same run
    assert first.metric("train/loss") and first.metric("trainer/global_step")
    tables = list(first.folder.glob("files/media/table/eval/samples_*.table.json"))
    assert len(tables) == 2
    table = json.loads(tables[0].read_text())
    assert {"iter", "method", "question", "prediction", "correct", "value", "tokens",
            "steps"} <= set(table["columns"])
    assert {row[table["columns"].index("method")] for row in table["data"]} >= {"cot", "mcts_star"}
    arts = {(a["name"], alias) for a in first.artifacts if a["type"] != "run_table"
            for alias in a["aliases"]}
    assert {("d_v", "iter_0"), ("prm", "iter_0"), ("policy", "iter_0"), ("d_v", "iter_1"),
            ("d_g", "iter_1"), ("prm", "iter_1"), ("policy", "iter_1")} <= arts
    prm = next(a for a in first.artifacts if a["name"] == "prm")
    assert "model.safetensors" in prm["files"] and prm["metadata"]["iteration"] == 0

    run_loop(2, "h2")  # one more iteration in the same folder: a restart of the loop
    first_again, second = offline_runs(loop_dir)
    assert second.id == first.id and second.exit_code == 0
    assert [h["loop/iter"] for h in second.history if "eval/cot_acc" in h] == [2]
    # the restart's trainings go on along the run's training step, never back
    assert min(second.metric("trainer/global_step")) > max(first.metric("trainer/global_step"))
    aliases = [set(a["aliases"]) - {"latest"} for a in second.artifacts
               if a["type"] != "run_table"]
    assert aliases and all(a == {"iter_2"} for a in aliases)

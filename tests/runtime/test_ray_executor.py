"""`executor=ray` (rest_mcts.runtime.executors): Ray actors answer exactly as `executor=local`,
a dead actor's questions go to the others (each answered once), the pool outlives a search
and rebuilds an actor's Searcher only when a search needs another, bad options are one line.
The slow tests start a local Ray cluster (through run.py: about 10 s each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rest_mcts.config import ConfigError, check_cli_choices
from rest_mcts.runtime.executors import LocalExecutor, RayExecutor
from rest_mcts.stages import check_config
from rest_mcts.stages.loop import loop_config
from rest_mcts.utils.io import read_jsonl

from tests.helpers.paths import CONF, ROOT

TINY = ["stage=eval", "backend=mock", "prm=oracle", "search=mcts_star", "search.iterations=4",
        "stage.num_problems=12", "logger=null"]


def _run(root, name, *args):
    """run.py into root/name; returns (result rows in file order, metrics, its output)."""
    out = root / name
    env = {**os.environ, "REST_MCTS_ROOT": str(root), "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *TINY, *args,
                           f"hydra.run.dir={out}"], env=env, capture_output=True, text=True,
                          timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_jsonl(out / "results.jsonl")
    assert len(list((out / "trees").glob("*.json"))) == len(rows)
    return rows, json.loads((out / "metrics.json").read_text()), proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
    rows, _, _ = _run(tmp_path_factory.mktemp("local"), "local")
    return rows


def _same_answers(rows, want):
    """Every question answered once, each exactly as executor=local answered it."""
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(want) == 12
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {r["id"] for r in want}
    for row in want:
        got = by_id[row["id"]]
        for key in ("prediction", "steps", "finished", "value", "correct"):
            assert got[key] == row[key], (row["id"], key)
        for key in ("policy_tokens", "policy_calls", "prm_calls"):
            assert got["costs"][key] == row["costs"][key], (row["id"], key)


@pytest.mark.slow
def test_ray_actors_answer_as_local(tmp_path, local_rows):
    pytest.importorskip("ray")
    rows, metrics, _ = _run(tmp_path, "ray", "executor=ray", "executor.num_actors=2",
                            "executor.chunk_size=3")
    _same_answers(rows, local_rows)
    assert metrics["executor/actor_failures"] == 0
    assert 0 < metrics["executor/driver_share"] < 1


@pytest.mark.slow
def test_a_dead_actors_questions_go_to_the_others(tmp_path, local_rows):
    """Actor 0 answers one chunk, then exits (os._exit) when asked for its next: its queued
    chunks are searched by actor 1; every question is answered exactly once, none lost."""
    pytest.importorskip("ray")
    rows, metrics, logs = _run(tmp_path, "ray", "executor=ray", "executor.num_actors=2",
                                 "executor.chunk_size=2", "+executor.fail_after_chunks=1")
    _same_answers(rows, local_rows)
    assert metrics["executor/actor_failures"] == 1
    assert "a Ray actor died (1 of 2 left)" in logs


@pytest.mark.slow
def test_when_every_actor_dies_the_run_stops_and_resumes(tmp_path, local_rows):
    """The only actor dies on its first chunk: the run stops naming the unanswered questions;
    run again into the same folder (no fault), it answers them, each once."""
    pytest.importorskip("ray")
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *TINY, "executor=ray",
                           "executor.num_actors=1", "+executor.fail_after_chunks=0",
                           f"hydra.run.dir={tmp_path / 'ray'}"], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0
    assert "every Ray actor died; 12 questions are unanswered" in proc.stdout + proc.stderr
    rows, _, _ = _run(tmp_path, "ray", "executor=ray", "executor.num_actors=1")
    _same_answers(rows, local_rows)


@pytest.mark.parametrize("override,message", [
    ("executor.num_actors=0", "executor.num_actors=0 is outside [1, inf]"),
    ("executor.chunk_size=0", "executor.chunk_size=0 must be a whole number >= 1 or auto"),
    ("executor.num_gpus=-1", "executor.num_gpus=-1 is outside [0, inf]"),
    ("executor.address=''", "executor.address='' must be <host>:<port>"),
    ("executor.chunk_size=big", "executor.chunk_size='big' must be a whole number >= 1 or auto"),
    ("executor.keep_models=maybe", "executor.keep_models='maybe' must be true, false or auto"),
])
def test_bad_executor_option_is_one_line(compose_cfg, override, message):
    with pytest.raises(ConfigError) as err:
        check_config(compose_cfg("stage=eval", "executor=ray", override))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_executor_is_one_line():
    with pytest.raises(ConfigError, match=r"^unknown executor 'dask': choose one of local, ray"):
        check_cli_choices(CONF, ["executor=dask"])


def test_executor_is_built_from_config_and_keys_nothing(compose_cfg):
    from rest_mcts.runtime.context import Context

    local, ray = compose_cfg("stage=loop"), compose_cfg("stage=loop", "executor=ray")
    assert Context.from_config(local).executor == LocalExecutor()
    assert Context.from_config(ray).executor == RayExecutor(num_actors=2, chunk_size="auto")
    # every executor gives the same answers: a loop folder and policy_0 are keyed without it
    assert loop_config(local) == loop_config(ray)
    assert Context.from_config(local).policy0_key == Context.from_config(ray).policy0_key


@pytest.mark.slow
def test_the_loops_searches_run_on_ray_too(compose_cfg, tiny_policy, tmp_path):
    """The loop's search steps go through the same run_search (here D_V0's BFS trees, on
    backend=hf in the actors): with executor=ray the trees equal executor=local's."""
    ray = pytest.importorskip("ray")
    from rest_mcts.runtime.context import Context
    from rest_mcts.loop.d_v0 import InitPRMSettings, sample_bfs_trees

    init = InitPRMSettings(num_problems=4, branch=2, max_depth=2, max_step_tokens=16,
                           concurrency=4)
    trees = {}
    try:
        for name, extra in (("local", []), ("ray", ["executor=ray", "executor.chunk_size=1"])):
            ctx = Context.from_config(compose_cfg("stage=init_prm", *extra))
            assert ctx.executor.name == name
            out = sample_bfs_trees(ctx, init, tmp_path / name, "train", 4, tiny_policy)
            trees[name] = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
    finally:
        ctx.executor.close()
        ray.shutdown()
    assert len(trees["local"]) == 4 and trees["ray"] == trees["local"]


def test_auto_chunks_split_evenly_and_are_capped():
    ex = RayExecutor(num_actors=2)
    assert ex.chunk_for(64, 2, concurrency=64) == 32
    assert ex.chunk_for(368, 2, concurrency=64) == 184
    assert ex.chunk_for(5000, 2, concurrency=64) == 256  # 4 x concurrency
    assert ex.chunk_for(1, 2, concurrency=64) == 1
    assert RayExecutor(chunk_size=3).chunk_for(368, 2, concurrency=64) == 3
    assert RayExecutor().keeps_models() and not RayExecutor(num_gpus=1).keeps_models()


@pytest.mark.slow
def test_the_pool_outlives_a_search_and_rebuilds_only_what_changed(compose_cfg):
    """Three searches on one executor, in one process: the actors start once; the same
    search again builds no Searcher; another policy path rebuilds every actor's Searcher
    (loading the policy and the scorer, whose backbone is the policy); more MCTS* iterations
    rebuild it with the models kept. Every answer equals executor=local's."""
    ray = pytest.importorskip("ray")
    import dataclasses

    from rest_mcts.runtime.context import Context
    from rest_mcts.runtime.search_run import SearchRun
    from rest_mcts.search.configs import search_config_from

    cfg = compose_cfg(*TINY[:-1], "~logger", "executor=ray")
    ctx = Context.from_config(cfg)
    method = search_config_from(cfg.search)
    more = dataclasses.replace(method, iterations=6)
    run = SearchRun(split="test", num_problems=8, prefix="eval", concurrency=4)
    questions = [(p.id, p.question) for p in ctx.problems("test", 8)]

    def answers(executor, search, policy):
        stats = {}
        got = executor.search(ctx, search, run, questions, policy_path=policy, prm_path=None,
                              stats=stats)
        return {q: (r.answer, r.steps, r.finished, r.value) for q, r in got}, stats

    try:
        for search in (method, more):
            want, _ = answers(LocalExecutor(), search, "p1")
            first, stats = answers(ctx.executor, search, "p1")
            assert first == want
        first, stats = answers(ctx.executor, method, "p1")
        assert stats["executor/actors_started"] == 0 and stats["executor/searchers_built"] == 2
        assert stats["executor/models_loaded"] == 0  # search config changed: models kept
        again, stats = answers(ctx.executor, method, "p1")
        assert again == first
        assert stats["executor/actors_started"] == 0 and stats["executor/searchers_built"] == 0
        assert stats["questions"] == 8
        other, stats = answers(ctx.executor, method, "p2")
        assert other == first  # backend=mock: the policy path changes no answer
        assert stats["executor/actors_started"] == 0 and stats["executor/searchers_built"] == 2
        assert stats["executor/models_loaded"] == 4  # policy and oracle scorer, per actor
    finally:
        ctx.executor.shutdown()
        ray.shutdown()


@pytest.mark.slow
def test_a_dead_actor_is_replaced_at_the_next_search(compose_cfg):
    """The pool's first actor dies after one chunk: its questions go to the other actor
    (each answered once, as executor=local answers); the next search on the pool starts one
    new actor in its place and loses none."""
    ray = pytest.importorskip("ray")
    from rest_mcts.runtime.context import Context
    from rest_mcts.runtime.search_run import SearchRun
    from rest_mcts.search.configs import search_config_from

    cfg = compose_cfg(*TINY[:-1], "~logger", "executor=ray", "executor.chunk_size=2",
                      "+executor.fail_after_chunks=1")
    ctx = Context.from_config(cfg)
    method = search_config_from(cfg.search)
    run = SearchRun(split="test", num_problems=8, prefix="eval", concurrency=4)
    questions = [(p.id, p.question) for p in ctx.problems("test", 8)]

    def answers(executor):
        stats = {}
        got = list(executor.search(ctx, method, run, questions, policy_path="p", prm_path=None,
                                   stats=stats))
        assert len(got) == len({q for q, _ in got}) == 8
        return {q: (r.answer, r.steps, r.finished, r.value) for q, r in got}, stats

    try:
        want, _ = answers(LocalExecutor())
        got, stats = answers(ctx.executor)
        assert got == want and stats["executor/actor_failures"] == 1
        got, stats = answers(ctx.executor)
        assert got == want and stats["executor/actor_failures"] == 0
        assert stats["executor/actors_started"] == 1 and stats["executor/searchers_built"] == 1
    finally:
        ctx.executor.shutdown()
        ray.shutdown()


def test_chunks_are_dealt_level_by_level():
    """Every actor gets its first chunk before any gets a second (the first actor used to
    take all chunks_in_flight of them, leaving the others idle: 2 actors ran as 1)."""
    from rest_mcts.runtime.executors import deal_order

    assert deal_order(["a", "b"], {"a": 0, "b": 0}, 2, 2) == ["a", "b"]
    assert deal_order(["a", "b"], {"a": 0, "b": 0}, 2, 5) == ["a", "b", "a", "b"]
    assert deal_order(["a", "b", "c"], {"a": 2, "b": 1, "c": 0}, 2, 9) == ["c", "b", "c"]
    assert deal_order(["a", "b"], {"a": 0, "b": 0}, 1, 0) == []

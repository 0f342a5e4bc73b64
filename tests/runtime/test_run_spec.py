"""A stage runs on one run spec and one resource stack (rest_mcts.runtime.spec,
rest_mcts.stages.run_stage): its Context and search config are built once, before any work,
the search is checked against the world once, and what the stage started (the executor, the
tracker's run) ends through the stack, also when the stage raises."""

from __future__ import annotations

import pickle
from collections import Counter

import pytest

from rest_mcts.runtime.executors import LocalExecutor, RayExecutor
from rest_mcts.utils.io import read_jsonl

# a handful of Countdown questions, scripted policy, exact oracle; `~logger` is what run.py
# makes of logger=null
SEARCH = ("stage=search", "backend=mock", "prm=oracle", "data=countdown", "search=mcts_star",
          "search.iterations=4", "stage.num_problems=5", "~logger")


def _counting(counts: Counter, name: str, fn):
    def wrapper(*args, **kwargs):
        counts[name] += 1
        return fn(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("stage", ["search", "eval"])
def test_a_search_run_builds_its_context_and_search_config_once_and_checks_once(
    compose_cfg, monkeypatch, tmp_path, stage
):
    import rest_mcts.search.configs as configs
    import rest_mcts.stages as stages
    from rest_mcts.runtime.context import Context
    from rest_mcts.search.configs import MCTSStarConfig

    monkeypatch.setenv("REST_MCTS_CACHE_DIR", str(tmp_path / "cache"))  # run_stage sets it
    counts: Counter = Counter()
    monkeypatch.setattr(Context, "from_config",
                        classmethod(_counting(counts, "Context", Context.from_config.__func__)))
    # the builder of every typed search config, and MCTSStarConfig's own construction
    monkeypatch.setattr(configs, "search_config",
                        _counting(counts, "search_config", configs.search_config))
    monkeypatch.setattr(MCTSStarConfig, "__post_init__",
                        _counting(counts, "MCTSStarConfig", MCTSStarConfig.__post_init__))
    monkeypatch.setattr(MCTSStarConfig, "check_world",
                        _counting(counts, "check_world", MCTSStarConfig.check_world))

    stages.run_stage(compose_cfg(*SEARCH, f"stage={stage}"))

    rows = read_jsonl(tmp_path / "out" / "results.jsonl")
    assert len(rows) == 5 and all(r["costs"]["policy_tokens"] > 0 for r in rows)
    assert counts == {"Context": 1, "search_config": 1, "MCTSStarConfig": 1, "check_world": 1}


def test_a_loop_builds_its_context_and_settings_once(compose_cfg, monkeypatch, tmp_path):
    """stage=loop: the Context, the search config and the loop's typed settings
    (LoopSettings, InitPRMSettings, PolicyEval) are each built once (the loop's work itself,
    policy_0 and the iterations, is stubbed out)."""
    import rest_mcts.search.configs as configs
    import rest_mcts.stages as stages
    import rest_mcts.stages.loop as loop_stage
    from rest_mcts.loop.algorithm import LoopSettings
    from rest_mcts.loop.d_v0 import InitPRMSettings
    from rest_mcts.loop.evaluate import PolicyEval
    from rest_mcts.runtime.context import Context

    monkeypatch.setenv("REST_MCTS_CACHE_DIR", str(tmp_path / "cache"))
    counts: Counter = Counter()
    monkeypatch.setattr(Context, "from_config",
                        classmethod(_counting(counts, "Context", Context.from_config.__func__)))
    monkeypatch.setattr(configs, "search_config",
                        _counting(counts, "search_config", configs.search_config))
    for cls in (LoopSettings, InitPRMSettings, PolicyEval):
        monkeypatch.setattr(cls, "__post_init__",
                            _counting(counts, cls.__name__, cls.__post_init__))
    seen: list = []
    monkeypatch.setattr(loop_stage, "ensure_policy0", lambda ctx, out: tmp_path / "policy0")
    monkeypatch.setattr(loop_stage, "run_loop",
                        lambda ctx, settings, *rest: seen.append(settings) or [{"cot/acc": 0.5}])
    monkeypatch.setattr(loop_stage, "write_report", lambda *args, **kwargs: None)
    monkeypatch.setattr(loop_stage, "print_summary", lambda *args: None)
    monkeypatch.setattr(loop_stage, "policy0_metrics", lambda path: {})

    stages.run_stage(compose_cfg("stage=loop", "~logger"))

    assert len(seen) == 1 and seen[0].policy_eval is not None
    assert counts == {"Context": 1, "search_config": 1, "LoopSettings": 1,
                      "InitPRMSettings": 1, "PolicyEval": 1}


def test_a_context_binds_a_search_once_and_ships_without_it(compose_cfg):
    """The runner's check and the Searcher share one binding; a Context sent to a Ray actor
    (pickled) carries none, so the actor's process binds its own."""
    from rest_mcts.runtime.spec import RunSpec

    spec = RunSpec.from_config(compose_cfg(*SEARCH))
    bound = spec.ctx.search_fn(spec.search)
    assert spec.ctx.search_fn(spec.search) is bound
    copy = pickle.loads(pickle.dumps(spec.ctx))
    assert copy == spec.ctx and "_search_fns" not in vars(copy)
    assert copy.search_fn(spec.search) is not bound


@pytest.mark.parametrize("fails", [False, True])
def test_run_stage_ends_the_tracker_and_the_executor_through_its_stack(compose_cfg, monkeypatch,
                                                                       tmp_path, fails):
    """The stage gets the spec run_stage built; when it returns or raises, the stack finishes
    its tracker run (failed when it raised), then shuts its executor down, each once."""
    import rest_mcts.stages as stages
    from rest_mcts.tracking import StageRun

    monkeypatch.setenv("REST_MCTS_CACHE_DIR", str(tmp_path / "cache"))
    events: list = []
    monkeypatch.setattr(LocalExecutor, "shutdown", lambda self: events.append("executor"))
    finish = StageRun.finish

    def finishing(self, failed=False):
        events.append(("tracker", failed))
        finish(self, failed)

    monkeypatch.setattr(StageRun, "finish", finishing)

    def stage(cfg, spec):
        events.append("stage")
        assert spec.ctx.executor == LocalExecutor() and spec.search.name == "mcts_star"
        if fails:
            raise RuntimeError("boom")
        return {"eval/acc": 0.5}

    monkeypatch.setattr(stages, "get_stage", lambda name: stage)
    if fails:
        with pytest.raises(RuntimeError, match="boom"):
            stages.run_stage(compose_cfg(*SEARCH))
    else:
        assert stages.run_stage(compose_cfg(*SEARCH)) == 0.5
    assert events == ["stage", ("tracker", fails), "executor"]
    assert (tmp_path / "out" / "metrics.json").exists() is not fails


def test_a_ray_executor_holds_its_pool_itself_and_never_ships_it():
    """No module-global pools: the pool and the cluster an executor started live on the
    executor object; equality and hash are its settings; a pickled copy (inside the Context
    an actor receives) starts empty."""
    import rest_mcts.runtime.executors as executors

    assert not hasattr(executors, "_POOLS") and not hasattr(executors, "close_pools")
    ex = RayExecutor(num_actors=3)
    ex._live.pool, ex._live.started_ray = object(), True
    copy = pickle.loads(pickle.dumps(ex))
    assert copy == ex and hash(copy) == hash(ex) and copy == RayExecutor(num_actors=3)
    assert copy._live.pool is None and not copy._live.started_ray
    assert RayExecutor(num_actors=3)._live is not RayExecutor(num_actors=3)._live

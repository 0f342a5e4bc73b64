"""The accuracy-vs-T curve recorded inside one MCTS* run (search.t_checkpoints)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from rest_mcts.backends.mock import MockPolicyBackend
from rest_mcts.config import ConfigError
from rest_mcts.runtime.search_run import summarize
from rest_mcts.search.configs import MCTSStarConfig
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.mcts_star import mcts_star
from rest_mcts.search.oracle_scorer import OracleScorer
from rest_mcts.search.t_curve import checkpoint_schedule, curve_metrics, judge_curve
from rest_mcts.worlds import CountdownWorld

WORLD = CountdownWorld()
PROBLEMS = WORLD.generate(6, seed=3, split="test")


class NoisyScorer:
    """Deterministic values in [0, 0.85): below l = 0.9, so no search stops early."""

    def score(self, items):
        out = []
        for question, steps in items:
            digest = hashlib.sha256(repr((question, steps)).encode()).digest()
            out.append(0.85 * digest[0] / 256)
        return out


def run(config, scorer=None, concurrency=8, problems=PROBLEMS):
    engine = SearchEngine(MockPolicyBackend(seed=0), scorer or NoisyScorer(),
                          concurrency=concurrency, seed=7, progress=False)
    jobs = [(p.id, mcts_star(p.question, WORLD, config)) for p in problems]
    return engine.run_all(jobs)


def point_of(result):
    """The final answer in a checkpoint's terms."""
    return {"steps": list(result.steps), "answer": result.answer,
            "finished": result.finished, "value": result.value,
            "policy_tokens": result.costs.policy_tokens}


def test_schedule_keeps_checkpoints_below_T_and_ends_at_T():
    assert checkpoint_schedule((5, 10, 20, 50), 8) == (5, 8)
    assert checkpoint_schedule((20, 5, 10, 5), 10) == (5, 10)
    assert checkpoint_schedule((5, 10), 50) == (5, 10, 50)
    assert checkpoint_schedule((), 50) == ()


def test_config_knob_is_a_checked_tuple():
    assert MCTSStarConfig().t_checkpoints == (5, 10, 20, 50, 100, 200)
    assert MCTSStarConfig(t_checkpoints=[3, 1]).t_checkpoints == (3, 1)
    assert MCTSStarConfig(t_checkpoints=None).t_checkpoints == ()
    with pytest.raises(ConfigError, match="search.t_checkpoints=0 is outside"):
        MCTSStarConfig(t_checkpoints=[5, 0])
    with pytest.raises(ConfigError, match="must be a list"):
        MCTSStarConfig(t_checkpoints=5)


def test_last_checkpoint_is_the_final_answer_and_tokens_grow():
    results = run(MCTSStarConfig(iterations=12, t_checkpoints=(2, 5, 8)))
    for result in results.values():
        curve = result.info["t_curve"]
        assert [p["t"] for p in curve] == [2, 5, 8, 12]
        last = {k: curve[-1][k] for k in ("steps", "answer", "finished", "value",
                                          "policy_tokens")}
        assert last == point_of(result)
        tokens = [p["policy_tokens"] for p in curve]
        assert tokens == sorted(tokens) and tokens[0] > 0


def test_each_checkpoint_is_what_a_run_with_that_T_answers():
    """One run at T=12 gives the answers (and token counts) of separate runs at t = 2, 5, 8
    (that answer an unfinished path as it stands: a checkpoint is not completed)."""
    big = run(MCTSStarConfig(iterations=12, t_checkpoints=(2, 5, 8)))
    for t in (2, 5, 8):
        small = run(MCTSStarConfig(iterations=t, t_checkpoints=(), finish="as_is"))
        for qid, result in small.items():
            (point,) = [p for p in big[qid].info["t_curve"] if p["t"] == t]
            assert {k: point[k] for k in point if k != "t"} == point_of(result), (qid, t)
            assert "t_curve" not in result.info  # [] turns the curve off


def test_early_stop_keeps_the_answer_at_the_stop():
    """With exact values most searches stop at v >= l long before T: every later checkpoint
    holds the stop's answer and tokens."""
    results = run(MCTSStarConfig(iterations=40, t_checkpoints=(1, 2, 5, 10, 20)),
                  scorer=OracleScorer(WORLD))
    stopped = [r for r in results.values() if r.info["stopped_at_end_gate"]]
    assert stopped
    for result in stopped:
        done = result.info["iterations"]
        after = [p for p in result.info["t_curve"] if p["t"] >= done]
        assert after and after[-1]["t"] == 40
        for point in after:
            assert {k: point[k] for k in point if k != "t"} == point_of(result)


def test_curve_does_not_depend_on_concurrency():
    config = MCTSStarConfig(iterations=10, t_checkpoints=(3, 6))
    one = run(config, concurrency=1)
    many = run(config, concurrency=6)
    assert {k: r.info["t_curve"] for k, r in one.items()} == {
        k: r.info["t_curve"] for k, r in many.items()}


def test_judged_curve_and_metrics():
    results = run(MCTSStarConfig(iterations=6, t_checkpoints=(2,)), scorer=OracleScorer(WORLD))
    rows = []
    for problem in PROBLEMS:
        result = results[problem.id]
        curve = judge_curve(result.info["t_curve"],
                            lambda steps, p=problem: WORLD.is_correct(p, steps))
        correct = bool(result.finished and WORLD.is_correct(problem, list(result.steps)))
        assert curve[-1]["correct"] == correct and "steps" not in curve[-1]
        rows.append({"correct": correct, "finished": result.finished,
                     "costs": dataclasses.asdict(result.costs), "t_curve": curve})
    metrics = summarize(rows, prefix="eval")
    assert metrics["eval/acc@T=6"] == metrics["eval/acc"]
    assert metrics["eval/policy_tokens_per_question@T=6"] == pytest.approx(
        metrics["eval/policy_tokens_per_question"])
    assert metrics["eval/policy_tokens_per_question@T=2"] <= (
        metrics["eval/policy_tokens_per_question@T=6"])
    assert curve_metrics([{"correct": True}], "eval") == {}  # rows without a curve


def test_checkpoints_do_not_key_the_loop_folder(compose_cfg):
    """They change no answer: a loop folder made before the knob existed still resumes."""
    from rest_mcts.stages.loop import loop_config

    with_curve = loop_config(compose_cfg("stage=loop"))
    without = loop_config(compose_cfg("stage=loop", "search.t_checkpoints=[]"))
    assert with_curve == without and "t_checkpoints" not in with_curve["search"]

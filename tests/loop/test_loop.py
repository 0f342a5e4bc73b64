"""The self-training loop: D_V0 both ways, extract, resumable steps, the loop through run.py."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rest_mcts.backends.base import Completion, GenerationOutput
from rest_mcts.loop.steps import StepRunner
from rest_mcts.search.tree import Tree
from rest_mcts.search.verify import verify_tree
from rest_mcts.loop.d_v0 import reference_rows
from rest_mcts.loop.data import extract_data
from rest_mcts.utils.io import read_jsonl
from rest_mcts.worlds.base import Problem, Question
from rest_mcts.worlds.countdown import CountdownWorld, format_question, format_step

from tests.helpers.paths import ROOT

WORLD = CountdownWorld()
# Make 24 from 2 3 4: 2 * 3 = 6, then 6 * 4 = 24 (two steps, m_0 = 2)
PROBLEM = Problem(Question("p24", format_question([2, 3, 4], 24)), gold="24")
RIGHT_1 = format_step(1, 2, "*", 3, 6, [6, 4])
RIGHT_2 = format_step(2, 6, "*", 4, 24, [24])
WRONG_1 = format_step(1, 2, "+", 3, 5, [5, 4])        # 5 and 4 cannot make 24
WRONG_2 = format_step(2, 5, "+", 4, 9, [9])           # finished, wrong
LATE_WRONG = format_step(2, 6, "+", 4, 10, [10])      # finished, wrong, after a right step


def hand_built_tree() -> Tree:
    """root -> RIGHT_1 -> {RIGHT_2 (correct), LATE_WRONG}; root -> WRONG_1 -> WRONG_2."""
    tree = Tree(PROBLEM.id, PROBLEM.question.text)
    right = tree.add_child(tree.root, RIGHT_1)
    tree.add_child(right, RIGHT_2, terminal=True, answer="24")
    tree.add_child(right, LATE_WRONG, terminal=True, answer="10")
    wrong = tree.add_child(tree.root, WRONG_1)
    tree.add_child(wrong, WRONG_2, terminal=True, answer="9")
    verify_tree(tree, PROBLEM, WORLD)
    return tree


def test_d_v0_targets_of_a_hand_built_tree(tmp_path):
    """Quality values (Eq. 1-3) with m_0 = 2: right step 1/2, right finish 1, a wrong step
    after the root max(0 - 1/3, 0) = 0; a wrong finish after the right step keeps its
    parent's distance m = 1: 1/2 - (1 - 1/2) / 2 = 1/4."""
    hand_built_tree().save(tmp_path / "trees" / "p24.json")
    counts = extract_data(tmp_path / "trees", tmp_path / "out")
    targets = {tuple(r["steps"]): r["target"] for r in read_jsonl(tmp_path / "out" / "d_v.jsonl")}
    assert targets == pytest.approx({
        (RIGHT_1,): 0.5,
        (RIGHT_1, RIGHT_2): 1.0,
        (RIGHT_1, LATE_WRONG): 0.25,
        (WRONG_1,): 0.0,
        (WRONG_1, WRONG_2): 0.0,
    })
    assert counts["extract/d_v_rows"] == 5


ALT_RIGHT_1 = format_step(1, 3, "*", 4, 12, [2, 12])  # right too (2 * 12 = 24), never explored


def tree_with_an_unexplored_child() -> Tree:
    """The hand-built tree plus a right first step the search generated but never expanded."""
    tree = hand_built_tree()
    tree.add_child(tree.root, ALT_RIGHT_1)
    verify_tree(tree, PROBLEM, WORLD)
    return tree


def test_d_v_paths_leaves_out_an_unexplored_child_and_all_keeps_it(tmp_path):
    """d_v_nodes=paths (the authors' D_V): only nodes on a root-to-finished-leaf path. An
    unexplored child has no correct finish below it, so `all` labels it r = 1, v = 0 although
    it is one step from the answer (exact value 1/2)."""
    from rest_mcts.loop.data import d_v_rows
    from rest_mcts.search.oracle_scorer import OracleScorer

    tree = tree_with_an_unexplored_child()
    assert WORLD.distance(PROBLEM.question, [ALT_RIGHT_1]) == 1
    assert OracleScorer(WORLD).score([(PROBLEM.question.text, (ALT_RIGHT_1,))]) == [0.5]
    paths = {tuple(r["steps"]): r["target"] for r in d_v_rows([tree], nodes="paths")}
    every = {tuple(r["steps"]): r for r in d_v_rows([tree], nodes="all")}
    assert (ALT_RIGHT_1,) not in paths
    assert every[(ALT_RIGHT_1,)]["r"] == 1 and every[(ALT_RIGHT_1,)]["target"] == 0.0
    assert set(every) - set(paths) == {(ALT_RIGHT_1,)}  # every explored node is on a path
    assert paths == pytest.approx({
        (RIGHT_1,): 0.5, (RIGHT_1, RIGHT_2): 1.0, (RIGHT_1, LATE_WRONG): 0.25,
        (WRONG_1,): 0.0, (WRONG_1, WRONG_2): 0.0,
    })
    assert d_v_rows([tree]) == d_v_rows([tree], nodes="paths")  # the default

    tree.save(tmp_path / "trees" / "p24.json")
    assert extract_data(tmp_path / "trees", tmp_path / "p")["extract/d_v_rows"] == 5
    assert extract_data(tmp_path / "trees", tmp_path / "a", d_v_nodes="all")[
        "extract/d_v_rows"] == 6
    with pytest.raises(Exception, match="d_v_nodes=some is not one of"):
        d_v_rows([tree], nodes="some")


def test_a_path_ends_at_any_finished_leaf_and_only_there():
    """A wrong finish still ends a path (its nodes are labelled); an unfinished leaf, however
    deep, does not."""
    from rest_mcts.loop.data import on_finished_paths

    tree = hand_built_tree()
    wrong = tree.nodes[tree.nodes[0].children[1]]  # WRONG_1 -> WRONG_2 (finished, wrong)
    dangling = tree.add_child(wrong, LATE_WRONG)  # unfinished, never expanded
    verify_tree(tree, PROBLEM, WORLD)
    keep = on_finished_paths(tree)
    assert wrong.id in keep and wrong.children[0] in keep
    assert dangling.id not in keep and tree.root.id not in keep


def loop_settings(**kw):
    from rest_mcts.loop.algorithm import LoopSettings
    from rest_mcts.loop.d_v0 import InitPRMSettings
    from rest_mcts.training.settings import TrainSettings

    return LoopSettings(init_prm=InitPRMSettings(), sft=TrainSettings(group="policy", lr=1e-3),
                        **kw)


def test_loop_settings_d_v_nodes_and_train_early_stop(compose_cfg):
    from rest_mcts.config import ConfigError, from_node
    from rest_mcts.loop.algorithm import LoopSettings
    from rest_mcts.loop.d_v0 import InitPRMSettings
    from rest_mcts.training.settings import TrainSettings

    stage = compose_cfg("stage=loop").stage
    s = from_node(LoopSettings, stage, init_prm=InitPRMSettings(),
                  sft=TrainSettings(group="policy", lr=1e-3))
    assert s.d_v_nodes == "paths" and s.train_early_stop is False
    assert loop_settings(d_v_nodes="all").d_v_nodes == "all"
    with pytest.raises(ConfigError, match=r"stage.d_v_nodes=nodes is not one of \['paths', 'all'\]"):
        loop_settings(d_v_nodes="nodes")
    with pytest.raises(ConfigError, match="stage.train_early_stop"):
        loop_settings(train_early_stop="no")


ALL_EVAL = ("cot", "self_consistency", "best_of_n", "best_of_n_prod", "weighted_vote",
            "pass_at_n", "bfs", "mcts_star", "mcts_star_lean", "mcts_star_widen")


def test_eval_methods_default_to_all_and_bad_lists_fail_in_one_line(compose_cfg):
    from rest_mcts.config import ConfigError, from_node
    from rest_mcts.loop.algorithm import LoopSettings
    from rest_mcts.loop.d_v0 import InitPRMSettings
    from rest_mcts.training.settings import TrainSettings

    stage = compose_cfg("stage=loop").stage
    s = from_node(LoopSettings, stage, init_prm=InitPRMSettings(),
                  sft=TrainSettings(group="policy", lr=1e-3))
    assert s.eval_methods == ALL_EVAL == loop_settings().eval_methods
    # any order and a list (as Hydra gives it) -> a tuple in table order
    assert loop_settings(eval_methods=["mcts_star", "cot"]).eval_methods == ("cot", "mcts_star")
    assert loop_settings(eval_methods=["mcts_star_widen"]).eval_methods == ("mcts_star_widen",)
    for bad, match in (
        (["cot", "beam"], r"stage.eval_methods: beam not one of \['cot', 'self_consistency', "
                          r"'best_of_n', 'best_of_n_prod', 'weighted_vote', 'pass_at_n', 'bfs', "
                          r"'mcts_star', 'mcts_star_lean', 'mcts_star_widen'\]"),
        ([], r"stage.eval_methods=\[\] must be a non-empty list of \['cot'"),
        ("cot", r"stage.eval_methods='cot' must be a non-empty list"),
        (["best_of_n", "mcts_star"], "stage.eval_methods: best_of_n need.* cot too"),
        (["bfs"], "stage.eval_methods: bfs need.* cot and mcts_star too"),
    ):
        with pytest.raises(ConfigError, match=match) as err:
            loop_settings(eval_methods=bad)
        assert "\n" not in str(err.value)


def test_matched_n_the_bfs_beam_and_the_sampled_n_max():
    """BFS: N = ceil(MCTS* tokens / CoT tokens), at least 1, at most the cap; it keeps MCTS*'s
    branch b and step settings with beam ceil(N / b). The sampling pass: twice that ratio."""
    from rest_mcts.loop.evaluate import bfs_at, matched_n, sampled_n_max
    from rest_mcts.search.configs import search_config

    assert matched_n(220.0, 40.0, 128) == 6
    assert matched_n(240.0, 40.0, 128) == 6  # exactly 6 samples' worth
    assert matched_n(241.0, 40.0, 128) == 7
    assert matched_n(10_000.0, 40.0, 128) == 128
    assert matched_n(50.0, 0.0, 128) == 50  # a CoT under one token counts as one
    assert matched_n(0.0, 40.0, 128) == 1
    assert sampled_n_max(230.0, 40.0, 128) == 12 and sampled_n_max(230.0, 40.0, 8) == 8
    assert sampled_n_max(0.0, 40.0, 128) == 1
    mcts = search_config("mcts_star", branch=3, max_depth=5, temperature=0.7, max_step_tokens=24)
    bfs = bfs_at(mcts, 7)
    assert (bfs.name, bfs.branch, bfs.beam_width) == ("bfs", 3, 3)
    assert (bfs.max_depth, bfs.temperature, bfs.max_step_tokens) == (5, 0.7, 24)
    assert bfs_at(mcts, 6).beam_width == 2 and bfs_at(mcts, 1).beam_width == 1


# The fake sampling pass: N samples cost 40 N tokens; each rule's accuracy is its base plus
# 0.1 per doubling of N; PRM calls: N paths, 2 N step prefixes.
RULE_BASE = {"sc": 0.1, "best_of_n": 0.2, "best_of_n_prod": 0.25, "weighted_vote": 0.15,
             "pass": 0.3}


def fake_curve(n_max: int) -> dict[str, float]:
    from rest_mcts.search.selection import sample_grid

    metrics = {}
    for n in sample_grid(n_max):
        metrics[f"eval/policy_tokens_per_question@N={n}"] = 40.0 * n
        metrics[f"eval/prm_calls_per_question@N={n}"] = 2.0 * n
        metrics[f"eval/path_prm_calls_per_question@N={n}"] = 1.0 * n
        for rule, base in RULE_BASE.items():
            metrics[f"eval/{rule}_acc@N={n}"] = base + 0.1 * math.log2(n)
    return metrics


def fake_evaluation(monkeypatch, tmp_path, mcts, policy_eval=None, methods=ALL_EVAL,
                    sc_max_n=128):
    """evaluate_iteration with run_search and prm_validation replaced: MCTS* spends 230 policy
    tokens per question, CoT 40, the sampling pass its fake curve (:func:`fake_curve`); every
    other method 200. Returns (row, searches run, runner)."""
    from rest_mcts.loop import evaluate
    from rest_mcts.runtime.search_run import SearchRun

    calls = []

    def run_search(ctx, out_dir, search, run, *, policy_path, prm_path):
        calls.append((Path(out_dir).name, search, prm_path))
        tokens = {"cot": 40.0, "mcts_star": 230.0}.get(search.name, 200.0)
        metrics = {"eval/acc": 0.5, "eval/policy_tokens_per_question": tokens,
                   "eval/prompt_tokens_per_question": 20.0, "eval/prm_calls_per_question": 9.0,
                   "eval/num_questions": float(run.num_problems)}
        if search.name == "sampled":
            metrics.update(fake_curve(search.n))
        return metrics

    monkeypatch.setattr(evaluate, "run_search", run_search)
    monkeypatch.setattr(evaluate, "prm_validation", lambda ctx, prm, f: {"val/mse": 0.1})

    def evaluate_policy_at(ctx, policy, *, num_problems, samples, temperature, split,
                           step_temperature):
        calls.append(("eval_policy", (policy, num_problems, samples, temperature, split), None))
        return {"eval/greedy_acc": 0.25, f"eval/pass@{samples}": 0.75,
                "eval/legal_step_rate": 0.9}

    monkeypatch.setattr(evaluate, "evaluate_policy_at", evaluate_policy_at)
    runner = StepRunner(tmp_path)
    row = evaluate.evaluate_iteration(
        None, runner, 0, policy="pol", prm="prm", mcts=mcts, eval_run=SearchRun("test", 4),
        prm_eval_file="f", sc_max_n=sc_max_n, extra={"data/x": 1}, methods=methods,
        policy_eval=policy_eval)
    return row, calls, runner


def test_the_sampled_rules_share_one_pass_read_at_mcts_tokens(monkeypatch, tmp_path):
    import dataclasses

    from rest_mcts.search.configs import search_config

    mcts = search_config("mcts_star")
    row, calls, runner = fake_evaluation(monkeypatch, tmp_path, mcts)
    assert [step for step, _, _ in calls] == [f"eval_{m}" for m in (
        "cot", "mcts_star", "sampled", "bfs", "mcts_star_lean", "mcts_star_widen")]
    configs = {step: search for step, search, _ in calls}
    # one pass of n_max = ceil(2 * 230 / 40) = 12 samples for every rule
    assert configs["eval_sampled"] == search_config("sampled", n=12, temperature=0.7)
    assert configs["eval_bfs"].beam_width == 2 == row["bfs/beam_width"]  # ceil(ceil(230/40) / 3)
    assert configs["eval_mcts_star"] is mcts
    assert configs["eval_mcts_star_lean"] == dataclasses.replace(
        mcts, rollout_steps=0, unvisited_bonus=0.0)
    assert configs["eval_mcts_star_widen"] == search_config("mcts_star_widen")
    prm_of = {step: prm for step, _, prm in calls}
    assert prm_of["eval_cot"] is None
    assert {prm_of[f"eval_{m}"] for m in ("sampled", "bfs", "mcts_star", "mcts_star_lean",
                                          "mcts_star_widen")} == {"prm"}
    # every rule at MCTS*'s 230 tokens: between N = 4 (160) and N = 8 (320) in log tokens;
    # the fake curve is linear in log N and tokens are 40 N, so exactly base + 0.1 log2(5.75)
    assert row["sampled/n_max"] == 12 and row["sampled/bracketed"] == 1.0
    assert row["sampled/target_tokens"] == 230.0
    assert row["sampled/n_at_tokens"] == pytest.approx(5.75)
    t = math.log(230 / 160) / math.log(2)
    for prefix, rule in (("sc", "sc"), ("best_of_n", "best_of_n"),
                         ("best_of_n_prod", "best_of_n_prod"),
                         ("weighted_vote", "weighted_vote"), ("pass@n", "pass")):
        assert row[f"{prefix}/acc"] == pytest.approx(RULE_BASE[rule] + 0.1 * math.log2(5.75))
        assert row[f"{prefix}/tokens"] == 230.0 and row[f"{prefix}/prompt_tokens"] == 20.0
    assert row["best_of_n/prm_calls"] == pytest.approx(4 + 4 * t)
    assert row["weighted_vote/prm_calls"] == pytest.approx(4 + 4 * t)
    assert row["best_of_n_prod/prm_calls"] == pytest.approx(8 + 8 * t)
    assert "sc/prm_calls" not in row and "pass@n/prm_calls" not in row
    for prefix in ("cot", "bfs", "mcts", "mcts_lean", "mcts_widen"):
        assert row[f"{prefix}/acc"] == 0.5 and row[f"{prefix}/prompt_tokens"] == 20.0
    assert row["mcts/tokens"] == 230.0 and row["cot/tokens"] == 40.0
    assert "sc/n" not in row and "cot/prm_calls" not in row and row["mcts/prm_calls"] == 9.0
    assert row["prm/val_mse"] == 0.1 and row["data/x"] == 1
    assert runner.done("iter_0/eval_sampled") and runner.done("iter_0/eval_prm")
    again, calls_again, _ = fake_evaluation(monkeypatch, tmp_path, mcts)  # resumed: no search
    assert calls_again == [] and again == row

    from rest_mcts.loop.report import markdown, COLUMNS
    table = markdown([row])
    assert "| 0 | 12 | 5.8 | 2 | 0.500 (40) | 0.352 (230) | 0.452 (230) |" in table
    assert "| 0 | BoN (PRM prod) | 0.502 | 230 | 20 | 12.2 |" in table
    assert "| 0 | pass@N | 0.552 | 230 | 20 | - |" in table
    assert "| 0 | MCTS* lean | 0.500 | 230 | 20 | 9.0 |" in table
    keys = [key for key, _, _ in COLUMNS]
    assert {"pass@n/acc", "best_of_n_prod/prm_calls", "mcts_lean/prompt_tokens",
            "sampled/n_max", "sampled/bracketed"} <= set(keys)


def test_mcts_tokens_beyond_the_sampled_curve_are_flagged(monkeypatch, tmp_path):
    """stage.sc_max_n = 4 caps the pass below MCTS*'s 230 tokens (4 samples: 160): the rules
    are not bracketed, the row says so and keeps N = 4's accuracy at its 160 tokens."""
    from rest_mcts.loop.report import markdown
    from rest_mcts.search.configs import search_config

    row, calls, _ = fake_evaluation(monkeypatch, tmp_path, search_config("mcts_star"),
                                    methods=("cot", "mcts_star", "best_of_n"), sc_max_n=4)
    assert [step for step, _, _ in calls] == ["eval_cot", "eval_mcts_star", "eval_sampled"]
    assert row["sampled/n_max"] == 4 and row["sampled/bracketed"] == 0.0
    assert row["sampled/n_at_tokens"] == 4
    assert row["best_of_n/acc"] == pytest.approx(0.4) and row["best_of_n/tokens"] == 160.0
    assert row["sc/acc"] == pytest.approx(0.3)  # every rule comes from the one pass
    assert "0.400 (160 †)" in markdown([row])


def test_a_trimmed_evaluation_and_reused_mcts_variants(monkeypatch, tmp_path):
    from rest_mcts.search.configs import search_config

    row, calls, _ = fake_evaluation(monkeypatch, tmp_path / "a", search_config("mcts_star"),
                                    methods=("cot", "mcts_star"))
    assert [step for step, _, _ in calls] == ["eval_cot", "eval_mcts_star"]
    assert "sampled/n_max" not in row and "sc/acc" not in row and "best_of_n/acc" not in row
    assert row["eval/num_questions"] == 4.0  # what accuracy.png's intervals stand on
    # the configured search already widens: mcts_star_widen is the same search, run once
    widen = search_config("mcts_star_widen")
    row, calls, _ = fake_evaluation(monkeypatch, tmp_path / "b", widen,
                                    methods=("cot", "mcts_star", "mcts_star_widen"))
    assert [step for step, _, _ in calls] == ["eval_cot", "eval_mcts_star"]
    assert row["mcts_widen/acc"] == row["mcts/acc"]
    # ... and one without rollout or unvisited bonus is already lean
    lean = search_config("mcts_star", rollout_steps=0, unvisited_bonus=0.0)
    row, calls, _ = fake_evaluation(monkeypatch, tmp_path / "c", lean,
                                    methods=("cot", "mcts_star", "mcts_star_lean"))
    assert [step for step, _, _ in calls] == ["eval_cot", "eval_mcts_star"]
    assert row["mcts_lean/acc"] == row["mcts/acc"] and row["mcts_lean/prm_calls"] == 9.0


def test_one_pass_feeds_every_rule_through_the_real_search_path(compose_cfg, tmp_path,
                                                                 monkeypatch):
    """The loop's evaluation on the scripted policy (backend=mock) and the exact oracle: the
    sampled rules cost ONE policy call holding each question's prompt once (n = n_max),
    and every rule's row keys are read from that pass's curve at MCTS*'s tokens."""
    from rest_mcts.backends.mock import MockPolicyBackend
    from rest_mcts.loop import evaluate
    from rest_mcts.runtime.context import Context
    from rest_mcts.runtime.search_run import SearchRun
    from rest_mcts.search.configs import search_config
    from rest_mcts.search.selection import at_tokens, read_sample_curve

    generated = []
    original = MockPolicyBackend.generate

    def generate(self, prompts, params, seeds=None):
        generated.append((list(prompts), params))
        return original(self, prompts, params, seeds=seeds)

    monkeypatch.setattr(MockPolicyBackend, "generate", generate)
    monkeypatch.setattr(evaluate, "prm_validation", lambda ctx, prm, f: {"val/mse": 0.1})
    ctx = Context.from_config(compose_cfg("backend=mock", "prm=oracle", "~logger"))
    runner = StepRunner(tmp_path / "loop")
    methods = ("cot", "mcts_star", "self_consistency", "best_of_n", "best_of_n_prod",
               "weighted_vote", "pass_at_n")
    row = evaluate.evaluate_iteration(
        ctx, runner, 0, policy="mock", prm="oracle", mcts=search_config("mcts_star", iterations=5),
        eval_run=SearchRun("test", 8, concurrency=8, prefix="eval"), prm_eval_file="f",
        sc_max_n=64, extra={}, methods=methods)
    n_max = row["sampled/n_max"]
    assert n_max > 1
    whole = [(prompts, params) for prompts, params in generated if params.n == n_max]
    (prompts, params), = whole  # one call: the eight questions, each once
    assert len(prompts) == len(set(prompts)) == 8 and params.stop == ()
    metrics = runner.run("iter_0/eval_sampled", lambda d: pytest.fail("ran again"),
                         produced_by="")
    points = read_sample_curve(metrics, "eval")
    assert [p.n for p in points][-1] == n_max
    assert points[-1].tokens == metrics["eval/policy_tokens_per_question"]
    assert points[-1].prm_calls == metrics["eval/prm_calls_per_question"]
    target = row["mcts/tokens"]
    for prefix, rule in (("sc", "sc"), ("best_of_n", "best_of_n"),
                         ("best_of_n_prod", "best_of_n_prod"),
                         ("weighted_vote", "weighted_vote"), ("pass@n", "pass")):
        at = at_tokens([p.tokens for p in points], [p.acc[rule] for p in points], target)
        assert row[f"{prefix}/acc"] == at.value and row[f"{prefix}/tokens"] == at.tokens
        assert row[f"{prefix}/prompt_tokens"] == metrics["eval/prompt_tokens_per_question"]
        assert 0 <= row[f"{prefix}/acc"] <= row["pass@n/acc"] + 1e-9  # pass@N: the ceiling
    assert row["cot/prompt_tokens"] > 0 and row["mcts/prm_calls"] > 0


def test_the_policy_alone_is_evaluated_on_its_own_question_set(monkeypatch, tmp_path):
    from rest_mcts.config import ConfigError
    from rest_mcts.loop.evaluate import PolicyEval
    from rest_mcts.search.configs import search_config

    pe = PolicyEval(num_problems=500, samples=4, temperature=0.8)
    row, calls, runner = fake_evaluation(monkeypatch, tmp_path, search_config("mcts_star"),
                                         policy_eval=pe, methods=("cot", "mcts_star"))
    assert calls[0] == ("eval_policy", ("pol", 500, 4, 0.8, "test"), None)
    assert row["policy/greedy_acc"] == 0.25 and row["policy/pass@k"] == 0.75
    assert row["policy/legal_step_rate"] == 0.9 and runner.done("iter_0/eval_policy")
    assert PolicyEval() == PolicyEval(500, 8, 1.0)  # the loop's default: pass@8 on 500
    with pytest.raises(ConfigError, match="stage.policy_eval.samples"):
        PolicyEval(samples=0)


def test_only_the_training_search_runs_all_iterations():
    """The training MCTS* gets early_stop=train_early_stop (the authors' data generation runs
    all T iterations); the evaluation config keeps the stop rule."""
    from rest_mcts.loop.algorithm import training_search
    from rest_mcts.search.configs import search_config

    evaluation = search_config("mcts_star")
    assert evaluation.early_stop is True
    trained = training_search(evaluation, False)
    assert trained.early_stop is False and evaluation.early_stop is True
    assert trained == search_config("mcts_star", early_stop=False)


def test_extract_keeps_only_trees_with_a_correct_leaf_and_only_correct_traces(tmp_path):
    hand_built_tree().save(tmp_path / "trees" / "p24.json")
    other = Problem(Question("p9", format_question([2, 3, 4], 9)), gold="9")
    hopeless = Tree(other.id, other.question.text)  # no correct leaf: 2*3=6, 6*4=24 != 9
    step = hopeless.add_child(hopeless.root, RIGHT_1)
    hopeless.add_child(step, RIGHT_2, terminal=True, answer="24")
    verify_tree(hopeless, other, WORLD)
    hopeless.save(tmp_path / "trees" / "p9.json")
    duplicate = hand_built_tree()  # a second correct leaf with the same steps: one trace
    node = duplicate.add_child(duplicate.nodes[1], RIGHT_2, terminal=True, answer="24")
    node.correct = True
    duplicate.question_id = "p24b"
    duplicate.save(tmp_path / "trees" / "p24b.json")

    counts = extract_data(tmp_path / "trees", tmp_path / "out")
    d_v = read_jsonl(tmp_path / "out" / "d_v.jsonl")
    d_g = read_jsonl(tmp_path / "out" / "d_g.jsonl")
    assert {r["question_id"] for r in d_v} == {"p24", "p24b"}  # nothing from the hopeless tree
    assert [(r["question_id"], r["steps"]) for r in d_g] == [
        ("p24", [RIGHT_1, RIGHT_2]), ("p24b", [RIGHT_1, RIGHT_2]),
    ]
    for row in d_g:
        assert WORLD.is_correct(PROBLEM, row["steps"])
    assert counts["extract/trees"] == 3
    assert counts["extract/trees_with_correct_leaf"] == 2
    assert counts["extract/d_g_traces"] == 2
    # filtering by PRM value: the correct leaf has no score and search value 0 -> dropped
    counts = extract_data(tmp_path / "trees", tmp_path / "filtered", min_value=0.5)
    assert counts["extract/d_g_traces"] == 0


class ScriptedWeakPolicy:
    """A 'weaker model' that always proposes the same next step (or the reference one)."""

    def __init__(self, step_for):
        self.step_for = step_for
        self.prompts: list[str] = []

    def generate(self, prompts, params):
        self.prompts += list(prompts)
        return [GenerationOutput((Completion(self.step_for(p), 5, "stop"),), 3) for p in prompts]


def test_reference_solutions_give_positives_and_weak_steps_give_negatives():
    reference = (RIGHT_1, RIGHT_2)
    problem = Problem(PROBLEM.question, gold="24", reference_steps=reference)

    def weak(prompt: str) -> str:  # after the question: a wrong step; after step 1: the right one
        return WRONG_1 if prompt.count("\n") == 1 else RIGHT_2

    policy = ScriptedWeakPolicy(weak)
    rows = reference_rows([problem], WORLD, policy, temperature=1.5, max_step_tokens=48, seed=0)
    by_steps = {tuple(r["steps"]): (r["target"], r["source"]) for r in rows}
    assert by_steps == {
        (RIGHT_1,): (pytest.approx(0.5), "reference"),
        (RIGHT_1, RIGHT_2): (pytest.approx(1.0), "reference"),
        # a weak step after the empty prefix: r = 1, m = 2 -> max(0 - 1/3, 0) = 0
        (WRONG_1,): (0.0, "weak"),
    }  # the weak model's second proposal equals the reference step: not a negative
    assert len(policy.prompts) == 2


def test_reference_negative_after_a_positive_prefix_drops_the_value():
    # 4-number problem with 3 steps: after one right step v = 1/3; a weak step keeps m = 2
    world = CountdownWorld(num_numbers=4)
    q = format_question([1, 2, 3, 4], 24)
    steps = (format_step(1, 1, "+", 2, 3, [3, 3, 4]), format_step(2, 3, "*", 3, 9, [9, 4]),
             format_step(3, 9, "+", 4, 13, [13]))
    problem = Problem(Question("p", q), gold="13", reference_steps=steps)
    weak_step = format_step(2, 3, "-", 3, 0, [0, 4])
    rows = reference_rows([problem], world, ScriptedWeakPolicy(lambda p: weak_step),
                          temperature=1.0, max_step_tokens=48, seed=0)
    targets = {tuple(r["steps"]): r["target"] for r in rows}
    assert targets[steps[:1]] == pytest.approx(1 / 3)
    assert targets[steps[:2]] == pytest.approx(2 / 3)
    # v = max(1/3 - (1 - 1/3) / (2 + 1), 0) = 1/3 - 2/9 = 1/9
    assert targets[(steps[0], weak_step)] == pytest.approx(1 / 9)


def test_step_runner_runs_each_step_once_and_writes_manifests(tmp_path):
    calls = []

    def work(folder: Path):
        calls.append(folder)
        (folder / "out.txt").write_text("x")
        return {"file": str(folder / "out.txt")}

    first = StepRunner(tmp_path)
    out = first.run("iter_1/search", work, produced_by="test", inputs={"policy": "p0"})
    manifest = json.loads((tmp_path / "iter_1" / "search" / "manifest.json").read_text())
    assert manifest["produced_by"] == "test" and manifest["inputs"] == {"policy": "p0"}
    assert manifest["outputs"] == out
    again = StepRunner(tmp_path)
    assert again.run("iter_1/search", work, produced_by="test") == out
    assert len(calls) == 1 and again.skipped == ["iter_1/search"]

    def crash(folder: Path):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        again.run("iter_1/extract", crash, produced_by="test")
    assert not again.done("iter_1/extract")  # no manifest: runs again next time


# ---------------------------------------------------------------------------- run.py
def loop_command(tmp_path: Path, policy: Path, loop_dir: Path, *extra: str) -> list[str]:
    """``run.py stage=loop`` at test size: one iteration, 4 questions, the untrained policy."""
    return [
        sys.executable, str(ROOT / "run.py"), "stage=loop", "logger=null",
        f"hydra.run.dir={tmp_path / 'hydra'}", f"model.path={policy}", f"stage.dir={loop_dir}",
        "stage.iterations=1", "stage.train_problems=4", "stage.eval_problems=4",
        "stage.prm_eval_problems=3", "stage.init_prm.num_problems=6", "stage.init_prm.max_depth=2",
        "search.iterations=2", "search.max_step_tokens=24", "data.max_solution_tokens=48",
        "prm.epochs=1", "stage.sft.epochs=1", "trainer.enable_progress_bar=false",
        # the untrained test policy never finds an answer: D_V0 from reference solutions
        "stage.init_prm.method=reference",
        # evaluation stays cheap: at most 3 samples in the sampling pass, BFS beam 1
        "stage.sc_max_n=3", "stage.policy_eval.num_problems=4", "stage.policy_eval.samples=2",
        *extra,
    ]


def loop_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}


def run_loop(tmp_path: Path, policy: Path, loop_dir: Path, *extra: str):
    proc = subprocess.run(loop_command(tmp_path, policy, loop_dir, *extra), env=loop_env(tmp_path),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_one_iteration_loop_runs_and_resumes_without_searching_again(tmp_path, tiny_policy):
    loop_dir = tmp_path / "loop"
    out = run_loop(tmp_path, tiny_policy, loop_dir)
    assert "| iter |" in out and "plot:" in out
    for name in ("results.md", "results.csv", "accuracy.png"):
        assert (loop_dir / name).is_file()
    csv_lines = (loop_dir / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 3  # header + iterations 0 and 1
    header = csv_lines[0].split(",")
    first = dict(zip(header, csv_lines[1].split(",")))
    for method in ("cot", "sc", "best_of_n", "best_of_n_prod", "weighted_vote", "pass@n", "bfs",
                   "mcts", "mcts_lean", "mcts_widen"):
        assert first[f"{method}/acc"] != "" and first[f"{method}/tokens"] != ""
        assert first[f"{method}/prompt_tokens"] != ""
    for key in ("policy/greedy_acc", "policy/pass@k", "policy/legal_step_rate"):
        assert 0 <= float(first[key]) <= 1
    assert 1 <= int(first["sampled/n_max"]) <= 3 and first["bfs/beam_width"] == "1"
    steps = ["iter_0/policy", "iter_0/d_v0", "prm_eval_set", "iter_0/prm", "iter_0/eval_cot",
             "iter_0/eval_mcts_star", "iter_0/eval_sampled", "iter_0/eval_bfs",
             "iter_0/eval_mcts_star_lean", "iter_0/eval_mcts_star_widen",
             "iter_0/eval_prm", "iter_0/eval_policy",
             "iter_1/search", "iter_1/extract", "iter_1/prm", "iter_1/policy", "iter_1/eval_cot"]
    for step in steps:
        manifest = json.loads((loop_dir / step / "manifest.json").read_text())
        assert manifest["step"] == step and manifest["produced_by"]
    assert (loop_dir / "iter_0" / "prm" / "model" / "model.safetensors").is_file()
    assert len(list((loop_dir / "iter_1" / "search" / "trees").glob("*.json"))) == 4

    # a kill right after the search: later steps never finished
    results = loop_dir / "iter_1" / "search" / "results.jsonl"
    before = (results.read_text(), results.stat().st_mtime_ns)
    for later in ("extract", "prm", "policy", "eval_policy", "eval_cot", "eval_mcts_star",
                  "eval_sampled", "eval_bfs", "eval_mcts_star_lean", "eval_mcts_star_widen",
                  "eval_prm"):
        shutil.rmtree(loop_dir / "iter_1" / later)
    (loop_dir / "results.csv").unlink()
    out = run_loop(tmp_path, tiny_policy, loop_dir)
    assert "step iter_1/search: finished earlier, skipped" in out
    # the progress line: "step i of n", n the loop's every step (each leaves a manifest)
    progress = re.search(r"step (\d+) of (\d+): iter_1/extract: running", out)
    assert progress, out[-3000:]
    steps = [json.loads(p.read_text()).get("step") for p in loop_dir.rglob("manifest.json")]
    steps = [step for step in steps if step]
    assert int(progress.group(2)) == len(steps)
    later = {"iter_1/extract", "iter_1/prm", "iter_1/policy"}
    before_it = [step for step in steps if step not in later and not step.startswith("iter_1/eval")]
    assert int(progress.group(1)) == len(before_it) + 1
    assert (results.read_text(), results.stat().st_mtime_ns) == before
    assert (loop_dir / "iter_1" / "extract" / "manifest.json").is_file()
    assert len((loop_dir / "results.csv").read_text().splitlines()) == 3


def test_a_loop_folder_refuses_another_config(tmp_path, compose_cfg):
    from rest_mcts.config import ConfigError
    from rest_mcts.stages.loop import claim_dir

    cfg = compose_cfg("stage=loop")
    claim_dir(cfg, tmp_path)
    claim_dir(cfg, tmp_path)  # same config: fine (resume)
    other = compose_cfg("stage=loop", "search.alpha=0.3")
    with pytest.raises(ConfigError, match="another config"):
        claim_dir(other, tmp_path)
    # which methods are evaluated is not part of it: a folder resumes with another list; nor is
    # the number of iterations (iteration k never depends on K) or the policy's own evaluation
    claim_dir(compose_cfg("stage=loop", "stage.eval_methods=[cot,mcts_star]"), tmp_path)
    claim_dir(compose_cfg("stage=loop", "stage.iterations=5", "stage.policy_eval=null"), tmp_path)
    with pytest.raises(ConfigError, match="another config"):
        claim_dir(compose_cfg("stage=loop", "stage.sft.epochs=9"), tmp_path)


def test_d_v0_bfs_trees_are_sampled_without_a_scorer(compose_cfg, tiny_policy, tmp_path,
                                                      monkeypatch, caplog):
    """D_V0's BFS keeps every node and takes its targets from verified leaves: it builds no
    value scorer (no untrained head is loaded, no UNTRAINED warning)."""
    from rest_mcts.runtime.context import Context
    from rest_mcts.loop.d_v0 import InitPRMSettings, sample_bfs_trees

    ctx = Context.from_config(compose_cfg("stage=init_prm"))
    monkeypatch.setattr(Context, "build_scorer",
                        lambda *a, **k: pytest.fail("D_V0 BFS built a value scorer"))
    init = InitPRMSettings(num_problems=2, branch=2, max_depth=2, max_step_tokens=16,
                           concurrency=2)
    trees = sample_bfs_trees(ctx, init, tmp_path / "bfs", "train", 2, tiny_policy)
    assert len(list(trees.glob("*.json"))) == 2
    assert "UNTRAINED" not in caplog.text


def test_a_typo_in_a_nested_loop_setting_is_one_line(compose_cfg):
    """stage.policy_eval, stage.init_prm and executor are read strictly: a key that is no
    setting (a typo) stops the run with one line naming it, instead of being ignored."""
    from rest_mcts.config import ConfigError
    from rest_mcts.stages.loop import loop

    with pytest.raises(ConfigError, match=r"^stage\.policy_eval\.sample is not a setting of "
                       r"stage\.policy_eval \(known: num_problems, samples, temperature\)$"):
        loop(compose_cfg("stage=loop", "+stage.policy_eval.sample=4"))
    with pytest.raises(ConfigError, match=r"^stage\.init_prm\.num_problem is not a setting"):
        loop(compose_cfg("stage=loop", "+stage.init_prm.num_problem=4"))


def test_a_typo_in_the_executor_is_one_line():
    from rest_mcts.config import ConfigError
    from rest_mcts.runtime.executors import executor_from

    with pytest.raises(ConfigError, match=r"^executor\.num_actor is not a setting of executor"):
        executor_from({"name": "ray", "num_actor": 4})


@pytest.mark.slow
def test_experiment_debug_runs_the_whole_loop(tmp_path):
    """``python run.py experiment=debug``: the smoke run the README offers ends with the loop's
    table (a bootstrap, D_V0, PRM_0, one iteration and every evaluation, on a fresh root)."""
    cmd = [sys.executable, str(ROOT / "run.py"), "experiment=debug",
           f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(cmd, env=loop_env(tmp_path), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (loop_dir,) = (tmp_path / "outputs" / "loop_runs").iterdir()
    assert loop_dir.name.startswith("countdown3-s0-")
    assert len((loop_dir / "results.csv").read_text().splitlines()) == 3  # iterations 0, 1
    assert (loop_dir / "iter_0" / "policy" / "manifest.json").is_file()  # bootstrapped here
    out = proc.stdout + proc.stderr  # said before the training, with its size and time
    notice = out.index("no cached iteration-0 policy for this seed and config: training it "
                       "first (2,000 traces, 63 optimizer steps, under a minute")
    assert notice < out.index("bootstrap traces:")

"""MCTS*'s final answer on an unfinished node (search.finish): `complete` lets the policy
finish the path in one greedy Generate request, `as_is` answers it unfinished."""

from __future__ import annotations

import hashlib

import pytest

from rest_mcts.backends.mock import MockPolicyBackend
from rest_mcts.prompts import policy_prompt
from rest_mcts.search.configs import MCTSStarConfig
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.mcts_star import mcts_star
from rest_mcts.search.requests import Generate
from rest_mcts.search.tree import Tree

from tests.helpers.search_fakes import drive, table_policy
from tests.search.test_mcts_star import GOOD1, GOOD2, WORLD, Q, value_table

EXTRA3 = "Step 3: 29 + 1 = 30 (left: 30)\n"  # nothing can follow a finished path


def run(policy, scorer, log=None, **knobs):
    return drive(mcts_star(Q, WORLD, MCTSStarConfig(**knobs)), policy, scorer, log)


# ---------------------------------------------------------------- scripted policy
def test_a_stop_at_an_unfinished_leaf_ends_with_its_greedy_completion():
    # GOOD1 (0.95 >= l) stops the search unexpanded; the policy then writes the rest.
    policy = table_policy({0: [GOOD1], 1: [GOOD2 + EXTRA3]})
    scorer = value_table({(GOOD1,): 0.95})
    log = []
    res = run(policy, scorer, log, rollout_steps=0)
    assert res.info["stopped_at_end_gate"] and res.info["completed"]
    assert res.steps == (GOOD1, GOOD2)  # cut after the finished step: EXTRA3 is illegal
    assert res.finished and res.answer == "29" and res.value == pytest.approx(0.95)
    completion = log[-1]
    assert isinstance(completion, Generate)
    assert completion.prompts == (policy_prompt(Q.text, (GOOD1,)),)
    params = completion.params
    assert (params.n, params.temperature, params.stop) == (1, 0.0, ())  # greedy, whole rest
    assert params.max_new_tokens == 48 * (8 - 1)  # max_step_tokens per step left to max_depth
    assert res.info["completion_tokens"] == len(GOOD2 + EXTRA3)  # the fake: 1 char, 1 token
    tree = Tree.from_dict(res.tree)
    assert [n.step for n in tree.nodes[1:]] == [GOOD1]  # the completion is not a node


def test_as_is_keeps_the_unfinished_answer():
    policy = table_policy({0: [GOOD1], 1: [GOOD2]})
    scorer = value_table({(GOOD1,): 0.95})
    log = []
    res = run(policy, scorer, log, rollout_steps=0, finish="as_is")
    assert res.steps == (GOOD1,) and not res.finished and res.answer is None
    assert not res.info["completed"] and res.info["completion_tokens"] == 0
    assert sum(isinstance(r, Generate) for r in log) == 1  # the root's expansion only
    assert res.tree == run(policy, scorer, rollout_steps=0).tree


def test_without_a_finished_node_the_best_node_is_completed():
    # T = 1: the root is expanded, GOOD1 is the best-valued node and is not finished.
    policy = table_policy({0: [GOOD1], 1: [GOOD2]})
    res = run(policy, value_table({(GOOD1,): 0.5}), iterations=1, rollout_steps=0)
    assert not res.info["stopped_at_end_gate"] and res.info["completed"]
    assert res.steps == (GOOD1, GOOD2) and res.finished and res.answer == "29"


def test_a_completion_that_goes_wrong_stays_unfinished():
    policy = table_policy({0: [GOOD1], 1: ["Step 2: 24 + 5 = 30 (left: 30)\n"]})
    res = run(policy, value_table({(GOOD1,): 0.95}), rollout_steps=0)
    assert res.info["completed"] and res.info["completion_tokens"] > 0
    assert res.steps == (GOOD1,) and not res.finished and res.answer is None


def test_a_finished_answer_is_not_completed():
    policy = table_policy({0: [GOOD1], 1: [GOOD2]})
    scorer = value_table({(GOOD1,): 0.5, (GOOD1, GOOD2): 0.95})
    log, log_as_is = [], []
    res = run(policy, scorer, log, rollout_steps=0)
    as_is = run(policy, scorer, log_as_is, rollout_steps=0, finish="as_is")
    assert res.steps == (GOOD1, GOOD2) and res.finished and not res.info["completed"]
    assert log == log_as_is and res.info == as_is.info and res.tree == as_is.tree


# ---------------------------------------------------------------- through the engine
PROBLEMS = WORLD.generate(8, seed=5, split="test")


class FirstStepScorer:
    """A first step scores 0.95 >= l (a search stops at an unfinished leaf when it selects
    one); any other path a deterministic value in [0, 1)."""

    def score(self, items):
        return [0.95 if len(steps) == 1 else
                hashlib.sha256(repr((question, steps)).encode()).digest()[0] / 256
                for question, steps in items]


def engine_run(**knobs):
    engine = SearchEngine(MockPolicyBackend(seed=0), FirstStepScorer(), concurrency=4, seed=3,
                          progress=False)
    config = MCTSStarConfig(iterations=3, t_checkpoints=(1, 2), **knobs)
    return engine.run_all([(p.id, mcts_star(p.question, WORLD, config)) for p in PROBLEMS])


def check_curve(res, old):
    """The T curve against finish=as_is: checkpoints taken during the search as they stand;
    those taken at its end (T, or every later t after a stop) hold its answer, completed,
    with the completion's tokens."""
    final = (list(res.steps), res.answer, res.finished, res.costs.policy_tokens)
    for point, before in zip(res.info["t_curve"], old.info["t_curve"], strict=True):
        if point != before:
            assert before["policy_tokens"] == old.costs.policy_tokens
            assert (point["steps"], point["answer"], point["finished"],
                    point["policy_tokens"]) == final
    assert res.info["t_curve"][-1]["policy_tokens"] == res.costs.policy_tokens


@pytest.mark.parametrize("early_stop", [True, False])
def test_completion_tokens_are_policy_tokens_and_the_trees_are_the_same(early_stop):
    """Same seed, finish=complete against finish=as_is: the same trees (also for the loop's
    training search, early_stop=false), and an unfinished answer completed at the cost of
    its completion's tokens, counted by the engine and the T curve."""
    complete = engine_run(early_stop=early_stop)
    as_is = engine_run(early_stop=early_stop, finish="as_is")
    completed = [q for q, r in complete.items() if r.info["completed"]]
    assert any(complete[q].finished and complete[q].answer is not None for q in completed)
    assert any(not complete[q].finished for q in completed)  # the mock's wrong arithmetic
    stops = [q for q in completed if complete[q].info["stopped_at_end_gate"]]
    assert bool(stops) == early_stop  # the paper's stop at an unfinished leaf
    for qid, res in complete.items():
        old = as_is[qid]
        assert res.tree == old.tree
        assert res.info["completed"] == (not old.finished)
        spent = res.costs.policy_tokens - old.costs.policy_tokens
        assert spent == res.info["completion_tokens"] and (spent > 0) == res.info["completed"]
        check_curve(res, old)
        if not res.info["completed"]:
            assert (res.steps, res.answer, res.finished) == (old.steps, old.answer, old.finished)
        else:
            assert res.steps[:len(old.steps)] == old.steps and res.value == old.value

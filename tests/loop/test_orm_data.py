"""The outcome reward model's rows (`rest_mcts.loop.orm_data`): every verified finished leaf,
target 1 for a correct final answer and 0 otherwise; `prm=orm`'s checks before any work."""

from __future__ import annotations

import random

import pytest

from rest_mcts.config import ConfigError
from rest_mcts.loop.data import d_v_rows
from rest_mcts.loop.orm_data import orm_rows
from rest_mcts.search.tree import Tree

from tests.helpers.orm_trees import WORLD, sampled_tree
from tests.loop.test_loop import (LATE_WRONG, PROBLEM, RIGHT_1, RIGHT_2, WRONG_1, WRONG_2,
                                  hand_built_tree)


def test_orm_targets_of_a_hand_built_tree_are_final_correctness():
    """Whole solutions only (no partial paths), 1 for the right answer, 0 for both wrong
    finishes, whatever the quality value of their prefix."""
    rows = orm_rows([hand_built_tree()])
    assert {tuple(r["steps"]): r["target"] for r in rows} == {
        (RIGHT_1, RIGHT_2): 1.0,
        (RIGHT_1, LATE_WRONG): 0.0,
        (WRONG_1, WRONG_2): 0.0,
    }
    assert {r["question_id"] for r in rows} == {PROBLEM.id}
    assert all(r["question"] == PROBLEM.question.text for r in rows)


def test_orm_rows_of_sampled_trees_match_the_verifier_and_keep_trees_without_a_correct_leaf():
    rng = random.Random(3)
    problems = WORLD.generate(6, seed=3, split="train")
    trees = [sampled_tree(p, rng) for p in problems]
    rows = orm_rows(trees)
    by_id = {p.id: p for p in problems}
    assert len(rows) == sum(len(t.finished()) for t in trees)
    for row in rows:
        assert row["target"] == float(WORLD.is_correct(by_id[row["question_id"]], row["steps"]))
    assert {r["target"] for r in rows} == {0.0, 1.0}

    # a tree whose only finish is wrong: no D_V row (m_k unknown), but an ORM row with 0
    wrong = Tree(PROBLEM.id, PROBLEM.question.text)
    node = wrong.add_child(wrong.root, WRONG_1)
    node = wrong.add_child(node, WRONG_2, terminal=True, answer="9")
    node.correct = False
    assert d_v_rows([wrong]) == []
    assert orm_rows([wrong]) == [{"question": PROBLEM.question.text,
                                  "steps": [WRONG_1, WRONG_2], "target": 0.0,
                                  "question_id": PROBLEM.id}]


def test_an_unverified_tree_is_refused_in_one_line():
    tree = Tree(PROBLEM.id, PROBLEM.question.text)
    tree.add_child(tree.root, RIGHT_1)
    tree.add_child(tree.nodes[1], RIGHT_2, terminal=True, answer="24")  # correct: None
    with pytest.raises(ConfigError, match="not verified .*stage.label_trees=true"):
        orm_rows([tree])


def test_prm_orm_is_refused_by_the_loop_by_searches_of_partial_paths_and_without_a_path(
        compose_cfg):
    from rest_mcts.stages import check_config

    with pytest.raises(ConfigError, match="outcome reward model: stage=loop"):
        check_config(compose_cfg("prm=orm"))
    with pytest.raises(ConfigError, match="search=mcts_star asks for values of partial ones"):
        check_config(compose_cfg("prm=orm", "stage=eval", "search=mcts_star"))
    for search in ("best_of_n", "weighted_vote", "self_consistency", "cot"):
        spec = check_config(compose_cfg("prm=orm", "stage=eval", f"search={search}"))
    spec = check_config(compose_cfg("prm=orm", "stage=eval", "search=best_of_n"))
    with pytest.raises(ConfigError, match="stage=train_prm stage.target=orm"):
        spec.ctx.require_trained_prm(spec.search)
    spec = check_config(compose_cfg("stage=train_prm", "stage.target=prm"))
    assert not spec.ctx.prm_outcome


def test_train_prm_refuses_an_unknown_target_before_any_work(compose_cfg, tmp_path):
    from rest_mcts.stages.train_prm import train_prm

    cfg = compose_cfg("stage=train_prm", "stage.target=outcome",
                      f"stage.trees_dir={tmp_path}")
    with pytest.raises(ConfigError, match=r"stage.target=outcome is not one of \['prm', 'orm'\]"):
        train_prm(cfg)

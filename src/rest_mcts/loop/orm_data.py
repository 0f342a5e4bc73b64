"""The outcome reward model's data (ORM, the paper's Table 3 verifier baseline) from verified
search trees.

An ORM scores a whole solution, not a partial one: its rows are the finished leaves of the
same verified trees that D_V is taken from (:mod:`rest_mcts.loop.data`: a loop's
``iter_k/search/trees``, or D_V0's BFS trees), each with target 1 when the verifier labelled
its final answer correct and 0 otherwise. Unlike D_V, a tree without a correct leaf gives
rows too (all 0): an outcome label needs no reasoning distance m_k. Each row is a D_V-style
row ``{question, steps, target, question_id}``, so the PRM's regression
(:func:`rest_mcts.loop.train.train_prm_model`) trains the ORM unchanged.
"""

from __future__ import annotations

from typing import Iterable

from rest_mcts.config import ConfigError
from rest_mcts.search.tree import Tree


def orm_rows(trees: Iterable[Tree]) -> list[dict]:
    """ORM rows ``{question, steps, target, question_id}``: every finished leaf (legal and
    terminal) of every tree, target 1.0 for a correct final answer, else 0.0.

    Raises:
        ConfigError: a finished leaf carries no verifier label (the tree was not verified:
            a search without ``stage.label_trees``), naming the question.
    """
    rows = []
    for tree in trees:
        for leaf in tree.finished():
            if leaf.correct is None:
                raise ConfigError(
                    f"tree of question {tree.question_id}: finished node {leaf.id} is not "
                    "verified (search with stage.label_trees=true: the ORM needs the verdicts)")
            rows.append({"question": tree.question_text, "steps": list(tree.steps(leaf)),
                         "target": 1.0 if leaf.correct else 0.0,
                         "question_id": tree.question_id})
    return rows

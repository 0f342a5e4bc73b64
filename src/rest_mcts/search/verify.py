"""The training-time verifier: label the finished paths of a search tree against the gold.

This is the ONLY place where search output meets the gold answer. It runs on training
trees, after the search, to build the value targets (D_V) and the policy's self-training
data; a test-time search never calls it (it only ever sees a
:class:`~rest_mcts.worlds.base.Question`, which has no gold answer).
"""

from __future__ import annotations

import logging
from typing import Any

from rest_mcts.search.tree import Tree
from rest_mcts.worlds.base import Problem

logger = logging.getLogger(__name__)


def verify_tree(tree: Tree, problem: Problem, world: Any) -> int:
    """Label every finished legal node with ``node.correct`` from the gold answer.

    This is the only place search output meets the gold answer (training-time labelling).
    Nodes that are not finished or not legal are left untouched.

    Args:
        tree: the search tree for ``problem``.
        problem: the problem, gold answer included.
        world: the world whose ``is_correct(problem, steps)`` verifier decides.

    Returns:
        The number of nodes labelled correct.

    Raises:
        ValueError: if the tree belongs to another question (its ``question_id`` differs).
    """
    if tree.question_id != problem.id:
        raise ValueError(
            f"tree is for question {tree.question_id!r}, problem is {problem.id!r}"
        )
    correct = 0
    for node in tree.finished():
        node.correct = bool(world.is_correct(problem, tree.steps(node)))
        correct += node.correct
    logger.debug("verified tree %s: %d of %d finished paths correct",
                 tree.question_id, correct, len(tree.finished()))
    return correct

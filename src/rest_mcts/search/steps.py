"""Policy text judged step by step by the world's parser: growing a search tree by one
expansion (MCTS*, BFS), and judging a whole generated solution (the sampling baselines, and
MCTS*'s completion of an unfinished answer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from rest_mcts.backends.base import Completion
from rest_mcts.prompts import first_line, split_steps
from rest_mcts.search.tree import Node, Tree
from rest_mcts.worlds.base import Question, World


def expand_node(
    tree: Tree,
    parent: Node,
    completions: Sequence[Completion],
    world: World,
    question: Question,
    self_critic: bool = True,
) -> list[Node]:
    """Add one child per distinct proposed step (legal or not) under ``parent``.

    Steps the parent already has (an earlier expansion) are not added again; their tokens
    are added to the existing child. Illegal steps become exhausted children of value 0.
    With ``self_critic``, a finished path is marked ``critic="end"`` and exhausted (nothing
    can follow it); without, the search only learns so by expanding it in vain.

    Args:
        tree: the tree to grow.
        parent: the node expanded.
        completions: the proposed next steps.
        world: the step parser.
        question: the question.
        self_critic: whether finished paths are recognised as ended.

    Returns:
        The new children, in proposal order.
    """
    parent.expanded = True
    prefix = tree.steps(parent)
    known_steps = {c.step.strip(): c for c in tree.children(parent)}
    by_step: dict[str, Node] = {}
    for completion in completions:
        step = first_line(completion.text)
        known = by_step.get(step.strip()) or known_steps.get(step.strip())
        if known is not None:
            known.tokens += completion.num_tokens
            known.info["samples"] = known.info.get("samples", 1) + 1
            continue
        check = world.check_step(question, prefix, step)
        child = tree.add_child(
            parent,
            step,
            legal=check.legal,
            terminal=check.legal and check.finished,
            answer=check.answer if check.legal else None,
            tokens=completion.num_tokens,
            info={"samples": 1},
        )
        if not check.legal:
            child.value = 0.0
            child.exhausted = True
            child.info["error"] = check.error
        elif child.terminal and self_critic:
            child.critic = "end"
            child.exhausted = True
        by_step[step.strip()] = child
    return list(by_step.values())

"""The paper's quality values v_k of partial solutions, and the value-model data set D_V.

ReST-MCTS* (Zhang et al., NeurIPS 2024, arXiv 2406.03816), Section 3.1, scores a partial
solution p_k = [s_1..s_k] by its *quality value* v_k, built step by step from v_0 = 0 with
the *weighted reward* w_k:

    w_k = (1 - v_{k-1}) / (m_k + 1) * (1 - 2 r_k),        v_k = max(v_{k-1} + w_k, 0),

where m_k (the *reasoning distance*) is the fewest further steps from p_k to a correct answer
and r_k (the *hard estimate*) is 0 when p_k can still reach the correct answer and 1 when it
cannot. A wrong step keeps its parent's distance; a correct final step (m = 0, r = 0) gets
exactly v = 1.

The formulas live in :func:`weighted_reward` and :func:`quality_value`; everything else here
only decides which (m_k, r_k) to feed them:

* :func:`path_values` folds them along one path given (m_k, r_k);
* :func:`oracle_path_values` takes (m_k, r_k) from a world's exact oracle (``distance``);
* :func:`reasoning_distances`, :func:`hard_estimates` and :func:`tree_values` take them from a
  *verified* search tree (finished legal nodes labelled ``correct`` by
  :func:`rest_mcts.search.verify.verify_tree`), as the paper does when it builds D_V;
* :func:`extract_samples` turns a verified tree into value-model training samples (D_V).
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

from rest_mcts.search.tree import Node, Tree
from rest_mcts.worlds.base import Question

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------
# The formulas
# ----------------------------------------------------------------------------------------


def _check_inputs(v_prev: float, m: int, r: int) -> None:
    """Raise ValueError unless v_prev in [0, 1], m an int >= 0 and r in {0, 1}."""
    if isinstance(v_prev, bool) or not isinstance(v_prev, numbers.Real) or not 0 <= v_prev <= 1:
        raise ValueError(f"v_prev must be a number in [0, 1], got {v_prev!r}")
    if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 0:
        raise ValueError(f"reasoning distance m must be an int >= 0, got {m!r}")
    if isinstance(r, bool) or not isinstance(r, numbers.Integral) or r not in (0, 1):
        raise ValueError(f"hard estimate r must be 0 or 1, got {r!r}")


def weighted_reward(v_prev: float, m: int, r: int) -> float:
    """The weighted reward w_k of step k (paper, Section 3.1, "weighted reward").

    w_k = (1 - v_{k-1}) / (m_k + 1) * (1 - 2 r_k)

    Args:
        v_prev: v_{k-1}, the quality value of the parent partial solution, in [0, 1].
        m: m_k, the reasoning distance of p_k (fewest further steps to a correct answer).
        r: r_k, the hard estimate of p_k (0: the correct answer is still reachable, 1: not).

    Returns:
        w_k, in [-(1 - v_prev), 1 - v_prev].

    Raises:
        ValueError: if an input is out of range.
    """
    _check_inputs(v_prev, m, r)
    return (1.0 - v_prev) / (m + 1) * (1 - 2 * r)


def quality_value(v_prev: float, m: int, r: int) -> float:
    """The quality value v_k of p_k (paper, Section 3.1, "quality value").

    v_k = max(v_{k-1} + w_k, 0), with w_k from :func:`weighted_reward`. A correct final step
    (m = 0, r = 0) gives exactly 1.0 (in floating point too: fl(v + fl(1 - v)) = 1).

    Args:
        v_prev: v_{k-1}, in [0, 1] (v_0 = 0 for the empty partial solution).
        m: m_k, the reasoning distance of p_k (>= 0).
        r: r_k, the hard estimate of p_k (0 or 1).

    Returns:
        v_k, in [0, 1].

    Raises:
        ValueError: if an input is out of range.
    """
    return max(0.0, v_prev + weighted_reward(v_prev, m, r))


# ----------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------


def path_values(distances: Sequence[int], hard_estimates: Sequence[int]) -> list[float]:
    """Quality values v_1..v_n of the prefixes of one path, folded from v_0 = 0.

    Args:
        distances: m_1..m_n (element k is the reasoning distance after step k + 1).
        hard_estimates: r_1..r_n, aligned with ``distances``.

    Returns:
        [v_1, ..., v_n] (empty for an empty path).

    Raises:
        ValueError: if the sequences differ in length or an element is out of range.
    """
    if len(distances) != len(hard_estimates):
        raise ValueError(
            f"distances and hard_estimates differ in length ({len(distances)} vs "
            f"{len(hard_estimates)})"
        )
    values: list[float] = []
    v = 0.0
    for m, r in zip(distances, hard_estimates):
        v = quality_value(v, m, r)
        values.append(v)
    return values


def oracle_path_values(
    world: Any, question: Question | str, steps: Sequence[str]
) -> list[float]:
    """Exact quality values of every non-empty prefix of ``steps`` from a world's oracle.

    m_k = ``world.distance(question, steps[:k])`` when that is not None (r_k = 0); when it is
    None (unreachable, or an illegal step) r_k = 1 and m_k is the distance of the last
    reachable prefix (a wrong step keeps its parent's distance). If the question itself is
    unsolvable (m_0 is None) every value is 0.

    Args:
        world: a world with an exact ``distance(question, steps) -> int | None`` oracle.
        question: the question (or its text, where the world accepts text).
        steps: the path s_1..s_n.

    Returns:
        [v_1, ..., v_n] (empty for an empty path).
    """
    steps = list(steps)
    last = world.distance(question, [])
    if last is None:
        return [0.0] * len(steps)
    distances, estimates = [], []
    for k in range(1, len(steps) + 1):
        d = world.distance(question, steps[:k])
        if d is None:
            distances.append(last)
            estimates.append(1)
        else:
            last = d
            distances.append(d)
            estimates.append(0)
    return path_values(distances, estimates)


# ----------------------------------------------------------------------------------------
# Verified trees
# ----------------------------------------------------------------------------------------


def is_correct_finish(node: Node) -> bool:
    """Is ``node`` a finished legal step that the verifier labelled correct?"""
    return node.correct is True and node.legal and node.terminal


def _top_down(tree: Tree) -> list[int]:
    """Node ids reachable from the root, every parent before its children (BFS order)."""
    order = [tree.root.id]
    for node_id in order:
        order.extend(tree.nodes[node_id].children)
    return order


def _subtree_distances(tree: Tree, order: Sequence[int]) -> list[int | None]:
    """Per node: steps to its nearest correct finish below it (itself included), else None."""
    below: list[int | None] = [None] * len(tree.nodes)
    for node_id in reversed(order):
        node = tree.nodes[node_id]
        if is_correct_finish(node):
            below[node_id] = 0
            continue
        reach = [below[c] for c in node.children if below[c] is not None]
        if reach:
            below[node_id] = 1 + min(reach)  # type: ignore[type-var]  # no None in reach
    return below


def reasoning_distances(tree: Tree) -> list[int | None]:
    """Reasoning distance m_k of every node of a verified tree (indexed by node id).

    A correct finish has m = 0; a node with a correct descendant takes 1 + the smallest m of
    its children that have one; a node without takes the distance of its nearest ancestor
    that has one (a wrong step keeps its parent's distance). All None when the tree has no
    correct finish (then nothing is known about distances).

    Args:
        tree: a tree whose finished legal nodes carry ``correct`` (see ``verify_tree``).

    Returns:
        m per node id (None for every node without a correct finish in the tree, and for
        nodes not reachable from the root).
    """
    order = _top_down(tree)
    below = _subtree_distances(tree, order)
    if below[tree.root.id] is None:
        return [None] * len(tree.nodes)
    distances: list[int | None] = [None] * len(tree.nodes)
    for node_id in order:
        node = tree.nodes[node_id]
        own = below[node_id]
        if own is None and node.parent is not None:
            own = distances[node.parent]
        distances[node_id] = own
    return distances


def hard_estimates(tree: Tree) -> list[int]:
    """Hard estimate r_k of every node of a verified tree (indexed by node id).

    r = 0 when the node has a verified-correct finish below it (itself included), else 1.

    Args:
        tree: a verified tree.

    Returns:
        r per node id.
    """
    below = _subtree_distances(tree, _top_down(tree))
    return [0 if d is not None else 1 for d in below]


def tree_values(tree: Tree) -> list[float]:
    """Quality value v_k of every node of a verified tree (indexed by node id).

    Computed top-down with :func:`quality_value` from each node's parent value; the root
    (p_0) has v_0 = 0. All 0 when the tree has no correct finish.

    Args:
        tree: a verified tree.

    Returns:
        v per node id, in [0, 1].
    """
    distances = reasoning_distances(tree)
    estimates = hard_estimates(tree)
    values = [0.0] * len(tree.nodes)
    for node_id in _top_down(tree)[1:]:
        m = distances[node_id]
        if m is None:
            continue
        parent = tree.nodes[node_id].parent
        assert parent is not None  # only the root has no parent
        values[node_id] = quality_value(values[parent], m, estimates[node_id])
    return values


# ----------------------------------------------------------------------------------------
# D_V: value-model training samples
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueSample:
    """One value-model training sample: a partial solution and its target quality value.

    Attributes:
        question: the question text.
        steps: the partial solution p_k.
        target: v_k (0 for an illegal step).
        question_id: the tree's question id.
        node_id: the node the sample comes from.
        m: the node's reasoning distance (None when the tree has no correct finish).
        r: the node's hard estimate.
    """

    question: str
    steps: tuple[str, ...]
    target: float
    question_id: str
    node_id: int
    m: int | None
    r: int


def _legal_paths(tree: Tree, order: Sequence[int]) -> list[bool]:
    """Per node: is every step from the root down to it legal?"""
    legal = [False] * len(tree.nodes)
    for node_id in order:
        node = tree.nodes[node_id]
        legal[node_id] = node.legal and (node.parent is None or legal[node.parent])
    return legal


def extract_samples(
    tree: Tree, require_correct_leaf: bool = True, include_illegal: bool = False
) -> list[ValueSample]:
    """The value-model training set D_V of one verified tree: one sample per non-root node.

    Targets are the tree's quality values (:func:`tree_values`). Nodes whose path contains an
    illegal step are left out, or kept with target 0 when ``include_illegal``.

    Args:
        tree: a verified tree (see ``verify_tree``).
        require_correct_leaf: when the tree has no correct finish, return [] (True) or samples
            with target 0 (False).
        include_illegal: keep nodes whose path contains an illegal step (target 0).

    Returns:
        Samples in node-id order.
    """
    order = _top_down(tree)
    distances = reasoning_distances(tree)
    if distances[tree.root.id] is None and require_correct_leaf:
        return []
    estimates = hard_estimates(tree)
    values = tree_values(tree)
    legal = _legal_paths(tree, order)
    samples = []
    for node_id in sorted(order[1:]):
        if not legal[node_id] and not include_illegal:
            continue
        samples.append(ValueSample(
            question=tree.question_text,
            steps=tree.steps(tree.nodes[node_id]),
            target=values[node_id] if legal[node_id] else 0.0,
            question_id=tree.question_id,
            node_id=node_id,
            m=distances[node_id],
            r=estimates[node_id],
        ))
    logger.debug("tree %s: %d value samples", tree.question_id, len(samples))
    return samples

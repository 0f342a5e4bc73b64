"""Quality values (paper, Section 3.1), D_V extraction, the verifier and the oracle scorer."""

from __future__ import annotations

import math
import random
from typing import Sequence

import pytest

from rest_mcts.search.oracle_scorer import OracleScorer
from rest_mcts.search.tree import Node, Tree
from rest_mcts.search.value import (
    ValueSample,
    extract_samples,
    hard_estimates,
    oracle_path_values,
    path_values,
    quality_value,
    reasoning_distances,
    tree_values,
    weighted_reward,
)
from rest_mcts.search.verify import verify_tree
from rest_mcts.worlds.base import Problem, Question
from rest_mcts.worlds.countdown import CountdownWorld

WORLD = CountdownWorld()
# "Make 29 from 6 4 5": fewest steps 2 (6 * 4 = 24, 24 + 5 = 29); no single step makes 29.
Q29 = "Make 29 from 6 4 5"
STEP_6X4 = "Step 1: 6 * 4 = 24 (left: 24 5)\n"
STEP_24P5 = "Step 2: 24 + 5 = 29 (left: 29)\n"
DEAD_6M5 = "Step 1: 6 - 5 = 1 (left: 1 4)\n"  # 29 is unreachable from 1 4
WRONG_4P1 = "Step 2: 4 + 1 = 5 (left: 5)\n"  # finishes on 5


# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------


def leaf(tree: Tree, parent: Node, step: str, correct: bool) -> Node:
    """A finished legal step labelled by hand."""
    return tree.add_child(parent, step, terminal=True, legal=True, correct=correct)


def chain(tree: Tree, parent: Node, names: Sequence[str]) -> list[Node]:
    """Unfinished legal steps, each under the previous one."""
    out = []
    for name in names:
        parent = tree.add_child(parent, name)
        out.append(parent)
    return out


def add_path(tree: Tree, world: CountdownWorld, steps: Sequence[str]) -> Node:
    """Insert a path (sharing existing nodes), marking legality and finish from the world."""
    node = tree.root
    for k, step in enumerate(steps):
        match = [c for c in tree.children(node) if c.step == step]
        if match:
            node = match[0]
            continue
        check = world.check_step(tree.question_text, list(steps[:k]), step)
        node = tree.add_child(node, step, legal=check.legal, terminal=not check.legal or
                              check.finished, answer=check.answer)
    return node


def full_tree(world: CountdownWorld, problem: Problem) -> Tree:
    """Every legal canonical path of a Countdown problem as one tree."""
    tree = Tree(problem.id, problem.question.text)
    stack = [tree.root]
    while stack:
        node = stack.pop()
        steps = tree.steps(node)
        state = world.state(problem.question, steps)
        for a, op, b, result in world.legal_moves(state):
            left = (result,) + _without(state, a, b)
            line = world.format_step(node.depth + 1, a, op, b, result, left)
            check = world.check_step(problem.question, steps, line)
            assert check.legal
            child = tree.add_child(node, line, terminal=check.finished, answer=check.answer)
            if not check.finished:
                stack.append(child)
    return tree


def _without(state: Sequence[int], a: int, b: int) -> tuple[int, ...]:
    rest = list(state)
    rest.remove(a)
    rest.remove(b)
    return tuple(rest)


# ----------------------------------------------------------------------------------------
# The formulas
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("v_prev", "m", "r", "w"),
    [
        (0.0, 3, 0, 0.25),
        (0.0, 3, 1, -0.25),
        (0.0, 2, 0, 1 / 3),
        (0.5, 1, 0, 0.25),
        (0.5, 1, 1, -0.25),
        (0.75, 0, 0, 0.25),
        (0.75, 0, 1, -0.25),
        (1.0, 0, 1, 0.0),
        (0.2, 4, 0, 0.16),
    ],
)
def test_weighted_reward(v_prev: float, m: int, r: int, w: float) -> None:
    assert weighted_reward(v_prev, m, r) == pytest.approx(w)


@pytest.mark.parametrize(
    ("v_prev", "m", "r", "v"),
    [
        (0.0, 3, 0, 0.25),
        (0.0, 3, 1, 0.0),  # clamped at 0
        (0.0, 2, 0, 1 / 3),
        (1 / 3, 1, 0, 2 / 3),
        (0.5, 1, 1, 0.25),
        (0.5, 2, 1, 1 / 3),
        (0.1, 0, 1, 0.0),  # -0.8 clamped
        (0.2, 4, 0, 0.36),
    ],
)
def test_quality_value(v_prev: float, m: int, r: int, v: float) -> None:
    assert quality_value(v_prev, m, r) == pytest.approx(v)


@pytest.mark.parametrize("v_prev", [0.0, 0.1, 1 / 3, 0.3, 0.5, 0.75, 0.999, 1.0])
def test_correct_final_step_is_exactly_one(v_prev: float) -> None:
    assert quality_value(v_prev, 0, 0) == 1.0


@pytest.mark.parametrize(
    ("v_prev", "m", "r"),
    [(-0.1, 1, 0), (1.5, 1, 0), (math.nan, 1, 0), (0.5, -1, 0), (0.5, 1.5, 0), (0.5, 1, 2),
     (0.5, 1, -1), (0.5, True, 0), (0.5, 1, True), ("0.5", 1, 0)],
)
def test_formulas_reject_bad_inputs(v_prev: float, m: int, r: int) -> None:
    with pytest.raises(ValueError):
        weighted_reward(v_prev, m, r)
    with pytest.raises(ValueError):
        quality_value(v_prev, m, r)


def test_path_values_four_step_chain() -> None:
    assert path_values([3, 2, 1, 0], [0, 0, 0, 0]) == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert path_values([3, 2, 1, 0], [0, 0, 0, 0])[-1] == 1.0


def test_path_values_with_wrong_steps() -> None:
    # m_0 = 2: a detour keeping distance 2 (1/3), a wrong step (1/3 - 2/9 = 1/9), another
    # wrong step (1/9 - (8/9)/3 < 0 -> 0).
    assert path_values([2, 2, 2], [0, 1, 1]) == pytest.approx([1 / 3, 1 / 9, 0.0])
    assert path_values([], []) == []
    with pytest.raises(ValueError):
        path_values([1, 0], [0])


# ----------------------------------------------------------------------------------------
# Verified trees
# ----------------------------------------------------------------------------------------


def test_figure2_example() -> None:
    tree = Tree("fig2", "question")
    good1, good2 = chain(tree, tree.root, ["good 1", "good 2"])
    final = leaf(tree, good2, "good 3", correct=True)
    wrong1 = tree.add_child(tree.root, "wrong 1")
    assert reasoning_distances(tree) == [3, 2, 1, 0, 3]
    assert hard_estimates(tree) == [0, 0, 0, 0, 1]
    values = tree_values(tree)
    assert values[tree.root.id] == 0.0
    assert values[good1.id] == pytest.approx(1 / 3)
    assert values[good2.id] == pytest.approx(2 / 3)
    assert values[wrong1.id] == 0.0
    assert values[final.id] == 1.0


def test_four_step_chain_tree() -> None:
    tree = Tree("chain", "question")
    nodes = chain(tree, tree.root, ["s1", "s2", "s3"])
    nodes.append(leaf(tree, nodes[-1], "s4", correct=True))
    values = tree_values(tree)
    assert [values[n.id] for n in nodes] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[nodes[-1].id] == 1.0
    assert reasoning_distances(tree) == [4, 3, 2, 1, 0]


def test_wrong_branches_keep_the_nearest_good_ancestors_distance() -> None:
    tree = Tree("branches", "question")
    n1, n2, n3 = chain(tree, tree.root, ["s1", "s2", "s3"])
    n4 = leaf(tree, n3, "s4", correct=True)
    # A wrong branch under a correct one, continuing one level deeper.
    w = tree.add_child(n2, "w")
    ww = leaf(tree, w, "ww", correct=False)  # nearest good ancestor (n2) is two levels up
    # A wrong sub-branch deep down.
    deep = leaf(tree, n3, "deep wrong", correct=False)
    # A wrong first step with its own subtree.
    x = tree.add_child(tree.root, "x")
    xx = leaf(tree, x, "xx", correct=False)
    m = reasoning_distances(tree)
    r = hard_estimates(tree)
    v = tree_values(tree)
    assert [m[n.id] for n in (n1, n2, n3, n4)] == [3, 2, 1, 0]
    assert m[w.id] == m[ww.id] == 2
    assert m[deep.id] == 1
    assert m[x.id] == m[xx.id] == 4
    assert [r[n.id] for n in (tree.root, n1, n2, n3, n4)] == [0, 0, 0, 0, 0]
    assert [r[n.id] for n in (w, ww, deep, x, xx)] == [1, 1, 1, 1, 1]
    assert v[n2.id] == pytest.approx(0.5)
    assert v[w.id] == pytest.approx(0.5 - 0.5 / 3)  # 1/3
    assert v[ww.id] == pytest.approx(1 / 3 - (2 / 3) / 3)  # 1/9
    assert v[deep.id] == pytest.approx(0.75 - 0.25 / 2)  # 0.625
    assert v[x.id] == 0.0 and v[xx.id] == 0.0
    assert v[n4.id] == 1.0


def test_two_correct_leaves_ancestors_take_the_min() -> None:
    tree = Tree("two", "question")
    x = tree.add_child(tree.root, "x")
    short = leaf(tree, x, "x1", correct=True)
    x2, x21 = chain(tree, x, ["x2", "x21"])
    long = leaf(tree, x21, "x211", correct=True)
    m = reasoning_distances(tree)
    assert m[tree.root.id] == 2
    assert m[x.id] == 1
    assert m[short.id] == 0 and m[long.id] == 0
    assert m[x2.id] == 2 and m[x21.id] == 1
    v = tree_values(tree)
    assert v[x.id] == pytest.approx(0.5)
    assert v[short.id] == 1.0
    assert v[x2.id] == pytest.approx(2 / 3)
    assert v[x21.id] == pytest.approx(5 / 6)
    assert v[long.id] == 1.0


def test_tree_without_correct_leaf() -> None:
    tree = Tree("none", "question")
    a = tree.add_child(tree.root, "a")
    leaf(tree, a, "a1", correct=False)
    leaf(tree, tree.root, "b", correct=False)
    tree.add_child(a, "unfinished")
    assert reasoning_distances(tree) == [None] * 5
    assert hard_estimates(tree) == [1] * 5
    assert tree_values(tree) == [0.0] * 5


def test_unlabelled_or_unfinished_nodes_are_not_correct_finishes() -> None:
    tree = Tree("labels", "question")
    tree.add_child(tree.root, "not terminal", correct=True)
    tree.add_child(tree.root, "illegal", terminal=True, legal=False, correct=True)
    tree.add_child(tree.root, "unverified", terminal=True)
    assert reasoning_distances(tree) == [None] * 4


# ----------------------------------------------------------------------------------------
# D_V
# ----------------------------------------------------------------------------------------


def _figure2_with_illegal() -> Tree:
    tree = Tree("fig2", "Make it")
    good1, good2 = chain(tree, tree.root, ["good 1", "good 2"])
    leaf(tree, good2, "good 3", correct=True)
    tree.add_child(tree.root, "wrong 1")
    bad = tree.add_child(good1, "illegal", legal=False, terminal=True)
    tree.add_child(bad, "below illegal")
    return tree


def test_extract_samples() -> None:
    tree = _figure2_with_illegal()
    samples = extract_samples(tree)
    assert [s.node_id for s in samples] == [1, 2, 3, 4]
    assert [s.target for s in samples] == pytest.approx([1 / 3, 2 / 3, 1.0, 0.0])
    assert samples[0] == ValueSample(
        question="Make it", steps=("good 1",), target=pytest.approx(1 / 3),
        question_id="fig2", node_id=1, m=2, r=0,
    )
    assert samples[2].steps == ("good 1", "good 2", "good 3")
    assert (samples[3].m, samples[3].r) == (3, 1)
    assert all(0.0 <= s.target <= 1.0 for s in samples)


def test_extract_samples_with_illegal_steps() -> None:
    tree = _figure2_with_illegal()
    samples = extract_samples(tree, include_illegal=True)
    assert [s.node_id for s in samples] == [1, 2, 3, 4, 5, 6]
    by_id = {s.node_id: s for s in samples}
    assert by_id[5].target == 0.0 and by_id[6].target == 0.0
    assert by_id[5].r == 1 and by_id[5].m == 2


def test_extract_samples_without_correct_leaf() -> None:
    tree = Tree("none", "question")
    a = tree.add_child(tree.root, "a")
    leaf(tree, a, "a1", correct=False)
    assert extract_samples(tree) == []
    samples = extract_samples(tree, require_correct_leaf=False)
    assert [(s.node_id, s.target, s.m, s.r) for s in samples] == [(1, 0.0, None, 1),
                                                                  (2, 0.0, None, 1)]


# ----------------------------------------------------------------------------------------
# The verifier on a real Countdown problem
# ----------------------------------------------------------------------------------------


def test_verify_tree_on_countdown() -> None:
    problem = WORLD.make_problem((6, 4, 5), 29, "cd-29")
    correct = WORLD.solve((6, 4, 5), 29)
    assert correct is not None and len(correct) == 2
    tree = Tree(problem.id, problem.question.text)
    good = add_path(tree, WORLD, correct)
    bad = add_path(tree, WORLD, [DEAD_6M5, WRONG_4P1])
    illegal = add_path(tree, WORLD, [correct[0], "Step 2: 24 + 5 = 30 (left: 30)\n"])
    assert good.terminal and bad.terminal and not illegal.legal
    assert tree.root.correct is None
    assert verify_tree(tree, problem, WORLD) == 1
    assert good.correct is True
    assert bad.correct is False
    assert illegal.correct is None
    assert all(n.correct is None for n in tree.nodes if not n.terminal)
    values = tree_values(tree)
    first = tree.path(good)[0]
    assert values[first.id] == pytest.approx(0.5)
    assert values[good.id] == 1.0
    assert values[tree.path(bad)[0].id] == 0.0 and values[bad.id] == 0.0
    assert len(extract_samples(tree)) == 4  # the illegal step is left out


def test_verify_tree_rejects_another_problem() -> None:
    problem = WORLD.make_problem((6, 4, 5), 29, "cd-29")
    with pytest.raises(ValueError):
        verify_tree(Tree("other", problem.question.text), problem, WORLD)


@pytest.mark.parametrize(("numbers", "target"), [((6, 4, 5), 29), ((6, 4, 5, 1), 23),
                                                  ((2, 3, 7, 9), 80)])
def test_full_tree_values_equal_oracle_values(numbers: tuple[int, ...], target: int) -> None:
    problem = WORLD.make_problem(numbers, target, "full")
    tree = full_tree(WORLD, problem)
    assert verify_tree(tree, problem, WORLD) >= 1
    values = tree_values(tree)
    distances = reasoning_distances(tree)
    for node in tree.nodes[1:]:
        steps = tree.steps(node)
        expected = oracle_path_values(WORLD, problem.question, steps)[-1]
        assert values[node.id] == pytest.approx(expected, abs=1e-12)
        oracle_m = WORLD.distance(problem.question, steps)
        if oracle_m is not None:
            assert distances[node.id] == oracle_m


# ----------------------------------------------------------------------------------------
# Oracle values
# ----------------------------------------------------------------------------------------


def test_oracle_path_values_match_hand_computed_distances() -> None:
    question = Question("q", "Make 29 from 6 4 5 1")
    detour = "Step 1: 6 * 1 = 6 (left: 6 4 5)\n"  # still 2 steps to go
    step2 = "Step 2: 6 * 4 = 24 (left: 24 5)\n"
    step3 = "Step 3: 24 + 5 = 29 (left: 29)\n"
    assert WORLD.distance(question, []) == 2
    assert oracle_path_values(WORLD, question, [detour, step2, step3]) == pytest.approx(
        path_values([2, 1, 0], [0, 0, 0])
    )
    assert oracle_path_values(WORLD, question, [detour, step2, step3]) == pytest.approx(
        [1 / 3, 2 / 3, 1.0]
    )
    # An illegal step is unreachable: it keeps the last reachable distance (2).
    garbage = "Step 2: nonsense\n"
    assert oracle_path_values(WORLD, question, [detour, garbage]) == pytest.approx(
        path_values([2, 2], [0, 1])
    )
    assert oracle_path_values(WORLD, question, [detour, garbage])[-1] == pytest.approx(1 / 9)
    assert oracle_path_values(WORLD, question, []) == []


def test_oracle_path_values_dead_end_and_text_question() -> None:
    assert oracle_path_values(WORLD, Q29, [DEAD_6M5, WRONG_4P1]) == pytest.approx(
        path_values([2, 2], [1, 1])
    )
    assert oracle_path_values(WORLD, Q29, [DEAD_6M5, WRONG_4P1]) == [0.0, 0.0]
    assert oracle_path_values(WORLD, Q29, [STEP_6X4, STEP_24P5]) == pytest.approx([0.5, 1.0])


def test_oracle_path_values_unsolvable_question_is_all_zero() -> None:
    question = "Make 97 from 1 2"
    assert WORLD.distance(question, []) is None
    assert oracle_path_values(WORLD, question, ["Step 1: 2 + 1 = 3 (left: 3)\n"]) == [0.0]


def test_oracle_scorer() -> None:
    scorer = OracleScorer(WORLD)
    values = scorer.score([
        (Q29, [STEP_6X4, STEP_24P5]),
        (Q29, [DEAD_6M5]),
        (Q29, [STEP_6X4]),
        (Q29, []),
        (Q29, (DEAD_6M5, WRONG_4P1)),
    ])
    assert values[0] == 1.0
    assert values[1] == 0.0
    assert values[2] == pytest.approx(0.5)
    assert values[3] == 0.0
    assert values[4] == 0.0
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values)
    assert scorer.stats["calls"] == 1 and scorer.stats["items"] == 5
    assert scorer.stats["seconds"] >= 0.0
    assert scorer.score([]) == []


def test_oracle_scorer_needs_an_oracle() -> None:
    with pytest.raises(TypeError, match="distance"):
        OracleScorer(object())


def test_oracle_values_of_random_paths() -> None:
    rng = random.Random(0)
    for world in (CountdownWorld(), CountdownWorld(num_numbers=4, max_target=200, min_steps=2)):
        problems = world.generate(25, seed=1, split="train")
        correct_seen = wrong_seen = 0
        for problem in problems:
            traces = [world.random_trace(problem.question, rng) for _ in range(6)]
            traces.append(world.correct_trace(problem, rng))
            for trace in traces:
                values = oracle_path_values(world, problem.question, trace)
                assert len(values) == len(trace)
                assert all(0.0 <= v <= 1.0 for v in values)
                assert all(v < 1.0 for v in values[:-1])
                correct = world.is_correct(problem, trace)
                assert (values[-1] == 1.0) == correct
                correct_seen += correct
                wrong_seen += not correct
        assert correct_seen >= 25 and wrong_seen > 0


# ----------------------------------------------------------------------------------------
# Tree JSON round trip
# ----------------------------------------------------------------------------------------


def _rich_tree() -> Tree:
    tree = _figure2_with_illegal()
    tree.nodes[1].visits = 3
    tree.nodes[1].value = 0.4
    tree.nodes[1].prm_score = 0.25
    tree.nodes[2].critic = "end"
    tree.nodes[3].answer = "29"
    tree.nodes[3].tokens = 17
    tree.nodes[1].info = {"rollout_best": 0.5, "tags": ["a", "b"]}
    tree.nodes[2].expanded = True
    tree.nodes[4].exhausted = True
    return tree


def test_tree_dict_round_trip() -> None:
    tree = _rich_tree()
    back = Tree.from_dict(tree.to_dict())
    assert back.question_id == tree.question_id and back.question_text == tree.question_text
    assert len(back.nodes) == len(tree.nodes)
    for a, b in zip(tree.nodes, back.nodes):
        assert a == b
    assert tree_values(back) == tree_values(tree)


def test_tree_save_load_round_trip(tmp_path) -> None:
    tree = _rich_tree()
    path = tmp_path / "trees" / "tree.json"
    tree.save(path)
    back = Tree.load(path)
    assert back.question_id == tree.question_id and back.question_text == tree.question_text
    assert len(back.nodes) == len(tree.nodes)
    for a, b in zip(tree.nodes, back.nodes):
        assert a == b
    assert extract_samples(back) == extract_samples(tree)


def test_prm_oracle_config_builds_the_scorer(compose_cfg) -> None:
    from hydra.utils import instantiate

    cfg = compose_cfg("prm=oracle", "data=countdown")
    scorer = instantiate(cfg.prm.scorer)
    assert isinstance(scorer, OracleScorer)
    assert scorer.world.num_numbers == 4
    assert scorer.score([(Q29, [STEP_6X4])]) == pytest.approx([0.5])

"""MCTS* phases on hand-built trees with a scripted fake policy and scorer."""

from __future__ import annotations

import math

import pytest

from rest_mcts.search.configs import MCTSStarConfig
from rest_mcts.search.mcts_star import (
    backpropagate,
    choose_answer,
    mcts_star,
    rollout_update,
    select,
    uct,
    visit_weighted_value,
)
from rest_mcts.search.requests import Generate, Score
from rest_mcts.search.tree import Tree
from rest_mcts.worlds import CountdownWorld, Question

from tests.helpers.search_fakes import drive, steps_of, table_policy

WORLD = CountdownWorld()
Q = WORLD.make_question((6, 4, 5), 29, "q29")
GOOD1 = "Step 1: 6 * 4 = 24 (left: 24 5)\n"
GOOD2 = "Step 2: 24 + 5 = 29 (left: 29)\n"
BAD1 = "Step 1: 6 + 4 = 10 (left: 10 5)\n"
BAD2 = "Step 2: 10 + 5 = 15 (left: 15)\n"
ILLEGAL1 = "Step 1: 6 * 4 = 25 (left: 25 5)\n"


def value_table(table):
    """Scorer from a dict: tuple of steps -> value (default 0.1)."""
    return lambda q, steps: table.get(tuple(steps), 0.1)


def hand_tree(values_visits):
    tree = Tree("t", "Make 29 from 6 4 5")
    tree.root.expanded = True
    tree.root.visits = sum(v for _, v in values_visits)
    for i, (value, visits) in enumerate(values_visits):
        tree.add_child(tree.root, f"s{i}\n", value=value, visits=visits)
    return tree


def test_world_steps_used_here_are_what_we_think():
    assert WORLD.check_step(Q, [], GOOD1).legal
    assert WORLD.check_step(Q, [GOOD1], GOOD2).finished
    assert WORLD.check_step(Q, [BAD1], BAD2).finished
    assert not WORLD.check_step(Q, [], ILLEGAL1).legal
    assert WORLD.distance(Q, []) == 2 and WORLD.distance(Q, [BAD1]) is None


# ---------------------------------------------------------------- formulas and phases
def test_uct_formulas_and_unvisited_children():
    tree = hand_tree([(0.5, 4), (0.2, 1), (0.9, 0)])
    a, b, c = tree.children(tree.root)
    # the authors' getBestChild: factor 2, a finite bonus for an unvisited child
    assert uct(a, 5, 0.4) == pytest.approx(0.5 + 0.4 * math.sqrt(2 * math.log(5) / 4))
    assert uct(c, 5, 0.4) == pytest.approx(0.9 + 0.8)
    assert uct(c, 5, 0.4, "authors", unvisited_bonus=1.0) == pytest.approx(1.9)
    # Eq. 33 as printed: no factor 2, an unvisited child first
    assert uct(a, 5, 0.4, "plain") == pytest.approx(0.5 + 0.4 * math.sqrt(math.log(5) / 4))
    assert uct(c, 5, 0.4, "plain") == math.inf
    assert select(tree, 0.4) is c and select(tree, 0.4, form="plain") is c


@pytest.mark.parametrize("c", [0.0, 0.4, 2.0])
def test_selection_picks_the_uct_maximum(c):
    tree = hand_tree([(0.6, 10), (0.3, 1), (0.5, 3)])
    kids = tree.children(tree.root)
    expected = max(kids, key=lambda k: uct(k, tree.root.visits, c))
    assert select(tree, c, widen=False) is expected
    if c == 0.0:
        assert expected is kids[0]  # pure exploitation
    if c == 2.0:
        assert expected is kids[1]  # the rarely visited child


def test_progressive_widening_schedule():
    tree = hand_tree([(0.5, 1), (0.4, 1)])
    tree.root.mcts.expansions = 1
    tree.root.visits = 2
    assert select(tree, 0.4, widen=True, branch=3) is not tree.root
    tree.root.visits = 3  # b * e^2 with b = 3, e = 1
    assert select(tree, 0.4, widen=True, branch=3) is tree.root
    tree.root.mcts.expansions = 2
    assert select(tree, 0.4, widen=True, branch=3) is not tree.root  # next at 12 visits
    tree.root.visits = 12
    assert select(tree, 0.4, widen=True, branch=3) is tree.root
    tree.root.mcts.saturated = True
    assert select(tree, 0.4, widen=True, branch=3) is not tree.root


def test_selection_skips_exhausted_children_and_returns_none_when_all_spent():
    tree = hand_tree([(0.9, 1), (0.1, 1)])
    first, second = tree.children(tree.root)
    first.exhausted = True
    assert select(tree, 0.4, widen=False) is second
    second.exhausted = True
    assert select(tree, 0.4, widen=True) is tree.root  # widen: sample more first steps
    assert select(tree, 0.4, widen=False) is None  # the paper: expanded once, now spent
    assert tree.root.exhausted


def test_rollout_update_uses_alpha():
    assert rollout_update(0.5, 1.0, 0.5) == pytest.approx(0.75)
    assert rollout_update(0.5, 1.0, 0.2) == pytest.approx(0.9)
    assert rollout_update(0.5, 1.0, 1.0) == pytest.approx(0.5)


def test_backpropagation_gives_visit_weighted_means():
    tree = hand_tree([(0.8, 3), (0.2, 1), (0.9, 0)])
    child = tree.children(tree.root)[0]
    child.expanded = True
    g1 = tree.add_child(child, "g1\n", value=0.6, visits=1)
    tree.add_child(child, "g2\n", value=1.0, visits=0)
    g1.visits = 2
    backpropagate(tree, child)
    assert child.visits == 4
    assert child.value == pytest.approx(0.6)  # only visited grandchildren count
    assert tree.root.value == pytest.approx((4 * 0.6 + 1 * 0.2) / 5)
    assert visit_weighted_value(tree.children(tree.root)) == pytest.approx(tree.root.value)


# ---------------------------------------------------------------- whole search, scripted
def run(policy, scorer, log=None, **knobs):
    return drive(mcts_star(Q, WORLD, MCTSStarConfig(**knobs)), policy, scorer, log)


def test_expansion_scores_children_and_rollout_updates_with_alpha():
    policy = table_policy({0: [GOOD1, BAD1], 1: [GOOD2]})
    scorer = value_table({(GOOD1,): 0.5, (BAD1,): 0.2, (GOOD1, GOOD2): 0.8})
    log = []
    res = run(policy, scorer, log, iterations=1, branch=2, alpha=0.25, end_gate=0.9)
    tree = Tree.from_dict(res.tree)
    good = next(n for n in tree.nodes if n.step == GOOD1)
    bad = next(n for n in tree.nodes if n.step == BAD1)
    assert good.prm_score == 0.5 and bad.prm_score == 0.2
    # the rollout from the best child sampled GOOD2 (value 0.8): v <- alpha v + (1-alpha) v_max
    assert good.mcts.rollout_v_max == pytest.approx(0.8)
    assert good.value == pytest.approx(0.25 * 0.5 + 0.75 * 0.8)
    assert good.visits == 1 and bad.visits == 0
    assert tree.root.value == pytest.approx(good.value) and tree.root.visits == 1
    kinds = [type(r).__name__ for r in log]
    # expansion, its values, the rollout step, its value; then the completion of the
    # unfinished answer (finish=complete; tests/search/test_mcts_finish.py)
    assert kinds == ["Generate", "Score", "Generate", "Score", "Generate"]
    assert log[0].params.n == 2 and log[2].params.n == 1  # branch, rollout_branch
    assert log[0].params.temperature == log[2].params.temperature == 0.7


def test_stop_rule_finished_continues_an_unfinished_leaf_above_l_greedily():
    # The first step already scores above l: it is continued greedily, not with b samples.
    policy = table_policy({0: [GOOD1], 1: [GOOD2]})
    scorer = value_table({(GOOD1,): 0.95, (GOOD1, GOOD2): 0.5})
    log = []
    run(policy, scorer, log, iterations=2, branch=3, end_gate=0.9, rollout_steps=0,
        stop_rule="finished")
    expansions = [r for r in log if isinstance(r, Generate)]
    assert len(expansions) == 2
    assert expansions[0].params.n == 3 and expansions[0].params.temperature > 0
    assert expansions[1].params.n == 1 and expansions[1].params.temperature == 0


def test_search_stops_when_a_finished_node_reaches_end_gate():
    policy = table_policy({0: [GOOD1, BAD1], 1: [GOOD2, BAD2]})
    scorer = value_table({(GOOD1,): 0.5, (BAD1,): 0.3, (GOOD1, GOOD2): 0.95, (BAD1, BAD2): 0.0})
    # The paper: GOOD2 (0.95) stops the search when selection reaches it. Rounds: expand
    # the root, GOOD1, BAD1 (its unvisited bonus wins over GOOD1's visited score), then
    # select GOOD2 (the authors count the stopping round).
    res = run(policy, scorer, iterations=50, rollout_steps=0)
    assert res.info["stopped_at_end_gate"]
    assert res.info["iterations"] == 4
    assert res.steps == (GOOD1, GOOD2) and res.finished and res.answer == "29"
    # stop_rule=finished stops as soon as the finished node is created.
    res = run(policy, scorer, iterations=50, rollout_steps=0, stop_rule="finished")
    assert res.info["stopped_at_end_gate"] and res.info["iterations"] == 2
    assert res.steps == (GOOD1, GOOD2) and res.finished and res.answer == "29"


def test_search_runs_all_iterations_below_end_gate():
    policy = table_policy({0: [GOOD1, BAD1], 1: [GOOD2, BAD2]})
    scorer = value_table({(GOOD1,): 0.5, (BAD1,): 0.3, (GOOD1, GOOD2): 0.85})
    log = []
    res = run(policy, scorer, log, iterations=50, rollout_steps=0, widen=False)
    # both first steps expanded once (three policy calls); then the finished leaves are
    # selected again, visited and backpropagated (the authors) until T
    assert not res.info["stopped_at_end_gate"]
    assert res.info["iterations"] == 50
    assert sum(isinstance(r, Generate) for r in log) == 3
    assert res.steps == (GOOD1, GOOD2) and res.value == pytest.approx(0.85)
    tree = Tree.from_dict(res.tree)
    assert sum(n.visits for n in tree.finished()) > 40
    # widening asks spent nodes for more (GOOD1, BAD1, the root) until several sampled
    # batches in a row bring nothing new
    log = []
    widened = run(policy, scorer, log, iterations=50, rollout_steps=0, widen=True)
    asked = sum(isinstance(r, Generate) for r in log)
    assert 3 < asked < 50 and widened.steps == (GOOD1, GOOD2)
    log = []
    run(policy, scorer, log, iterations=50, rollout_steps=0, widen=True, temperature=0.0)
    assert sum(isinstance(r, Generate) for r in log) < asked  # greedy: one retry is enough


def test_widening_finds_steps_a_single_expansion_missed():
    proposals = iter([[BAD1], [GOOD1]])  # the root's first sample misses the good step

    def policy(prompt, params):
        steps = steps_of(prompt)
        if not steps:
            return next(proposals, [BAD1])
        return [GOOD2] if steps == [GOOD1.strip()] else [BAD2]

    scorer = value_table({(GOOD1,): 0.5, (BAD1,): 0.3, (GOOD1, GOOD2): 1.0})
    once = run(policy, scorer, iterations=50, rollout_steps=0, widen=False, branch=1)
    assert not once.finished or once.answer != "29"
    proposals = iter([[BAD1], [GOOD1]])
    widened = run(policy, scorer, iterations=50, rollout_steps=0, widen=True, branch=1)
    assert widened.steps == (GOOD1, GOOD2) and widened.info["stopped_at_end_gate"]


def test_dead_ends_are_not_selected_again():
    calls = []

    def policy(prompt, params):
        calls.append(len(steps_of(prompt)))
        return [ILLEGAL1, BAD1] if not steps_of(prompt) else [BAD2]

    res = run(policy, value_table({}), iterations=50, rollout_steps=0, branch=2, widen=False)
    tree = Tree.from_dict(res.tree)
    assert calls == [0, 1]  # root, then BAD1; then only the finished BAD2 is left to visit
    assert res.info["iterations"] == 50
    calls.clear()
    widened = run(policy, value_table({}), iterations=50, rollout_steps=0, branch=2, widen=True)
    assert set(calls) == {0, 1}  # the root and BAD1 asked again; the illegal step never
    assert 2 < len(calls) < 50 and widened.info["iterations"] == 50
    tree = Tree.from_dict(widened.tree)
    assert not next(n for n in tree.nodes if n.step == ILLEGAL1).expanded
    illegal = next(n for n in tree.nodes if n.step == ILLEGAL1)
    assert not illegal.legal and illegal.exhausted and illegal.prm_score is None
    assert not res.finished or res.answer == "15"


def test_without_self_critic_finished_paths_get_expanded_in_vain():
    policy = table_policy({0: [GOOD1], 1: [GOOD2], 2: ["Step 3: 29 + 1 = 30 (left: 30)\n"]})
    scorer = value_table({(GOOD1,): 0.5, (GOOD1, GOOD2): 0.6})
    log_with, log_without = [], []
    with_critic = run(policy, scorer, log_with, iterations=10, rollout_steps=0, widen=False)
    without = run(policy, scorer, log_without, iterations=10, rollout_steps=0,
                  self_critic=False, widen=False)
    assert sum(isinstance(r, Generate) for r in log_with) == 2
    assert sum(isinstance(r, Generate) for r in log_without) == 3  # the finished node too
    assert with_critic.info["iterations"] == 10  # the finished leaf is visited again
    assert without.info["iterations"] == 3  # after its vain expansion it is a dead end
    assert with_critic.steps == without.steps == (GOOD1, GOOD2)


def test_value_vote_and_best_leaf_can_differ():
    tree = Tree("t", Q.text)
    tree.root.expanded = True
    for answer, value in [("29", 0.6), ("29", 0.6), ("30", 0.7)]:
        tree.add_child(tree.root, f"x{answer}{value}\n", terminal=True, answer=answer, value=value)
    assert choose_answer(tree, "best_leaf").answer == "30"
    assert choose_answer(tree, "value_vote").answer == "29"


def test_test_time_search_takes_only_a_question():
    problem = WORLD.make_problem((6, 4, 5), 29, "q29")
    with pytest.raises(TypeError, match="Question"):
        next(mcts_star(problem, WORLD))
    assert not hasattr(Question("a", "b"), "gold")


def test_requests_carry_no_gold_answer():
    # Every prompt and every scored item is built from the question text and steps only.
    log = []
    policy = table_policy({0: [GOOD1, BAD1], 1: [GOOD2]})
    run(policy, value_table({}), log, iterations=3)
    for request in log:
        texts = request.prompts if isinstance(request, Generate) else [q for q, _ in request.items]
        assert all(t.startswith(Q.text) for t in texts)
    assert all(isinstance(r, (Generate, Score)) for r in log)


# ---------------------------------------------------------------- bugs of issue 12
OTHER2 = "Step 2: 24 - 5 = 19 (left: 19)\n"  # a finished wrong second step after GOOD1


def test_a_finished_child_chosen_for_the_rollout_is_visited_and_reaches_its_parent():
    """Issue 12 item 5: the authors' greedyPolicy returns a finished node's own value and
    counts its visit, so its value reaches the parent in backpropagation. Before the fix a
    finished child was never chosen (nor visited) and its parent kept a stale value."""
    policy = table_policy({0: [GOOD1], 1: [GOOD2, OTHER2]})
    scorer = value_table({(GOOD1,): 0.5, (GOOD1, GOOD2): 0.8, (GOOD1, OTHER2): 0.0})
    res = run(policy, scorer, iterations=2, branch=2)
    tree = Tree.from_dict(res.tree)
    good1 = next(n for n in tree.nodes if n.step == GOOD1)
    good2 = next(n for n in tree.nodes if n.step == GOOD2)
    other = next(n for n in tree.nodes if n.step == OTHER2)
    assert good2.terminal and good2.visits == 1 and other.visits == 0
    assert good2.value == pytest.approx(0.8)  # not simulated: v_max is its own value
    assert good1.value == pytest.approx(0.8)  # the visit-weighted mean of its children


def test_self_critic_off_does_not_halve_a_finished_child_in_the_rollout():
    """Issue 12 item 6: with self_critic=off a finished child chosen for the rollout found
    no legal step (v_max = 0), and 0.95 became 0.475 below l, so the search never stopped
    at it. A rollout that cannot take a first step from a finished path leaves its value."""
    policy = table_policy({0: [GOOD1], 1: [GOOD2]})
    scorer = value_table({(GOOD1,): 0.5, (GOOD1, GOOD2): 0.95})
    res = run(policy, scorer, iterations=10, self_critic="off")
    tree = Tree.from_dict(res.tree)
    good2 = next(n for n in tree.nodes if n.step == GOOD2)
    assert good2.value == pytest.approx(0.95) and good2.visits >= 1
    assert res.info["stopped_at_end_gate"]
    assert res.steps == (GOOD1, GOOD2) and res.finished and res.answer == "29"


# ---------------------------------------------------------------- the paper's defaults
# Where the paper (Alg. 2, App. C.1, E.2) is explicit its setting is the default; where it is
# silent, the authors' code (THUDM/ReST-MCTS 2d5f488, MCTS/mcts.py, MCTS/task.py,
# evaluate.py). docs/paper_fidelity.md, "MCTS*", gives the table and the sources.
PAPER_ITERATIONS = 50  # T, App. E.2
PAPER_BRANCH = 3  # b, App. E.2
PAPER_END_GATE = 0.9  # l, App. E.2
PAPER_ALPHA = 0.5  # alpha, App. E.2 (Eq. 34 puts it on the old value)
PAPER_ROLLOUT_STEPS = 2  # m, App. E.2
PAPER_WIDEN = False  # Alg. 2 lines 15-19: a node is expanded once
PAPER_UCT = "authors"  # Eq. 33 gives no constant nor an unvisited rule: getBestChild
PAPER_EXPLORATION_CONSTANT = 0.4  # authors' evaluate.py --exploration_constant
PAPER_UNVISITED_BONUS = 0.8  # authors' evaluate.py --inf
PAPER_ROLLOUT_BRANCH = 1  # paper silent; authors' --roll_branch 1
PAPER_ROLLOUT_TEMPERATURE = 0.7  # paper silent; authors' --temperature 0.7
PAPER_TEMPERATURE = 0.7  # paper silent; authors' --temperature 0.7 (expansion too)
PAPER_STOP_RULE = "selected"  # Alg. 2 lines 9-11: a selected leaf with v >= l stops
PAPER_EARLY_STOP = True  # evaluation stops there (MCTS_search returns at once)


def test_defaults_are_the_papers_or_the_authors():
    config = MCTSStarConfig()
    assert (config.iterations, config.branch, config.end_gate, config.alpha,
            config.rollout_steps) == (PAPER_ITERATIONS, PAPER_BRANCH, PAPER_END_GATE,
                                      PAPER_ALPHA, PAPER_ROLLOUT_STEPS)
    assert config.widen is PAPER_WIDEN and config.uct == PAPER_UCT
    assert config.exploration_constant == PAPER_EXPLORATION_CONSTANT
    assert config.unvisited_bonus == PAPER_UNVISITED_BONUS
    assert config.rollout_branch == PAPER_ROLLOUT_BRANCH
    assert config.rollout_temperature == PAPER_ROLLOUT_TEMPERATURE
    assert config.temperature == PAPER_TEMPERATURE
    assert config.stop_rule == PAPER_STOP_RULE and config.early_stop is PAPER_EARLY_STOP


def test_default_expands_each_node_once():
    # Nothing but wrong steps: the default search never asks the policy twice for a node.
    log = []
    policy = table_policy({0: [BAD1], 1: [BAD2]})
    res = drive(mcts_star(Q, WORLD), policy, value_table({}), log)
    prompts = [r.prompts[0] for r in log if isinstance(r, Generate) and r.params.n == PAPER_BRANCH]
    assert prompts and len(prompts) == len(set(prompts))
    assert res.info["iterations"] == PAPER_ITERATIONS  # the finished leaf is visited until T
    log = []
    drive(mcts_star(Q, WORLD, MCTSStarConfig(widen=True)), policy, value_table({}), log)
    again = [r.prompts[0] for r in log if isinstance(r, Generate) and r.params.n == PAPER_BRANCH]
    assert len(again) > len(set(again))  # widening asks the same nodes again


def test_default_uct_lets_a_good_visited_child_beat_an_unvisited_one():
    # The authors' finite bonus: 0.9 (visited once) against 0.0 + 0.8 (unvisited).
    tree = hand_tree([(0.9, 1), (0.0, 0)])
    good, fresh = tree.children(tree.root)
    assert select(tree, PAPER_EXPLORATION_CONSTANT) is good
    assert select(tree, PAPER_EXPLORATION_CONSTANT, form="plain") is fresh  # Eq. 33: +inf


def test_default_rollout_samples_one_step_at_the_authors_temperature():
    log = []
    policy = table_policy({0: [GOOD1], 1: [GOOD2]})
    drive(mcts_star(Q, WORLD, MCTSStarConfig(iterations=1)), policy, value_table({}), log)
    expand, roll, _completion = [r for r in log if isinstance(r, Generate)]
    assert (expand.params.n, expand.params.temperature) == (PAPER_BRANCH, PAPER_TEMPERATURE)
    assert (roll.params.n, roll.params.temperature) == (
        PAPER_ROLLOUT_BRANCH, PAPER_ROLLOUT_TEMPERATURE)
    log = []
    config = MCTSStarConfig(iterations=1, rollout_branch=3, rollout_temperature=1.0)
    drive(mcts_star(Q, WORLD, config), policy, value_table({}), log)
    roll = [r for r in log if isinstance(r, Generate)][1]
    assert (roll.params.n, roll.params.temperature) == (3, 1.0)


def test_default_stop_rule_stops_at_a_selected_unfinished_leaf_above_l():
    # GOOD1 scores 0.95 >= l: the paper stops when selection reaches it and returns it,
    # though its path is not finished (the policy then completes it: finish=complete);
    # stop_rule=finished continues it greedily instead.
    policy = table_policy({0: [GOOD1], 1: [GOOD2]})
    scorer = value_table({(GOOD1,): 0.95, (GOOD1, GOOD2): 0.5})
    log = []
    res = run(policy, scorer, log, rollout_steps=0, finish="as_is")
    assert res.info["stopped_at_end_gate"] and res.info["iterations"] == 2
    assert res.steps == (GOOD1,) and not res.finished and res.answer is None
    assert sum(isinstance(r, Generate) for r in log) == 1  # GOOD1 was never expanded
    completed = run(policy, scorer, rollout_steps=0)
    assert completed.info["completed"] and completed.tree == res.tree
    assert completed.steps == (GOOD1, GOOD2) and completed.answer == "29"
    other = run(policy, scorer, rollout_steps=0, stop_rule="finished")
    assert not other.info["stopped_at_end_gate"] and other.steps == (GOOD1, GOOD2)


def test_the_stop_test_ignores_a_node_selection_returns_to_widen():
    # With widening, selection may return an expanded node (all its children finished);
    # its value is the mean over those children, and it is not a leaf the paper stops at.
    tree = hand_tree([(0.95, 1)])
    child = tree.children(tree.root)[0]
    child.expanded = True
    tree.add_child(child, GOOD2, value=0.95, visits=1, terminal=True, critic="end",
                   exhausted=True)
    assert select(tree, 0.4, widen=True) is child  # due for widening: nothing open below
    from rest_mcts.search.mcts_star import at_end_gate

    assert not at_end_gate(tree, child, 0.9)
    assert at_end_gate(tree, tree.children(child)[0], 0.9)


def test_early_stop_false_runs_all_iterations_and_does_not_expand_a_leaf_above_l():
    # The authors' data generation: the leaf the stop rule picks is visited, not expanded.
    policy = table_policy({0: [GOOD1], 1: [GOOD2]})
    scorer = value_table({(GOOD1,): 0.95, (GOOD1, GOOD2): 0.5})
    log = []
    res = run(policy, scorer, log, iterations=6, rollout_steps=0, early_stop=False)
    assert not res.info["stopped_at_end_gate"] and res.info["iterations"] == 6
    # the root's expansion, then the completion of the unfinished answer GOOD1 (not a node)
    assert sum(isinstance(r, Generate) for r in log) == 2 and res.info["completed"]
    tree = Tree.from_dict(res.tree)
    good1 = next(n for n in tree.nodes if n.step == GOOD1)
    assert good1.visits == 5 and not good1.expanded and tree.root.visits == 6
    # finished rule: the finished node with v >= l does not end the search either
    policy = table_policy({0: [GOOD1], 1: [GOOD2]})
    scorer = value_table({(GOOD1,): 0.5, (GOOD1, GOOD2): 0.95})
    res = run(policy, scorer, iterations=6, stop_rule="finished", early_stop=False)
    assert not res.info["stopped_at_end_gate"] and res.info["iterations"] == 6
    assert res.steps == (GOOD1, GOOD2) and res.answer == "29"


def test_a_finished_leaf_selected_again_is_visited():
    policy = table_policy({0: [GOOD1], 1: [GOOD2, OTHER2]})
    scorer = value_table({(GOOD1,): 0.5, (GOOD1, GOOD2): 0.8, (GOOD1, OTHER2): 0.0})
    res = run(policy, scorer, iterations=3, branch=2, uct="plain")
    tree = Tree.from_dict(res.tree)
    other = next(n for n in tree.nodes if n.step == OTHER2)
    good1 = next(n for n in tree.nodes if n.step == GOOD1)
    assert other.visits == 1  # the unvisited finished leaf (plain UCT: +inf) in round 3
    assert good1.value == pytest.approx((0.8 + 0.0) / 2)


# ---------------------------------------------------------------- the saved trace
def test_the_tree_keeps_one_trace_line_per_iteration():
    """One iteration: the expansion of the root, the rollout from the best new child (Eq. 34:
    0.25 * 0.5 + 0.75 * 0.8) and the backpropagated root value, in one line."""
    policy = table_policy({0: [GOOD1, BAD1], 1: [GOOD2]})
    scorer = value_table({(GOOD1,): 0.5, (BAD1,): 0.2, (GOOD1, GOOD2): 0.8})
    res = run(policy, scorer, iterations=1, branch=2, alpha=0.25, end_gate=0.9)
    assert res.tree["trace"] == ["expand path=0 new=1,2 rollout=1,0.8,0.725 values=0.725"]


def test_the_trace_replays_the_search_to_its_stop():
    """The rounds of test_search_stops_when_a_finished_node_reaches_end_gate: three
    expansions, then GOOD2 selected at l stops the search (no backpropagation: the trace's
    last values are the tree's)."""
    from rest_mcts.view.replay import parse_trace

    policy = table_policy({0: [GOOD1, BAD1], 1: [GOOD2, BAD2]})
    scorer = value_table({(GOOD1,): 0.5, (BAD1,): 0.3, (GOOD1, GOOD2): 0.95, (BAD1, BAD2): 0.0})
    res = run(policy, scorer, iterations=50, rollout_steps=0)
    tree = Tree.from_dict(res.tree)
    steps = parse_trace(res.tree["trace"], {n.id for n in tree.nodes})
    assert [s["phase"] for s in steps] == ["expand", "expand", "expand", "end_gate"]
    assert [s["iteration"] for s in steps] == [1, 2, 3, 4] == list(range(1, 5))
    assert steps[0]["path"] == [0] and steps[0]["new"] == tree.root.children
    good2 = next(n for n in tree.nodes if n.step == GOOD2)
    assert steps[-1]["path"] == [0, good2.parent, good2.id] and steps[-1]["stop"]
    assert not any(s["stop"] for s in steps[:-1]) and all(s["rollout"] is None for s in steps)
    assert steps[-1]["values"] == [round(tree.nodes[i].value, 4) for i in steps[-1]["path"]]
    born = [i for s in steps for i in s["new"]]
    assert sorted(born) == list(range(1, len(tree.nodes)))  # every node made once


def test_labelling_a_tree_keeps_its_trace():
    """stage=search verifies the leaves of the saved tree (label_tree): the trace stays."""
    from rest_mcts.data.records import Problem
    from rest_mcts.runtime.search_run import label_tree

    policy = table_policy({0: [GOOD1, BAD1], 1: [GOOD2, BAD2]})
    scorer = value_table({(GOOD1,): 0.5, (BAD1,): 0.3, (GOOD1, GOOD2): 0.95})
    res = run(policy, scorer, iterations=50, rollout_steps=0)
    labelled = label_tree(res.tree, Problem(Q, gold="29"), WORLD)
    assert labelled["trace"] == res.tree["trace"] and len(labelled["trace"]) == 4
    assert any(n["correct"] is True for n in labelled["nodes"])
    assert Tree.from_dict(labelled).to_dict() == {k: v for k, v in labelled.items()
                                                   if k != "trace"}

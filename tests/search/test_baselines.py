"""Tests of the baseline searches and the search registry (scripted fake backends)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rest_mcts.prompts import first_line
from rest_mcts.config import ConfigError
from rest_mcts.search.baselines import (
    bfs,
    best_of_n,
    cot,
    sampled,
    self_consistency,
    weighted_vote,
)
from rest_mcts.search.configs import (
    SEARCH_CONFIGS,
    BestOfNConfig,
    BFSConfig,
    CoTConfig,
    SampledPassConfig,
    SelfConsistencyConfig,
    WeightedVoteConfig,
)
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.registry import SEARCHES, make_search, needs_scorer
from rest_mcts.search.tree import Tree
from rest_mcts.worlds.base import Problem, Question
from rest_mcts.worlds.countdown import CountdownWorld
from tests.search.test_engine import FakePolicy, FakeScorer

CONF = Path(__file__).resolve().parents[2] / "conf" / "search"
WORLD = CountdownWorld()
Q = Question(id="q", text="Make 10 from 2 3 4")
# Full solutions of Q: correct, finished-but-wrong (20), another wrong one (3), unfinished.
RIGHT = "Step 1: 2 * 3 = 6 (left: 6 4)\nStep 2: 6 + 4 = 10 (left: 10)\n"
RIGHT_2 = "Step 1: 3 * 4 = 12 (left: 12 2)\nStep 2: 12 - 2 = 10 (left: 10)\n"
WRONG_20 = "Step 1: 2 + 3 = 5 (left: 5 4)\nStep 2: 5 * 4 = 20 (left: 20)\n"
WRONG_3 = "Step 1: 4 - 3 = 1 (left: 1 2)\nStep 2: 2 + 1 = 3 (left: 3)\n"
HALF = "Step 1: 2 * 3 = 6 (left: 6 4)\nStep 2: 6 * 9 = 54 (left: 54)\n"
STEP_KW = {"max_new_tokens": 64}


def right_policy() -> FakePolicy:
    """Proposes the next step of RIGHT (step mode) or all of RIGHT (full solutions)."""
    lines = RIGHT.splitlines(keepends=True)

    def respond(prompt, params, i):
        depth = len(prompt.splitlines()) - 1
        return lines[min(depth, len(lines) - 1)] if "\n" in params.stop else RIGHT

    return FakePolicy(respond)


def scripted(texts: list[str]) -> FakePolicy:
    """Completion i of every prompt is ``texts[i]``."""
    return FakePolicy(lambda prompt, params, i: texts[i % len(texts)])


def by_text(values: dict[str, float], default: float = 0.0) -> FakeScorer:
    """Scores a path by the text of its steps joined (its legal prefix)."""
    return FakeScorer(lambda q, steps: values.get("".join(steps), default))


def run_one(search, policy, scorer=None):
    engine = SearchEngine(policy, scorer, progress=False)
    return engine.run_all([("q", search)])["q"]


# ---------------------------------------------------------------------------- CoT
def test_cot_judges_one_greedy_solution_and_cuts_at_the_first_illegal_step():
    policy = scripted([HALF])
    result = run_one(cot(Q, WORLD, max_new_tokens=64), policy)
    (prompts, params), = policy.calls
    assert prompts == ["Make 10 from 2 3 4\n"]
    assert (params.n, params.temperature, params.stop) == (1, 0.0, ())
    assert result.steps == ("Step 1: 2 * 3 = 6 (left: 6 4)\n",)
    assert (result.finished, result.answer) == (False, None)
    assert "operand not available" in result.tree["samples"][0]["error"]


def test_cot_reports_the_worlds_verdict_without_knowing_the_gold():
    trailing = RIGHT + "Step 3: 10 + 1 = 11 (left: 11)\n"
    result = run_one(cot(Q, WORLD, max_new_tokens=64), scripted([trailing]))
    assert result.steps == tuple(RIGHT.splitlines(keepends=True))
    assert (result.finished, result.answer) == (True, "10")
    wrong = run_one(cot(Q, WORLD, max_new_tokens=64), scripted([WRONG_20]))
    assert (wrong.finished, wrong.answer) == (True, "20")  # correctness is judged later


def test_cot_accepts_only_a_zero_temperature():
    cot(Q, WORLD, CoTConfig(temperature=0.0), max_new_tokens=8)
    with pytest.raises(ConfigError, match=r"^search\.temperature=0\.7 must be 0 \(cot is"):
        CoTConfig(temperature=0.7)
    with pytest.raises(TypeError, match="CoTConfig"):
        cot(Q, WORLD, BFSConfig(), max_new_tokens=8)


# ---------------------------------------------------------------------------- voting
def test_self_consistency_majority_vote_returns_the_first_winning_path():
    texts = [WRONG_20, RIGHT, HALF, WRONG_20, RIGHT_2, RIGHT]
    search = self_consistency(Q, WORLD, SelfConsistencyConfig(n=6), **STEP_KW)
    result = run_one(search, scripted(texts))
    assert result.answer == "10" and result.finished
    assert result.steps == tuple(RIGHT.splitlines(keepends=True))
    assert result.value == pytest.approx(3 / 6)
    assert result.info["finished_paths"] == 5 and result.info["distinct_answers"] == 2
    json.dumps(result.tree)


def test_self_consistency_ties_go_to_the_answer_seen_first_and_no_finished_path():
    tie = run_one(self_consistency(Q, WORLD, SelfConsistencyConfig(n=4), **STEP_KW),
                  scripted([WRONG_3, RIGHT, RIGHT_2, WRONG_3]))
    assert tie.answer == "3"
    none = run_one(self_consistency(Q, WORLD, SelfConsistencyConfig(n=2), **STEP_KW),
                   scripted([HALF, "garbage\n"]))
    assert (none.answer, none.finished) == (None, False)
    assert none.steps == ("Step 1: 2 * 3 = 6 (left: 6 4)\n",)


def test_best_of_n_picks_the_highest_valued_finished_path_with_one_score_request():
    texts = [RIGHT, WRONG_20, HALF, RIGHT_2]
    half_prefix = "Step 1: 2 * 3 = 6 (left: 6 4)\n"
    scorer = by_text({RIGHT: 0.6, WRONG_20: 0.7, half_prefix: 0.99, RIGHT_2: 0.65})
    result = run_one(best_of_n(Q, WORLD, BestOfNConfig(n=4), **STEP_KW), scripted(texts), scorer)
    assert len(scorer.calls) == 1 and len(scorer.calls[0]) == 4
    assert scorer.calls[0][2] == (Q.text, (half_prefix,))  # the legal prefix is scored
    assert result.answer == "20" and result.value == pytest.approx(0.7)
    assert [s["value"] for s in result.tree["samples"]] == [0.6, 0.7, 0.99, 0.65]


def test_best_of_n_falls_back_to_the_best_unfinished_path():
    half_prefix = "Step 1: 2 * 3 = 6 (left: 6 4)\n"
    scorer = by_text({half_prefix: 0.4}, default=0.1)
    search = best_of_n(Q, WORLD, BestOfNConfig(n=2), **STEP_KW)
    result = run_one(search, scripted(["junk\n", HALF]), scorer)
    assert result.steps == (half_prefix,)
    assert (result.finished, result.answer, result.value) == (False, None, pytest.approx(0.4))


def test_weighted_vote_can_differ_from_majority_vote():
    texts = [WRONG_20, WRONG_20, RIGHT, WRONG_20, RIGHT_2]
    scorer = by_text({WRONG_20: 0.1, RIGHT: 0.9, RIGHT_2: 0.95})
    majority = run_one(self_consistency(Q, WORLD, SelfConsistencyConfig(n=5), **STEP_KW),
                       scripted(texts))
    weighted = run_one(weighted_vote(Q, WORLD, WeightedVoteConfig(n=5), **STEP_KW),
                       scripted(texts), scorer)
    assert majority.answer == "20"
    assert weighted.answer == "10" and weighted.info["majority_answer"] == "20"
    assert weighted.info["vote_weight"] == pytest.approx(1.85)
    assert weighted.steps == tuple(RIGHT_2.splitlines(keepends=True))  # best path of the winner
    assert weighted.value == pytest.approx(0.95)


# ---------------------------------------------------------------------------- BFS
ILLEGAL = "Step {k}: 9 * 9 = 81 (left: 81)"


def bfs_policy(proposals: dict[int, list[str]]) -> FakePolicy:
    """Step proposals by depth (number of steps in the prompt); ``{k}`` is the step number."""

    def respond(prompt, params, i):
        depth = len(prompt.splitlines()) - 1
        options = proposals[depth]
        return options[i % len(options)].format(k=depth + 1) + "\nStep 9: trailing junk"

    return FakePolicy(respond)


def oracle_scorer() -> FakeScorer:
    """Value 1 / (1 + distance to a correct solution), 0.05 at dead ends."""

    def value(question, steps):
        distance = WORLD.distance(question, steps)
        return 0.05 if distance is None else 1.0 / (1.0 + distance)

    return FakeScorer(value)


def test_bfs_keeps_the_top_k_records_illegal_children_and_finds_the_correct_path():
    proposals = {
        0: [ILLEGAL, "Step 1: 2 * 3 = 6 (left: 6 4)", "Step 1: 2 + 3 = 5 (left: 5 4)",
            "Step 1: 2 * 3 = 6 (left: 6 4)", "Step 1: 4 - 2 = 2 (left: 2 3)"],
        1: ["Step 2: 6 + 4 = 10 (left: 10)", "Step 2: 5 * 4 = 20 (left: 20)",
            "Step 2: 4 - 3 = 1 (left: 1 2)", ILLEGAL],
    }
    policy, scorer = bfs_policy(proposals), oracle_scorer()
    config = BFSConfig(branch=5, beam_width=2, max_depth=4, temperature=1.0, max_step_tokens=24)
    search = bfs(Q, WORLD, config)
    result = run_one(search, policy, scorer)
    tree = Tree.from_dict(result.tree)
    depth1 = tree.children(tree.root)
    assert [n.step for n in depth1] == [
        "Step 1: 9 * 9 = 81 (left: 81)\n", "Step 1: 2 * 3 = 6 (left: 6 4)\n",
        "Step 1: 2 + 3 = 5 (left: 5 4)\n", "Step 1: 4 - 2 = 2 (left: 2 3)\n",
    ]
    illegal = depth1[0]
    assert not illegal.legal and illegal.value == 0.0 and illegal.prm_score is None
    assert depth1[1].info["samples"] == 2 and depth1[1].tokens == 2 * depth1[2].tokens
    # values: 6 4 -> 0.5; 5 4 -> 0.05 (10 unreachable); 2 3 -> 0.05; the top 2 are expanded
    assert [n.expanded for n in depth1] == [False, True, True, False]
    assert [len(policy.calls[0][0]), len(policy.calls[1][0])] == [1, 2]
    assert len(policy.calls) == 2  # depth 2 holds only finished or illegal nodes
    assert [len(items) for items in scorer.calls] == [3, 2]  # legal new nodes only
    assert result.answer == "10" and result.finished and result.value == pytest.approx(1.0)
    assert result.steps == tuple(RIGHT.splitlines(keepends=True))
    finished = [n for n in tree.nodes if n.terminal]
    assert {n.answer for n in finished} == {"10", "20"}
    assert result.info["illegal_nodes"] == 7 and result.info["nodes"] == len(tree.nodes) - 1
    assert sum(n.tokens for n in tree.nodes) == result.costs.policy_tokens


def test_bfs_stops_at_max_depth_and_falls_back_to_the_best_unfinished_node():
    proposals = {0: ["Step 1: 2 * 3 = 6 (left: 6 4)", "Step 1: 2 + 3 = 5 (left: 5 4)"]}
    result = run_one(
        bfs(Q, WORLD, BFSConfig(branch=2, beam_width=1, max_depth=1, max_step_tokens=24)),
        bfs_policy(proposals),
        oracle_scorer(),
    )
    assert result.info["depth"] == 1 and max(n["depth"] for n in result.tree["nodes"]) == 1
    assert result.steps == ("Step 1: 2 * 3 = 6 (left: 6 4)\n",)
    assert (result.finished, result.answer, result.value) == (False, None, 0.5)


def test_bfs_with_only_illegal_proposals_returns_the_empty_path():
    policy = bfs_policy({0: [ILLEGAL]})
    scorer = oracle_scorer()
    result = run_one(
        bfs(Q, WORLD, BFSConfig(branch=3, beam_width=2, max_depth=3, max_step_tokens=24)),
        policy,
        scorer,
    )
    assert result.steps == () and not result.finished
    assert len(result.tree["nodes"]) == 2 and scorer.calls == []


def test_bfs_without_scoring_runs_with_no_scorer_and_keeps_values_at_0():
    """search.score=false (D_V0 tree sampling): the tree is sampled on an engine that has no
    scorer at all, every value stays 0, and the configured search needs no PRM."""
    from rest_mcts.search.registry import config_needs_scorer

    proposals = {0: ["Step 1: 2 * 3 = 6 (left: 6 4)", "Step 1: 2 + 3 = 5 (left: 5 4)"],
                 1: ["Step 2: 6 + 4 = 10 (left: 10)", "Step 2: 5 * 4 = 20 (left: 20)"]}
    config = BFSConfig(branch=2, beam_width=4, max_depth=2, max_step_tokens=24, score=False)
    policy = bfs_policy(proposals)
    result = run_one(bfs(Q, WORLD, config), policy, scorer=None)
    tree = Tree.from_dict(result.tree)
    assert len(policy.calls) == 2 and len(tree.nodes) == 1 + 2 + 4
    assert all(n.value == 0.0 and n.prm_score is None for n in tree.nodes)
    assert {n.answer for n in tree.nodes if n.terminal} == {"10", "20"}
    assert not config_needs_scorer(config) and config_needs_scorer(BFSConfig())


# ---------------------------------------------------------------------------- no gold at test time
PROBLEM = Problem(question=Q, gold="10")
CALLS = {
    "cot": lambda q: cot(q, WORLD, max_new_tokens=8),
    "self_consistency": lambda q: self_consistency(
        q, WORLD, SelfConsistencyConfig(n=2), **STEP_KW),
    "best_of_n": lambda q: best_of_n(q, WORLD, BestOfNConfig(n=2), **STEP_KW),
    "weighted_vote": lambda q: weighted_vote(q, WORLD, WeightedVoteConfig(n=2), **STEP_KW),
    "sampled": lambda q: sampled(q, WORLD, SampledPassConfig(n=2), **STEP_KW),
    "bfs": lambda q: bfs(q, WORLD, BFSConfig(branch=2, beam_width=2, max_depth=2, temperature=1.0,
                         max_step_tokens=8)),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_searches_take_a_question_and_reject_a_problem(name):
    assert not hasattr(Q, "gold")
    with pytest.raises(TypeError, match="Question"):
        CALLS[name](PROBLEM)
    result = run_one(CALLS[name](Q), right_policy(), FakeScorer(lambda q, s: 0.5))
    assert result.answer == "10"


# ---------------------------------------------------------------------------- registry
@pytest.mark.parametrize("name", ["cot", "self_consistency", "best_of_n", "weighted_vote",
                                  "sampled", "bfs"])
def test_every_search_config_builds(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg.name == name
    start = make_search(cfg, WORLD, max_solution_tokens=64)
    policy = right_policy()
    result = run_one(start(Q), policy, FakeScorer(lambda q, s: 0.5))
    assert result.answer == "10"
    if name != "bfs":
        assert policy.calls[0][1].max_new_tokens == 64
        assert policy.calls[0][1].n == cfg.get("n", 1)
    assert needs_scorer(name) == (name in ("best_of_n", "weighted_vote", "sampled", "bfs"))


def test_make_search_rejects_unknown_knobs_and_bad_values_before_any_question():
    with pytest.raises(ValueError, match=r"^search\.beam_size is not a knob of search 'bfs'; "
                       r"allowed: beam_width, branch, max_depth, max_step_tokens, score, "
                       r"temperature$"):
        make_search({"name": "bfs", "beam_size": 3}, WORLD, 64)
    with pytest.raises(ValueError, match="unknown search 'nope'"):
        make_search({"name": "nope"}, WORLD, 64)
    with pytest.raises(ConfigError, match=r"^search\.temperature=0\.5 must be 0"):
        make_search({"name": "cot", "temperature": 0.5}, WORLD, 64)  # not at the first question
    with pytest.raises(ConfigError, match=r"^search\.max_new_tokens is not a knob"):
        make_search({"name": "cot", "max_new_tokens": 8}, WORLD, 64)  # the run's cap, not a knob


def test_make_search_takes_a_typed_config_and_fills_omitted_knobs_with_defaults():
    policy = right_policy()
    start = make_search(BFSConfig(branch=2, beam_width=1), WORLD, 64)
    assert run_one(start(Q), policy, FakeScorer(lambda q, s: 0.5)).answer == "10"
    assert policy.calls[0][1].n == 2 and policy.calls[0][1].max_new_tokens == 48
    policy = right_policy()
    start = make_search({"name": "bfs", "beam_width": 3}, WORLD, 64)  # branch: the default 3
    run_one(start(Q), policy, FakeScorer(lambda q, s: 0.5))
    assert policy.calls[0][1].n == BFSConfig().branch == 3


def test_registry_names_and_scorer_needs():
    assert set(SEARCHES) == {"cot", "self_consistency", "best_of_n", "weighted_vote", "sampled",
                             "bfs", "mcts_star"} == set(SEARCH_CONFIGS)
    assert needs_scorer("mcts_star") and not needs_scorer("cot")
    with pytest.raises(ValueError):
        needs_scorer("x")
    assert first_line("a\nb\n") == "a\n" and first_line("a") == "a"

"""MCTS* with the policy as self-critic (`self_critic=llm`), with a scripted fake policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rest_mcts.backends.base import Completion, GenerationOutput
from rest_mcts.prompting import PromptFormat
from rest_mcts.search.configs import MCTSStarConfig
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.mcts_star import mcts_star
from rest_mcts.search.registry import make_search
from rest_mcts.search.requests import Generate
from rest_mcts.search.tree import Tree
from rest_mcts.worlds import CountdownWorld
from rest_mcts.worlds.base import Question
from rest_mcts.worlds.text import TextReasoningWorld

from tests.helpers.search_fakes import drive

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
Q = Question(id="q", text="Solve 3x = 6.")
STEP = re.compile(r"^Step \d+: (?!\.\.\.$)")
CRITIC_MARK = "determine if the existing steps have solved the problem"


def text_world(style: str = "continue") -> TextReasoningWorld:
    dataset = {"format": "math", "answer_type": "math", "path": str(FIXTURES / "math_sample.jsonl")}
    fmt = PromptFormat(None, chat_template=False, style=style)
    return TextReasoningWorld(name="math", dataset=dataset, prompts=fmt)


def is_critic(prompt: str) -> bool:
    return CRITIC_MARK in prompt


def depth_of(prompt: str) -> int:
    """Steps already in a prompt (not the templates' "Step 1: ..." examples, nor the cue)."""
    return sum(1 for line in prompt.splitlines() if STEP.match(line))


def scripted(critic: dict[int, str], steps: dict[int, str]):
    """Fake policy: the critic answers critic[depth]; expansion proposes steps[depth]."""

    def policy(prompt, params):
        if is_critic(prompt):
            return [critic.get(depth_of(prompt), "Analysis: keep going")]
        return [steps.get(depth_of(prompt), "more")]

    return policy


def run(policy, world=None, log=None, **knobs):
    knobs = {"iterations": 4, "branch": 1, "rollout_steps": 0, "widen": False,
             "self_critic": "llm", **knobs}
    config = MCTSStarConfig(**knobs)
    result = drive(mcts_star(Q, world or text_world(), config), policy, lambda q, s: 0.5, log)
    return result, Tree.from_dict(result.tree)


def test_critic_says_solved_node_is_terminal_and_not_expanded():
    log = []
    policy = scripted({0: "Analysis: divide by 3", 1: "Problem solved"}, {0: "x = 2\n"})
    result, tree = run(policy, log=log)
    node = tree.nodes[1]
    assert node.step == "x = 2\n"
    assert node.terminal and node.critic == "end" and node.mcts.critic_status == "solved"
    assert not node.expanded and node.exhausted and not node.children
    expansions = [r for r in log if isinstance(r, Generate) and not is_critic(r.prompts[0])]
    assert len(expansions) == 1  # the root's only: the solved node was never expanded
    assert result.finished and result.steps == ("x = 2\n",) and result.answer is None
    assert result.info["critic_calls"] == 2 and result.info["critic_solved"] == 1


def test_critic_on_the_world_finished_answer_reads_it():
    policy = scripted({1: "Problem solved."}, {0: "x = 2\n"})
    _, tree = run(policy)
    assert tree.nodes[1].answer is None  # no answer marker: the path ends without one
    policy = scripted({}, {0: "The answer is $\\boxed{2}$\n"})
    result, tree = run(policy)
    # The world sees the boxed answer as finished: the critic is not asked about it.
    assert tree.nodes[1].terminal and tree.nodes[1].mcts.critic_status is None
    assert result.answer == "2" and result.info["critic_calls"] == 1  # the root only


@pytest.mark.parametrize("style", ["continue", "propose"])
def test_critic_hint_goes_into_the_next_expansion_prompt(style):
    log = []
    hint = "substitute x = 2 and check"
    policy = scripted({0: f"Analysis: {hint}", 1: "Problem solved"}, {0: "x = 1\n"})
    result, tree = run(policy, world=text_world(style), log=log, iterations=2)
    critic, expansion = log[0], log[1]
    assert is_critic(critic.prompts[0]) and critic.params.temperature == 0
    assert critic.params.n == 1 and critic.params.max_new_tokens == 64
    assert hint in expansion.prompts[0] and not is_critic(expansion.prompts[0])
    assert tree.root.critic == hint and tree.root.mcts.critic_status == "hint"
    assert result.info["critic_hints"] == 1


def test_unparseable_critic_answer_means_no_verdict_and_expansion_proceeds():
    log = []
    policy = scripted({0: "I am not sure what you mean", 1: ""}, {0: "x = 2\n", 1: "x = 3\n"})
    result, tree = run(policy, log=log, iterations=2)
    assert tree.root.expanded and tree.nodes[1].expanded  # both expanded despite the critic
    assert tree.root.critic is None and tree.root.mcts.critic_status == "unparsed"
    assert tree.root.mcts.critic_raw == "I am not sure what you mean"
    assert result.info["critic_unparsed"] == 2 and result.info["critic_hints"] == 0
    expansions = [r for r in log if isinstance(r, Generate) and not is_critic(r.prompts[0])
                  and r.params.stop]  # not the completion of the answer (no step stop)
    assert len(expansions) == 2 and all("Analysis" not in r.prompts[0] for r in expansions)


def test_a_finished_path_with_an_answer_wins_over_a_critic_ended_one():
    steps = {0: ["x = 2\n", "The answer is $\\boxed{2}$\n"]}
    critic = {0: "Analysis: divide", 1: "Problem solved"}
    policy = lambda p, params: ([critic.get(depth_of(p), "Analysis: go")] if is_critic(p)
                                else steps.get(depth_of(p), ["more"]))
    config = MCTSStarConfig(iterations=4, branch=2, rollout_steps=0, widen=False,
                            self_critic="llm")
    result = drive(mcts_star(Q, text_world(), config),
                   policy, lambda q, s: 0.8 if s == ("x = 2\n",) else 0.5)
    tree = Tree.from_dict(result.tree)
    assert {n.answer for n in tree.finished()} == {None, "2"}  # the critic ended "x = 2"
    assert result.answer == "2" and result.finished


def test_problem_solved_at_the_root_is_not_believed():
    policy = scripted({0: "Problem solved"}, {0: "x = 2\n"})
    result, tree = run(policy, iterations=1)
    assert tree.root.expanded and not tree.root.terminal
    assert result.info["critic_unparsed"] == 1


class CountingPolicy:
    """A policy backend that answers scripted texts and counts one token per character."""

    def __init__(self, respond):
        self.respond = respond
        self.calls = []

    def generate(self, prompts, params, seeds=None):
        self.calls.append((list(prompts), params))
        return [
            GenerationOutput(
                tuple(Completion(t, len(t), "stop") for t in (self.respond(p, params)[0],) * params.n),
                prompt_tokens=len(p),
            )
            for p in prompts
        ]


class ConstantScorer:
    def score(self, items):
        return [0.5 for _ in items]


def test_critic_tokens_are_counted_in_the_costs_and_critic_calls_batch():
    world = text_world()
    policy = CountingPolicy(scripted({0: "Analysis: divide", 1: "Problem solved"}, {0: "x = 2\n"}))
    start = make_search({"name": "mcts_star", "iterations": 3, "branch": 2, "rollout_steps": 0,
                         "widen": False, "self_critic": "llm"}, world, 64)
    questions = [Question(id=f"q{i}", text=f"Solve 3x = {6 + i}.") for i in range(2)]
    engine = SearchEngine(policy, ConstantScorer(), progress=False, concurrency=2)
    results = engine.run_all((q.id, start(q)) for q in questions)
    first_prompts, first_params = policy.calls[0]
    assert len(first_prompts) == 2 and all(map(is_critic, first_prompts))  # batched
    for result in results.values():
        tree = Tree.from_dict(result.tree)
        step_tokens = sum(n.tokens for n in tree.nodes)
        critic_tokens = result.info["critic_tokens"]
        assert critic_tokens == len("Analysis: divide") + len("Problem solved")
        assert result.costs.policy_tokens == step_tokens + critic_tokens
        assert result.costs.policy_calls == 3  # critic, expansion, critic


def test_llm_critic_needs_a_world_with_prompts():
    with pytest.raises(ValueError, match="search.self_critic=llm"):
        make_search({"name": "mcts_star", "self_critic": "llm"}, CountdownWorld(), 64)
    with pytest.raises(ValueError, match="must be one of"):
        make_search({"name": "mcts_star", "self_critic": "maybe"}, text_world(), 64)


@pytest.mark.parametrize("value, ok", [("world", True), ("llm", True), ("off", True),
                                       ("false", True), ("sometimes", False)])
def test_config_accepts_the_critic_modes(compose_cfg, value, ok):
    from rest_mcts.config import ConfigError
    from rest_mcts.stages import check_config

    cfg = compose_cfg(f"search.self_critic={value}")
    if ok:
        check_config(cfg)
    else:
        with pytest.raises(ConfigError, match="search.self_critic"):
            check_config(cfg)

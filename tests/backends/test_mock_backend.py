"""The scripted mock policy backend (`backend=mock`)."""

from __future__ import annotations

import dataclasses

import pytest

from rest_mcts.answers.extract import extract_final_answer
from rest_mcts.backends.base import SamplingParams
from rest_mcts.backends.mock import MockPolicyBackend
from rest_mcts.data.steps import strip_step_prefix
from rest_mcts.prompts import policy_prompt
from rest_mcts.worlds import CountdownWorld

WORLD = CountdownWorld(num_numbers=4)
PROBLEMS = WORLD.generate(6, seed=0)
STEP = SamplingParams(n=4, temperature=1.0, max_new_tokens=64, stop=("\n",))
WHOLE = SamplingParams(n=4, temperature=1.0, max_new_tokens=256)


def texts(outputs):
    return [[c.text for c in out.completions] for out in outputs]


def test_same_row_seed_same_completions_whatever_the_batch():
    prompts = [policy_prompt(p.question.text) for p in PROBLEMS]
    backend = MockPolicyBackend(seed=0)
    first = texts(backend.generate(prompts, STEP, seeds=list(range(6))))
    # another backend, another batch order: each row depends only on its seed and prompt
    other = MockPolicyBackend(seed=123)
    reversed_ = texts(other.generate(prompts[::-1], STEP, seeds=list(range(6))[::-1]))
    assert reversed_[::-1] == first
    assert texts(backend.generate(prompts, STEP, seeds=[s + 100 for s in range(6)])) != first
    # params.seed stands in for row seeds derived from it and the prompt index
    from rest_mcts.backends.base import derive_seed

    assert texts(backend.generate(prompts[:1], dataclasses.replace(STEP, seed=7))) == texts(
        backend.generate(prompts[:1], STEP, seeds=[derive_seed(7, 0)]))
    # no seed at all: the backend's own generator
    a = texts(MockPolicyBackend(seed=5).generate(prompts, STEP))
    assert a == texts(MockPolicyBackend(seed=5).generate(prompts, STEP))


def test_countdown_steps_are_plausible_and_counted_in_characters():
    backend = MockPolicyBackend(seed=0, wrong_rate=0.3)
    prompts = [policy_prompt(p.question.text) for p in PROBLEMS]
    legal = illegal = 0
    for problem, out in zip(PROBLEMS, backend.generate(prompts, STEP, seeds=list(range(6)))):
        for c in out.completions:
            assert c.text.startswith("Step 1: ") and c.text.endswith("\n")
            assert (c.num_tokens, c.finish_reason) == (len(c.text), "stop")
            check = WORLD.check_step(problem.question, [], c.text)
            legal, illegal = legal + check.legal, illegal + (not check.legal)
    assert legal > illegal > 0
    # the next step starts from the state the prompt's steps reach
    question = PROBLEMS[0].question
    first = WORLD.solve(*WORLD.parse_question(question))[0]
    out = MockPolicyBackend(seed=0, wrong_rate=0.0).generate(
        [policy_prompt(question.text, [first])], STEP, seeds=[1]
    )
    for c in out[0].completions:
        assert c.text.startswith("Step 2: ") and WORLD.check_step(question, [first], c.text).legal


def test_whole_countdown_solutions_end_finished_or_illegal():
    backend = MockPolicyBackend(seed=0, wrong_rate=0.0)
    prompts = [policy_prompt(p.question.text) for p in PROBLEMS]
    for problem, out in zip(PROBLEMS, backend.generate(prompts, WHOLE, seeds=list(range(6)))):
        for c in out.completions:
            steps = c.text.splitlines(keepends=True)
            check = WORLD.check_path(problem.question, steps)
            assert check.legal and check.finished and c.finish_reason == "eos"


def test_greedy_repeats_one_completion_and_limits_cut():
    backend = MockPolicyBackend(seed=0)
    prompt = policy_prompt(PROBLEMS[0].question.text)
    (out,) = backend.generate([prompt], SamplingParams(n=3, max_new_tokens=64, stop=("\n",)))
    assert len(set(c.text for c in out.completions)) == 1 and len(out.completions) == 3
    assert out.prompt_tokens == len(prompt)
    (cut,) = backend.generate([prompt], SamplingParams(n=1, max_new_tokens=5))
    assert (cut.completions[0].text, cut.completions[0].finish_reason) == ("Step ", "length")
    with pytest.raises(ValueError, match="seeds"):
        backend.generate([prompt, prompt], STEP, seeds=[1])
    assert backend.stats["calls"] == 2 and backend.stats["completions"] == 4


def test_text_prompts_get_step_lines_ending_in_an_answer():
    backend = MockPolicyBackend(seed=0, max_steps=4)
    prompt = "Tom has 3 apples and buys 12 more. How many?\nStep 1: He starts with 3.\n"
    (out,) = backend.generate([prompt], WHOLE, seeds=[7])
    for c in out.completions:
        lines = c.text.splitlines()
        assert lines[0].startswith("Step 2: ") and len(lines) <= 3
        answers = [extract_final_answer(strip_step_prefix(line)) for line in lines]
        assert answers[-1] in {"3", "12", "1"} and all(a is None for a in answers[:-1])


def test_a_search_runs_on_the_mock_with_the_oracle():
    from rest_mcts.backends.registry import build_policy
    from rest_mcts.search.engine import SearchEngine
    from rest_mcts.search.oracle_scorer import OracleScorer
    from rest_mcts.search.registry import make_search

    policy = build_policy({"_target_": "rest_mcts.backends.mock.MockPolicyBackend"}, None)
    cfg = {
        "name": "mcts_star", "iterations": 8, "branch": 3, "end_gate": 0.9, "alpha": 0.5,
        "exploration_constant": 0.4, "rollout_steps": 1, "rollout_branch": 2, "max_depth": 4,
        "temperature": 1.0, "self_critic": True, "answer_selection": "best_leaf", "widen": True,
    }
    engine = SearchEngine(policy, OracleScorer(WORLD), concurrency=4, progress=False)
    search = make_search(cfg, WORLD, max_solution_tokens=128)
    results = engine.run_all((p.id, search(p.question)) for p in PROBLEMS[:3])
    assert len(results) == 3 and policy.stats["calls"] > 0
    assert all(r.costs.policy_tokens > 0 for r in results.values())

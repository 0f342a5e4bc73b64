"""The natural-language world: step convention, verifier, and real reference solutions."""

from __future__ import annotations

from pathlib import Path

import pytest

from rest_mcts.worlds.base import Question
from rest_mcts.worlds.text import TextReasoningWorld

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _world(name="math", fmt="math", kind="math", path="math_sample.jsonl", **kw):
    dataset = {"format": fmt, "answer_type": kind, "path": str(FIXTURES / path), **kw}
    return TextReasoningWorld(name=name, dataset=dataset)


Q = Question(id="q", text="What is 1/2 + 0?")


def test_step_legality_and_end_of_solution():
    world = _world()
    assert world.check_step(Q, [], "Step 1: add them\n").legal
    assert not world.check_step(Q, [], "Step 1:   \n").legal
    assert not world.check_step(Q, [], "   ").legal
    end = world.check_step(Q, ["Step 1: add\n"], r"Step 2: so it is $\boxed{\frac12}$.")
    assert end.legal and end.finished and end.answer == r"\frac12"
    after = world.check_step(Q, ["Step 1: The answer is 0.5\n"], "Step 2: more\n")
    assert not after.legal and "after the final answer" in after.error
    assert world.check_path(Q, []).legal and not world.check_path(Q, []).finished


@pytest.mark.parametrize(
    "name, fmt, kind, path",
    [("math", "math", "math", "math_sample.jsonl"), ("gsm8k", "gsm8k", "gsm8k", "gsm8k_sample.jsonl")],
)
def test_every_reference_solution_is_legal_finished_and_correct(name, fmt, kind, path):
    world = _world(name, fmt, kind, path)
    problems = world.generate(world.count_problems("train"), seed=0, split="train")
    assert len(problems) == 30
    for problem in problems:
        steps = list(problem.reference_steps)
        check = world.check_path(problem.question, steps)
        assert check.legal and check.finished, (problem.id, steps[-1])
        assert world.is_correct(problem, steps), (problem.id, problem.gold, check.answer)
        # and wrong when the last step states another problem's answer
        assert not world.is_correct(problem, steps[:-1] + ["Step 99: The answer is 123456789\n"])


def test_generate_respects_limit_and_seed():
    world = _world(limit=4)
    assert world.count_problems("train") == 4
    a = [p.id for p in world.generate(4, seed=1, split="train")]
    assert a == [p.id for p in _world(limit=4).generate(4, seed=1, split="train")]
    with pytest.raises(ValueError, match="5 problems asked"):
        world.generate(5, seed=1, split="train")


def test_bad_spec_values_raise():
    with pytest.raises(ValueError, match="shard"):
        _world(shard=3, num_shards=2)
    with pytest.raises(ValueError, match="format"):
        _world(fmt="csv")
    with pytest.raises(ValueError, match="data.path"):
        TextReasoningWorld(name="x", dataset={"format": "math", "answer_type": "math"})

"""Policy evaluation: progress in pieces gives exactly the completions of one call."""

from __future__ import annotations

import pytest

from rest_mcts.backends import HFPolicyBackend, SamplingParams
from rest_mcts.search.evaluation import _generate, step_skill
from rest_mcts.worlds.countdown import CountdownWorld


class Counter:
    """Stands in for the tqdm bar."""

    n = 0

    def update(self, k: int) -> None:
        self.n += k


PROMPTS = [f"Make {t} from 1 2 3\n" for t in range(5)]


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(n=1, max_new_tokens=6),
        SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=5),
        SamplingParams(n=5, temperature=1.0, max_new_tokens=6, seed=5),  # n > max_batch_size
    ],
)
def test_generation_in_pieces_equals_one_call(tiny_policy, params):
    backend = HFPolicyBackend(model_path=str(tiny_policy), max_batch_size=4)
    whole = backend.generate(PROMPTS, params)
    bar = Counter()
    pieces = _generate(backend, PROMPTS, params, bar, piece_size=2)
    assert bar.n == len(PROMPTS)
    assert [[c.text for c in o.completions] for o in pieces] == [
        [c.text for c in o.completions] for o in whole
    ]
    assert backend.stats["calls"] > 1  # it really went in pieces


def test_sampled_evaluation_differs_by_seed(tiny_policy):
    backend = HFPolicyBackend(model_path=str(tiny_policy), max_batch_size=4)
    texts = [
        [c.text for o in _generate(backend, PROMPTS, SamplingParams(
            n=2, temperature=1.0, max_new_tokens=6, seed=seed), Counter()) for c in o.completions]
        for seed in (5, 6)
    ]
    assert texts[0] != texts[1]


# ---------------------------------------------------------------------------- step skill
class _SolvingPolicy:
    """A policy that always writes a step keeping the target reachable (the oracle's)."""

    def generate(self, prompts, params, seeds=None):
        from rest_mcts.backends.base import Completion, GenerationOutput
        from rest_mcts.worlds.countdown import apply_move, format_step
        from rest_mcts.worlds.countdown.solver import _solving_moves

        world = CountdownWorld()
        outs = []
        for prompt in prompts:
            lines = prompt.splitlines()
            question, steps = lines[0], [line + "\n" for line in lines[1:] if line.strip()]
            numbers, target = world.parse_question(question)
            state = world.state(question, steps)
            move = _solving_moves(tuple(state), target, None)[0]
            text = format_step(len(steps) + 1, *move, apply_move(state, move))
            outs.append(GenerationOutput((Completion(text, len(text), "stop"),) * params.n, len(prompt)))
        return outs


def _deep_problems(n=60):
    world = CountdownWorld(num_numbers=4, max_target=200, min_steps=3)
    return world, world.generate(n, seed=0, split="test")


def test_step_skill_of_a_random_policy_matches_the_random_baseline():
    from rest_mcts.backends.mock import MockPolicyBackend

    world, problems = _deep_problems()
    m = step_skill(MockPolicyBackend(seed=0, wrong_rate=0.0), world, problems, samples=16,
                   temperature=0.7, seed=0)
    for d in (1, 2, 3):
        assert m[f"eval/step_states@{d}"] == len(problems)
        assert abs(m[f"eval/step_skill@{d}"] - m[f"eval/step_random@{d}"]) < 0.06
    assert 0.08 < m["eval/step_random@1"] < 0.25  # about 1 legal move in 7 keeps it reachable
    assert m["eval/step_random@3"] > m["eval/step_random@1"]


def test_step_skill_of_a_solving_policy_is_one_and_of_an_illegal_one_zero():
    from rest_mcts.backends.mock import MockPolicyBackend

    world, problems = _deep_problems(20)
    m = step_skill(_SolvingPolicy(), world, problems, samples=2, seed=0)
    assert [m[f"eval/step_skill@{d}"] for d in (1, 2, 3)] == [1.0, 1.0, 1.0]
    assert m["eval/step_skill_ratio@1"] > 3
    m = step_skill(MockPolicyBackend(seed=0, wrong_rate=1.0), world, problems, samples=2, seed=0)
    assert m["eval/step_skill@1"] == 0.0


def test_random_step_skill_is_exact():
    world = CountdownWorld()
    q = world.make_question([2, 3], 6, "q")
    # moves on (3, 2): 3+2=5, 3-2=1, 3*2=6, and only 3*2 reaches 6
    assert world.random_step_skill(q, []) == pytest.approx(1 / 3)
    assert step_skill(_SolvingPolicy(), world, [], seed=0) == {}

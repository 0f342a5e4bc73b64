"""With a perfect scorer, MCTS* must solve nearly everything the policy can reach.

The policy here is a scripted sampler of uniformly random LEGAL Countdown steps (it can
reach every solution, and solves few problems on its own); the scorer is the exact oracle.
This tests the search logic end to end on the real engine: if MCTS* does not beat
self-consistency at equal policy tokens by a wide margin, the search is wrong.
"""

from __future__ import annotations

import random

from rest_mcts.backends.base import Completion, GenerationOutput, SamplingParams
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.oracle_scorer import OracleScorer
from rest_mcts.search.registry import make_search
from rest_mcts.worlds import CountdownWorld, apply_move, format_step, legal_moves

from tests.helpers.search_fakes import steps_of


class RandomLegalPolicy:
    """A PolicyBackend that writes uniformly random legal steps (one line, or whole paths)."""

    def __init__(self, world: CountdownWorld, seed: int = 0):
        self.world, self.rng = world, random.Random(seed)

    def _path(self, question: str, steps: list[str], one_step: bool) -> str:
        numbers = self.world.state(question, steps)
        out, k = [], len(steps)
        _, target = self.world.parse_question(question)
        while len(numbers) > 1:
            a, op, b, result = self.rng.choice(legal_moves(numbers))
            numbers = apply_move(numbers, (a, op, b, result))
            k += 1
            out.append(format_step(k, a, op, b, result, numbers))
            if one_step or result == target:
                break
        return "".join(out)

    def generate(self, prompts, params: SamplingParams, seeds=None):
        one_step = "\n" in params.stop
        outs = []
        for prompt in prompts:
            question = prompt.split("\n")[0]
            steps = [s + "\n" for s in steps_of(prompt)]
            texts = [self._path(question, steps, one_step) for _ in range(params.n)]
            completions = tuple(Completion(t, len(t), "stop") for t in texts)
            outs.append(GenerationOutput(completions, len(prompt)))
        return outs


def run_method(world, problems, search_cfg, scorer=None, seed=0):
    engine = SearchEngine(RandomLegalPolicy(world, seed), scorer, concurrency=16, progress=False)
    fn = make_search(search_cfg, world, max_solution_tokens=128)
    results = engine.run_all((p.id, fn(p.question)) for p in problems)
    by_id = {p.id: p for p in problems}
    acc = sum(
        r.finished and world.is_correct(by_id[k], list(r.steps)) for k, r in results.items()
    ) / len(problems)
    tokens = sum(r.costs.policy_tokens for r in results.values()) / len(problems)
    return acc, tokens


# MCTS* with this repo's progressive widening at its defaults (search=mcts_star_widen): with a
# policy of uniformly random steps, expanding each node once (the paper, search=mcts_star)
# leaves most trees without the solution (test_without_widening_...).
MCTS_STAR = {"name": "mcts_star_widen", "iterations": 50}


def compare_at_equal_tokens(world, problems, iterations, seeds=(0, 1, 2)):
    """Mean accuracy of MCTS* and of self-consistency at as many policy tokens, over a few
    seeds of the random policy (one seed of 40 problems varies by about +-0.1)."""
    mcts, sc = [], []
    for seed in seeds:
        cfg = {**MCTS_STAR, "iterations": iterations}
        mcts_acc, mcts_tokens = run_method(world, problems, cfg, OracleScorer(world), seed)
        # Self-consistency with as many policy tokens per question.
        _, sc1_tokens = run_method(
            world, problems, {"name": "self_consistency", "n": 1, "temperature": 1.0}, None, seed
        )
        n = max(1, round(mcts_tokens / sc1_tokens))
        sc_acc, sc_tokens = run_method(
            world, problems, {"name": "self_consistency", "n": n, "temperature": 1.0}, None, seed
        )
        assert sc_tokens >= 0.8 * mcts_tokens
        mcts.append(mcts_acc)
        sc.append(sc_acc)
    return sum(mcts) / len(mcts), sum(sc) / len(sc)


def test_mcts_star_with_oracle_solves_what_the_policy_can_reach():
    world = CountdownWorld()  # 3 numbers
    mcts_acc, sc_acc = compare_at_equal_tokens(world, world.generate(40, 3, "test"), 50)
    assert mcts_acc >= 0.85, mcts_acc
    assert mcts_acc >= sc_acc + 0.5, (mcts_acc, sc_acc)


def test_mcts_star_with_oracle_on_four_numbers():
    world = CountdownWorld(num_numbers=4, max_target=200, min_steps=2)
    mcts_acc, sc_acc = compare_at_equal_tokens(world, world.generate(40, 3, "test"), 100)
    # About 0.66-0.72 (means over seeds): finished leaves are selected again and visited, as
    # in the authors' code, and each such round counts against T (0.76 when they were free).
    assert mcts_acc >= 0.6, mcts_acc
    assert mcts_acc >= sc_acc + 0.5, (mcts_acc, sc_acc)


def test_without_widening_a_poor_first_expansion_is_final():
    world = CountdownWorld(num_numbers=4, max_target=200, min_steps=2)
    problems = world.generate(40, 3, "test")
    once, _ = run_method(world, problems, {"name": "mcts_star"}, OracleScorer(world))
    widened, _ = run_method(world, problems, MCTS_STAR, OracleScorer(world))
    assert widened > once

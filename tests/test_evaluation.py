"""Policy evaluation: progress in pieces gives exactly the completions of one call."""

from __future__ import annotations

import pytest

from rest_mcts.backends import HFPolicyBackend, SamplingParams
from rest_mcts.search.evaluation import _generate


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

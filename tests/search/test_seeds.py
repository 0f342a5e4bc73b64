"""Per-question randomness: a question's samples depend on (run seed, question, request
index) only, never on the batch it shared, the engine's concurrency or the backend's chunking.

Everything runs through the real Hugging Face policy backend on the tiny untrained Llama of
``conftest.tiny_policy`` (it writes garbage, but garbage drawn from its own seeds).
"""

from __future__ import annotations

import json

import pytest
import torch

from rest_mcts.backends import HFPolicyBackend, SamplingParams
from rest_mcts.backends.base import derive_seed
from rest_mcts.search.oracle_scorer import OracleScorer
from rest_mcts.models.factory import load_causal_lm, load_tokenizer
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.registry import make_search
from rest_mcts.worlds.countdown import CountdownWorld

WORLD = CountdownWorld()
PROMPTS = ["Make 23 from 6 4 5\n", "Q\n", "Make 100 from 9 9 3 7\n6 * 4 = 24\n", "1 2\n"]
SAMPLED = SamplingParams(n=3, temperature=1.0, top_p=0.9, max_new_tokens=16, stop=("\n",))


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_policy):
    return load_causal_lm(str(tiny_policy)), load_tokenizer(str(tiny_policy))


def backend(model_and_tokenizer, **kwargs) -> HFPolicyBackend:
    model, tokenizer = model_and_tokenizer
    return HFPolicyBackend(model=model, tokenizer=tokenizer, **kwargs)


def texts(outputs) -> list[list[tuple[str, int, str]]]:
    return [[(c.text, c.num_tokens, c.finish_reason) for c in o.completions] for o in outputs]


# ---------------------------------------------------------------------------- backend
@pytest.mark.slow  # ~15-25 s: many batch compositions through both decoders
@pytest.mark.parametrize("decoder", ["compact", "generate"])
def test_a_rows_samples_depend_on_its_seed_alone(model_and_tokenizer, decoder):
    seeds = [101, 202, 303, 404]
    full = backend(model_and_tokenizer, decoder=decoder)
    together = texts(full.generate(PROMPTS, SAMPLED, seeds=seeds))
    alone = [texts(full.generate([p], SAMPLED, seeds=[s]))[0] for p, s in zip(PROMPTS, seeds)]
    assert together == alone
    # max_batch_size=2 < n=3: a prompt's samples are split over chunks too
    small = backend(model_and_tokenizer, decoder=decoder, max_batch_size=2)
    assert texts(small.generate(PROMPTS, SAMPLED, seeds=seeds)) == together
    shuffled = [3, 0, 2, 1]
    reordered = texts(full.generate([PROMPTS[i] for i in shuffled], SAMPLED,
                                    seeds=[seeds[i] for i in shuffled]))
    assert reordered == [together[i] for i in shuffled]
    # the samples of one prompt differ from one another, and from another seed's
    assert len({c for c in together[0]}) > 1
    assert texts(full.generate(PROMPTS[:1], SAMPLED, seeds=[102])) != together[:1]


def test_both_decoders_sample_alike(model_and_tokenizer):
    seeds = [7, 8, 9, 10]
    compact = backend(model_and_tokenizer, decoder="compact").generate(PROMPTS, SAMPLED, seeds)
    reference = backend(model_and_tokenizer, decoder="generate").generate(PROMPTS, SAMPLED, seeds)
    assert texts(compact) == texts(reference)


def test_the_call_seed_seeds_each_prompt_by_its_index(model_and_tokenizer):
    policy = backend(model_and_tokenizer)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=12, seed=5)
    state = torch.get_rng_state()
    by_call = texts(policy.generate(PROMPTS, params))
    assert torch.equal(state, torch.get_rng_state())  # torch's generator is not touched
    by_rows = policy.generate(PROMPTS, params, seeds=[derive_seed(5, i) for i in range(4)])
    assert by_call == texts(by_rows)
    with pytest.raises(ValueError, match="seeds"):
        policy.generate(PROMPTS, params, seeds=[1, 2])


# ---------------------------------------------------------------------------- searches
SEARCHES = {
    "mcts_star": {
        "name": "mcts_star", "iterations": 3, "branch": 2, "rollout_steps": 1,
        "rollout_branch": 2, "max_depth": 3, "temperature": 1.0, "max_step_tokens": 12,
    },
    "self_consistency": {"name": "self_consistency", "n": 3, "temperature": 1.0},
    "bfs": {
        "name": "bfs", "branch": 2, "beam_width": 2, "max_depth": 2, "temperature": 1.0,
        "max_step_tokens": 12,
    },
}


def run_search(model_and_tokenizer, search_cfg, problems, concurrency, max_batch_size):
    policy = backend(model_and_tokenizer, max_batch_size=max_batch_size)
    engine = SearchEngine(
        policy, OracleScorer(WORLD), concurrency=concurrency, seed=3, progress=False
    )
    start = make_search(search_cfg, WORLD, max_solution_tokens=20)
    results = engine.run_all((p.id, start(p.question)) for p in problems)
    record = {
        key: {
            "steps": r.steps, "answer": r.answer, "finished": r.finished, "value": r.value,
            "tree": r.tree, "info": r.info, "policy_tokens": r.costs.policy_tokens,
            "prompt_tokens": r.costs.prompt_tokens, "prm_calls": r.costs.prm_calls,
        }
        for key, r in results.items()
    }
    return json.dumps(record, sort_keys=True, default=str), policy.stats["calls"]


@pytest.mark.parametrize("method", sorted(SEARCHES))
def test_search_results_ignore_concurrency_and_batch_size(model_and_tokenizer, method):
    problems = WORLD.generate(4, seed=2, split="test")
    cfg = SEARCHES[method]
    alone, calls_alone = run_search(model_and_tokenizer, cfg, problems, 1, 128)
    together, calls_together = run_search(model_and_tokenizer, cfg, problems, 16, 128)
    chunked, _ = run_search(model_and_tokenizer, cfg, problems, 16, 4)
    assert calls_together < calls_alone  # the questions did share calls
    assert together == alone
    assert chunked == alone
    other_seed = SearchEngine(
        backend(model_and_tokenizer), OracleScorer(WORLD), seed=4, progress=False
    ).run_all((p.id, make_search(cfg, WORLD, 20)(p.question)) for p in problems[:1])
    assert json.dumps(other_seed[problems[0].id].tree, sort_keys=True, default=str) not in alone

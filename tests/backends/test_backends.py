"""Tests for the Hugging Face policy backend and value scorer (tiny random models, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rest_mcts.backends import HFPolicyBackend, HFValueScorer, SamplingParams
from rest_mcts.models import (
    build_char_tokenizer,
    build_tiny_causal_lm,
    build_tiny_value_model,
    save_model,
)
from rest_mcts.models.value_head import last_token_positions, values_at_positions
from rest_mcts.prompts import prm_input

TINY = {"hidden_size": 48, "num_layers": 2, "num_heads": 4}
PROMPTS = ["Make 23 from 6 4 5\n", "Q\n", "Make 100 from 9 9 3 7\n6 * 4 = 24\n", "1 2\n"]
SPECIAL_IDS = (0, 1, 2, 3)


def _biased_lm_head(model: torch.nn.Module, bias: dict[int, float]) -> torch.nn.Module:
    """Give the (bias-free) LM head a bias, keeping its weight; returns the model."""
    old = model.lm_head
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    head.weight = old.weight
    with torch.no_grad():
        head.bias.zero_()
        for token_id, value in bias.items():
            head.bias[token_id] = value
    model.lm_head = head
    return model


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def policy(tokenizer):
    return build_tiny_causal_lm(tokenizer, **TINY, seed=1)


@pytest.fixture(scope="module")
def chatty_policy(tokenizer):
    """A random policy that never emits special tokens and often emits "\\n", "=" and " "."""
    model = build_tiny_causal_lm(tokenizer, **TINY, seed=2)
    bias = {i: -1e4 for i in SPECIAL_IDS}
    for char in "\n= ":
        bias[tokenizer.convert_tokens_to_ids(char)] = 2.5
    return _biased_lm_head(model, bias)


def _cycle_policy(tokenizer, cycle: str, last_to_eos: bool = False) -> torch.nn.Module:
    """A policy whose next token depends only on the current one: it writes ``cycle`` forever.

    Attention and MLP outputs are zeroed, so the last hidden state is the (one-hot) embedding of
    the current token, and the LM head maps each character of ``cycle`` to its successor and
    every other token to ``cycle[0]``. With ``last_to_eos`` the last character leads to eos.
    """
    vocab = len(tokenizer)
    model = build_tiny_causal_lm(tokenizer, hidden_size=128, num_layers=1, num_heads=4)
    ids = tokenizer.convert_tokens_to_ids(list(cycle))
    assert len(set(ids)) == len(ids), "cycle characters must be distinct"
    successor = {t: ids[0] for t in range(vocab)}
    successor.update({a: b for a, b in zip(ids, ids[1:] + ids[:1])})
    if last_to_eos:
        successor[ids[-1]] = tokenizer.eos_token_id
    head = torch.nn.Linear(128, vocab, bias=False)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[:, :vocab] = torch.eye(vocab)
        head.weight.zero_()
        for token, following in successor.items():
            head.weight[following, token] = 10.0
    model.lm_head = head
    return model


def _texts(outputs) -> list[list[tuple[str, int, str]]]:
    return [[(c.text, c.num_tokens, c.finish_reason) for c in o.completions] for o in outputs]


# --------------------------------------------------------------------------- policy backend


def test_batched_greedy_equals_unbatched(policy, tokenizer) -> None:
    backend = HFPolicyBackend(model=policy, tokenizer=tokenizer)
    params = SamplingParams(max_new_tokens=24, stop=("\n",))
    batched = backend.generate(PROMPTS, params)
    single = [backend.generate([prompt], params)[0] for prompt in PROMPTS]
    assert _texts(batched) == _texts(single)
    assert [o.prompt_tokens for o in batched] == [len(p) + 1 for p in PROMPTS]
    small_chunks = HFPolicyBackend(model=policy, tokenizer=tokenizer, max_batch_size=3)
    assert _texts(small_chunks.generate(PROMPTS, params)) == _texts(batched)


def test_greedy_is_deterministic_and_keeps_global_rng(policy, tokenizer) -> None:
    backend = HFPolicyBackend(model=policy, tokenizer=tokenizer)
    params = SamplingParams(max_new_tokens=16)
    state = torch.get_rng_state()
    first = backend.generate(PROMPTS, params)
    assert _texts(backend.generate(PROMPTS, params)) == _texts(first)
    seeded = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=7)
    backend.generate(PROMPTS, seeded)
    assert torch.equal(state, torch.get_rng_state())


def test_sampling_n_and_seeds(chatty_policy, tokenizer) -> None:
    backend = HFPolicyBackend(model=chatty_policy, tokenizer=tokenizer)
    params = SamplingParams(n=5, temperature=1.0, top_p=0.95, max_new_tokens=20, seed=11)
    outputs = backend.generate(PROMPTS[:3], params)
    assert len(outputs) == 3
    assert all(len(o.completions) == 5 for o in outputs)
    assert _texts(backend.generate(PROMPTS[:3], params)) == _texts(outputs)
    other = SamplingParams(n=5, temperature=1.0, top_p=0.95, max_new_tokens=20, seed=12)
    assert _texts(backend.generate(PROMPTS[:3], other)) != _texts(outputs)
    texts = {c.text for o in outputs for c in o.completions}
    assert len(texts) > 1  # samples differ from one another


def test_n_larger_than_max_batch_size(chatty_policy, tokenizer) -> None:
    backend = HFPolicyBackend(model=chatty_policy, tokenizer=tokenizer, max_batch_size=4)
    params = SamplingParams(n=6, temperature=1.0, max_new_tokens=5, seed=3)
    outputs = backend.generate(PROMPTS[:2], params)
    assert [len(o.completions) for o in outputs] == [6, 6]
    assert backend.stats["calls"] == 1


def _expected_cut(text: str, stop: str) -> tuple[str, int, str]:
    """Expected completion for a char-level model with no special tokens in its output."""
    index = text.find(stop)
    if index < 0:
        return text, len(text), "length"
    end = index + len(stop)
    return text[:end], end, "stop"


@pytest.mark.parametrize("stop", ["\n", "= "])
@pytest.mark.parametrize("greedy", [True, False])
def test_stop_strings_cut_text(chatty_policy, tokenizer, stop: str, greedy: bool) -> None:
    backend = HFPolicyBackend(model=chatty_policy, tokenizer=tokenizer)
    sampling = {"temperature": 0.0} if greedy else {"n": 6, "temperature": 1.0, "seed": 5}
    reference = backend.generate(PROMPTS, SamplingParams(max_new_tokens=40, **sampling))
    stopped = backend.generate(PROMPTS, SamplingParams(max_new_tokens=40, stop=(stop,), **sampling))
    expected = [[_expected_cut(c.text, stop) for c in o.completions] for o in reference]
    assert _texts(stopped) == expected
    reasons = [c.finish_reason for o in stopped for c in o.completions]
    if not greedy:  # the random greedy policy may never produce "= "
        assert "stop" in reasons
    for output in stopped:
        for completion in output.completions:
            assert completion.text.count(stop) == (completion.finish_reason == "stop")


def test_multiple_stops_first_one_wins(chatty_policy, tokenizer) -> None:
    backend = HFPolicyBackend(model=chatty_policy, tokenizer=tokenizer)
    params = SamplingParams(n=6, temperature=1.0, seed=9, max_new_tokens=40)
    reference = backend.generate(PROMPTS, params)
    stops = ("= ", "\n")
    stopped = backend.generate(
        PROMPTS, SamplingParams(n=6, temperature=1.0, seed=9, max_new_tokens=40, stop=stops)
    )
    for ref, out in zip(reference, stopped):
        for ref_c, out_c in zip(ref.completions, out.completions):
            ends = [ref_c.text.find(s) + len(s) for s in stops if s in ref_c.text]
            end = min(ends) if ends else len(ref_c.text)
            assert out_c.text == ref_c.text[:end]
            assert out_c.num_tokens == end
            assert out_c.finish_reason == ("stop" if ends else "length")


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        (("\n",), ("1+2= 3\n", 7, "stop")),
        (("= ",), ("1+2= ", 5, "stop")),
        ((" 3",), ("1+2= 3", 6, "stop")),
        (("\n", "= "), ("1+2= ", 5, "stop")),
        (("3\n1+",), ("1+2= 3\n1+", 9, "stop")),
        (("x",), ("1+2= 3\n1+2= 3\n1+", 16, "length")),
    ],
)
def test_stops_on_known_text(tokenizer, stop: tuple[str, ...], expected) -> None:
    backend = HFPolicyBackend(model=_cycle_policy(tokenizer, "1+2= 3\n"), tokenizer=tokenizer)
    for sampling in ({"temperature": 0.0}, {"n": 3, "temperature": 1.0, "seed": 0}):
        params = SamplingParams(max_new_tokens=16, stop=stop, **sampling)
        outputs = backend.generate(PROMPTS, params)
        assert _texts(outputs) == [[expected] * params.n] * len(PROMPTS)


def test_eos_after_text(tokenizer) -> None:
    model = _cycle_policy(tokenizer, "1+2= 3", last_to_eos=True)
    backend = HFPolicyBackend(model=model, tokenizer=tokenizer)
    for stop in ((), ("\n",), ("= 4",)):
        outputs = backend.generate(PROMPTS, SamplingParams(n=2, max_new_tokens=16, stop=stop))
        assert _texts(outputs) == [[("1+2= 3", 7, "eos")] * 2] * len(PROMPTS)
    assert backend.stats["generated_tokens"] == 3 * 2 * len(PROMPTS) * 7


def test_single_token_stop_fast_path(tokenizer, policy) -> None:
    backend = HFPolicyBackend(model=policy, tokenizer=tokenizer)
    newline = tokenizer.convert_tokens_to_ids("\n")
    assert backend._split_stops(("\n", "= ", "<s>")) == ([newline], ["= ", "<s>"])


def test_length_and_eos(tokenizer) -> None:
    no_specials = _biased_lm_head(
        build_tiny_causal_lm(tokenizer, **TINY, seed=3), {i: -1e4 for i in SPECIAL_IDS}
    )
    backend = HFPolicyBackend(model=no_specials, tokenizer=tokenizer)
    for output in backend.generate(PROMPTS, SamplingParams(max_new_tokens=7)):
        (completion,) = output.completions
        assert completion.finish_reason == "length"
        assert completion.num_tokens == 7
        assert len(completion.text) == 7

    eos_first = _biased_lm_head(
        build_tiny_causal_lm(tokenizer, **TINY, seed=3), {tokenizer.eos_token_id: 1e4}
    )
    backend = HFPolicyBackend(model=eos_first, tokenizer=tokenizer)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=7, stop=("\n", "= "), seed=0)
    for output in backend.generate(PROMPTS, params):
        for completion in output.completions:
            assert (completion.text, completion.num_tokens, completion.finish_reason) == (
                "",
                1,
                "eos",
            )


def test_stats_count_tokens(chatty_policy, tokenizer) -> None:
    backend = HFPolicyBackend(model=chatty_policy, tokenizer=tokenizer)
    params = SamplingParams(n=2, temperature=1.0, seed=1, max_new_tokens=9)
    outputs = backend.generate(PROMPTS, params)
    assert backend.stats["calls"] == 1
    assert backend.stats["prompts"] == len(PROMPTS)
    assert backend.stats["prompt_tokens"] == sum(len(p) + 1 for p in PROMPTS)
    assert backend.stats["generated_tokens"] == sum(
        c.num_tokens for o in outputs for c in o.completions
    )
    assert backend.generate([], SamplingParams()) == []


def test_policy_backend_loads_from_path(policy, tokenizer, tmp_path: Path) -> None:
    save_model(policy, tokenizer, tmp_path / "policy")
    loaded = HFPolicyBackend(str(tmp_path / "policy"))
    in_memory = HFPolicyBackend(model=policy, tokenizer=tokenizer)
    params = SamplingParams(max_new_tokens=12, stop=("\n",))
    assert _texts(loaded.generate(PROMPTS, params)) == _texts(in_memory.generate(PROMPTS, params))
    with pytest.raises(ValueError):
        HFPolicyBackend()


# --------------------------------------------------------------------------- value scorer

ITEMS = [
    ("Make 23 from 6 4 5", ["6 * 4 = 24", "24 - 5 = 19"]),
    ("Q", []),
    ("Make 100 from 9 9 3 7", ["9 * 9 = 81"]),
    ("1 2", ["a", "bb", "ccc", "dddd"]),
]


def _set_score_head(model: torch.nn.Module, scale: float, bias: float) -> torch.nn.Module:
    """Replace the value head by ``scale * old_head + bias`` (a linear layer with a bias)."""
    old = model.score
    head = torch.nn.Linear(old.in_features, 1, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight * scale)
        head.bias.fill_(bias)
    model.score = head
    return model


@pytest.fixture(scope="module")
def value_model(tokenizer):
    # scores well inside (0, 1) so that clamping cannot hide a wrong position
    return _set_score_head(build_tiny_value_model(tokenizer, **TINY, seed=6), 0.5, 0.5)


def test_last_token_positions() -> None:
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]])
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    assert last_token_positions(left).tolist() == [3, 3, 3]
    assert last_token_positions(right).tolist() == [1, 3, 0]


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_scorer_batch_equals_single(value_model, padding_side: str) -> None:
    tokenizer = build_char_tokenizer(padding_side=padding_side)
    scorer = HFValueScorer(model=value_model, tokenizer=tokenizer)
    batched = scorer.score(ITEMS)
    single = [scorer.score([item])[0] for item in ITEMS]
    assert all(0.05 < v < 0.95 for v in batched)
    assert batched == pytest.approx(single, abs=1e-5)
    assert len(set(round(v, 4) for v in batched)) == len(ITEMS)
    small = HFValueScorer(model=value_model, tokenizer=tokenizer, max_batch_size=3)
    assert small.score(ITEMS) == pytest.approx(batched, abs=1e-5)
    assert scorer.stats["items"] == 2 * len(ITEMS)
    assert scorer.stats["calls"] == 1 + len(ITEMS)


def test_scorer_does_not_read_pad_positions(value_model, tokenizer) -> None:
    """Left and right padding give the same values (a pad-position read would differ)."""
    left = HFValueScorer(model=value_model, tokenizer=build_char_tokenizer("left"))
    right = HFValueScorer(model=value_model, tokenizer=build_char_tokenizer("right"))
    assert left.score(ITEMS) == pytest.approx(right.score(ITEMS), abs=1e-5)


@pytest.mark.parametrize(("bias", "expected"), [(5.0, 1.0), (-5.0, 0.0)])
def test_scorer_clamps(tokenizer, bias: float, expected: float) -> None:
    model = _set_score_head(build_tiny_value_model(tokenizer, **TINY, seed=6), 0.0, bias)
    values = HFValueScorer(model=model, tokenizer=tokenizer).score(ITEMS)
    assert values == [expected] * len(ITEMS)


def test_scorer_clamps_mixed_range(tokenizer) -> None:
    model = _set_score_head(build_tiny_value_model(tokenizer, **TINY, seed=6), 400.0, 0.5)
    values = HFValueScorer(model=model, tokenizer=tokenizer).score(ITEMS)
    assert all(0.0 <= v <= 1.0 for v in values)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_values_at_positions_match_prefix_scores(value_model, padding_side: str) -> None:
    tokenizer = build_char_tokenizer(padding_side=padding_side)
    scorer = HFValueScorer(model=value_model, tokenizer=tokenizer)
    paths = [ITEMS[3], ITEMS[0]]  # different lengths: the second row is padded
    texts = [prm_input(question, steps) for question, steps in paths]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    mask = batch["attention_mask"]
    positions, expected = [], []
    for row, (question, steps) in enumerate(paths):
        pad = int((mask[row] == 0).sum()) if padding_side == "left" else 0
        prefixes = [steps[:k] for k in range(len(steps) + 1)][-3:]  # last 3 prefixes
        positions.append(
            [pad + len(tokenizer(prm_input(question, p))["input_ids"]) - 1 for p in prefixes]
        )
        expected.append(scorer.score([(question, p) for p in prefixes]))
    with torch.inference_mode():
        values = values_at_positions(
            value_model, batch["input_ids"], mask, torch.tensor(positions)
        )
        last = values_at_positions(
            value_model, batch["input_ids"], mask, last_token_positions(mask)
        )
    assert values.shape == (2, 3)
    torch.testing.assert_close(values, torch.tensor(expected), rtol=0, atol=1e-5)
    torch.testing.assert_close(last, values[:, -1], rtol=0, atol=1e-5)


def test_value_scorer_loads_from_path(value_model, tokenizer, tmp_path: Path) -> None:
    model = build_tiny_value_model(tokenizer, **TINY, seed=8)
    save_model(model, tokenizer, tmp_path / "prm")
    loaded = HFValueScorer(str(tmp_path / "prm"))
    in_memory = HFValueScorer(model=model, tokenizer=tokenizer)
    assert loaded.score(ITEMS) == pytest.approx(in_memory.score(ITEMS), abs=1e-6)


@pytest.mark.parametrize("stop", [(), ("\n",), ("= ",)])
def test_compact_decoder_matches_generate_greedy(chatty_policy, tokenizer, stop) -> None:
    """The own decode loop (finished rows leave the batch) writes what model.generate writes."""
    params = SamplingParams(n=2, temperature=0.0, max_new_tokens=30, stop=stop)
    compact = HFPolicyBackend(model=chatty_policy, tokenizer=tokenizer, decoder="compact")
    reference = HFPolicyBackend(model=chatty_policy, tokenizer=tokenizer, decoder="generate")
    got, want = compact.generate(PROMPTS, params), reference.generate(PROMPTS, params)
    assert _texts(got) == _texts(want)
    assert [[c.finish_reason for c in o.completions] for o in got] == [
        [c.finish_reason for c in o.completions] for o in want
    ]


def test_compact_decoder_rejects_unknown_decoder(chatty_policy, tokenizer) -> None:
    with pytest.raises(ValueError, match="decoder"):
        HFPolicyBackend(model=chatty_policy, tokenizer=tokenizer, decoder="fast")


# ---------------------------------------------------------------------------- context length
def test_policy_prompt_longer_than_the_context_keeps_its_end(policy, tokenizer, caplog) -> None:
    long_prompt = "1 2 3 4 5 6 7 8 9\n" * 3
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=4)
    capped = HFPolicyBackend(model=policy, tokenizer=tokenizer, context_length=24)
    room = 24 - 4
    end = tokenizer.decode(tokenizer(long_prompt)["input_ids"][-room:])
    with caplog.at_level("WARNING"):
        (out,) = capped.generate([long_prompt], params)
    assert "model.context_length=24" in caplog.text
    assert out.prompt_tokens == room and capped.stats["truncated_prompts"] == 1
    (same,) = HFPolicyBackend(model=policy, tokenizer=tokenizer).generate([end], params)
    assert out.completions[0].text == same.completions[0].text  # what the model saw: the end
    short = capped.generate(["Q\n"], params)[0]  # short prompts are untouched
    assert short.prompt_tokens == len(tokenizer("Q\n")["input_ids"])
    with pytest.raises(ValueError, match="leaves no room"):
        capped.generate(["Q\n"], SamplingParams(n=1, temperature=0.0, max_new_tokens=24))


def test_scorer_input_longer_than_the_context_keeps_its_end(value_model, tokenizer) -> None:
    steps = ("6 * 4 = 24\n", "24 - 1 = 23\n")
    capped = HFValueScorer(model=value_model, tokenizer=tokenizer, context_length=12)
    ids = tokenizer(prm_input("Make 23 from 6 4 5", steps))["input_ids"]
    assert len(ids) > 12
    input_ids = torch.tensor([ids[-12:]])  # the last 12 tokens, scored by hand
    mask = torch.ones_like(input_ids)
    with torch.inference_mode():
        value = values_at_positions(value_model, input_ids, mask, last_token_positions(mask))
    got = capped.score([("Make 23 from 6 4 5", steps)])
    assert got[0] == pytest.approx(float(value.clamp(0, 1)[0]), abs=1e-6)
    assert capped.stats["truncated"] == 1

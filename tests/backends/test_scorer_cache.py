"""Tests for the value scorer's prefix KV cache: cached values equal whole forward passes."""

from __future__ import annotations

import logging

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, processors
from transformers import PreTrainedTokenizerFast

from rest_mcts.backends import HFValueScorer
from rest_mcts.models import build_char_tokenizer, build_tiny_value_model
from rest_mcts.models.tokenizer import BOS_TOKEN, CHARACTERS, SPECIAL_TOKENS
from rest_mcts.prompts import prm_input

TINY = {"hidden_size": 48, "num_layers": 2, "num_heads": 4}
Q1 = "Make 23 from 6 4 5"
Q2 = "Make 100 from 9 9 3 7"
Q3 = "Use 1 2 3 4 to make 10"
STEPS = ["6 * 4 = 24", "24 - 5 = 19", "19 + 4 = 23", "x"]

# Roots and first steps, scored first so that later items find their ancestors.
WARM = [(Q1, []), (Q1, STEPS[:1]), (Q2, []), (Q2, ["9 * 9 = 81"])]
# A mixed batch: one new step on a 1-step prefix, three new steps on a root (a grandparent
# only), a 2-step extension, no cached prefix at all (new question), and different lengths.
MIXED = [
    (Q1, STEPS[:2]),
    (Q2, ["9 * 9 = 81", "81 + 7 = 88"]),
    (Q3, ["1 + 2 = 3"]),
    (Q2, ["9 + 9 = 18", "18 - 3 = 15", "15 - 7 = 8"]),
    (Q1, ["6 + 4 = 10"]),
    (Q3, []),
]


def _set_score_head(model: torch.nn.Module) -> torch.nn.Module:
    """Values well inside (0, 1): ``0.5 * old_head + 0.5``, so clamping cannot hide errors."""
    old = model.score
    head = torch.nn.Linear(old.in_features, 1, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight * 0.5)
        head.bias.fill_(0.5)
    model.score = head
    return model


@pytest.fixture(scope="module")
def value_model():
    return _set_score_head(build_tiny_value_model(build_char_tokenizer(), **TINY, seed=6))


def _pair(model, tokenizer, tokens: int = 100_000, **kwargs):
    cached = HFValueScorer(model=model, tokenizer=tokenizer, prefix_cache_tokens=tokens, **kwargs)
    plain = HFValueScorer(model=model, tokenizer=tokenizer, **kwargs)
    return cached, plain


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_cached_values_equal_uncached(value_model, padding_side: str) -> None:
    tokenizer = build_char_tokenizer(padding_side=padding_side)
    cached, plain = _pair(value_model, tokenizer)
    assert cached.prefix_cache is not None
    for warm in (WARM[0::2], WARM[1::2]):  # the roots, then their first steps
        assert cached.score(warm) == pytest.approx(plain.score(warm), abs=1e-5)
    assert cached.stats["prefix_hits"] == 2  # each first step extends its root
    values = cached.score(MIXED)
    expected = plain.score(MIXED)
    assert values == pytest.approx(expected, abs=1e-5)
    assert all(0.05 < v < 0.95 for v in values)
    assert len(set(round(v, 4) for v in values)) == len(MIXED)
    # all but the new question's two items reuse a stored prefix
    assert cached.stats["prefix_hits"] == 2 + 4
    assert 0 < cached.stats["reused_tokens"] < cached.stats["tokens"]
    assert cached.stats["tokens"] == plain.stats["tokens"]
    assert cached.stats["items"] == plain.stats["items"] and cached.stats["calls"] == 3
    # next generation: every item extends a prefix stored by the mixed batch
    deeper = [(q, [*steps, "1 + 1 = 2"]) for q, steps in MIXED]
    assert cached.score(deeper) == pytest.approx(plain.score(deeper), abs=1e-5)
    assert cached.stats["prefix_hits"] == 2 + 4 + len(deeper)


def test_left_and_right_padding_agree_with_cache(value_model) -> None:
    left, _ = _pair(value_model, build_char_tokenizer("left"))
    right, _ = _pair(value_model, build_char_tokenizer("right"))
    for scorer in (left, right):
        scorer.score(WARM[0::2])
        scorer.score(WARM[1::2])
    assert left.score(MIXED) == pytest.approx(right.score(MIXED), abs=1e-5)


def test_raw_values_match_to_1e5_without_clamping(value_model) -> None:
    """Compare the unclamped head outputs of cached and whole passes on a longer chain."""
    tokenizer = build_char_tokenizer()
    cached, plain = _pair(value_model, tokenizer)
    chain = [(Q1, STEPS[:k]) for k in range(len(STEPS) + 1)]
    got = [cached.score([item])[0] for item in chain]  # each extends the previous one
    assert cached.stats["prefix_hits"] == len(STEPS)
    assert got == pytest.approx(plain.score(chain), abs=1e-5)


def test_exact_hits_and_duplicates(value_model) -> None:
    tokenizer = build_char_tokenizer()
    cached, plain = _pair(value_model, tokenizer)
    first = cached.score(WARM + [WARM[1]])  # a duplicate within one call
    assert first[1] == first[-1]
    again = cached.score(list(reversed(WARM)))
    assert again == list(reversed(first[:-1]))
    assert cached.stats["exact_hits"] == len(WARM)
    # a step with and without its newline gives the same text: found under both names
    assert cached.score([(Q1, ["6 * 4 = 24\n"])]) == [first[1]]
    assert cached.stats["exact_hits"] == len(WARM) + 1
    assert first[:-1] == pytest.approx(plain.score(WARM), abs=1e-5)


def _merging_tokenizer(padding_side: str) -> PreTrainedTokenizerFast:
    """The character tokenizer plus one merge, "\\n" + "2" -> "\\n2": a step that starts with
    "2" changes the last token of the prefix before it."""
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    vocab["\n2"] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[("\n", "2")], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", special_tokens=[(BOS_TOKEN, vocab[BOS_TOKEN])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS_TOKEN, eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", padding_side=padding_side, clean_up_tokenization_spaces=False,
    )


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_token_boundary_falls_back_to_common_prefix(padding_side: str) -> None:
    tokenizer = _merging_tokenizer(padding_side)
    model = _set_score_head(build_tiny_value_model(tokenizer, **TINY, seed=7))
    parent, child = (Q1, STEPS[:1]), (Q1, STEPS[:2])  # the child's new step starts with "2"
    parent_ids = tokenizer(prm_input(*parent))["input_ids"]
    child_ids = tokenizer(prm_input(*child))["input_ids"]
    assert child_ids[: len(parent_ids)] != parent_ids  # the boundary token merged
    assert child_ids[: len(parent_ids) - 1] == parent_ids[:-1]
    cached, plain = _pair(model, tokenizer)
    cached.score([parent])
    assert cached.score([child]) == pytest.approx(plain.score([child]), abs=1e-5)
    assert cached.stats["prefix_hits"] == 1
    # only the common part is reused: the parent minus its last token
    assert cached.stats["reused_tokens"] == len(parent_ids) - 1


def test_lru_budget(value_model) -> None:
    tokenizer = build_char_tokenizer()
    lengths = [len(tokenizer(prm_input(*item))["input_ids"]) for item in WARM]
    budget = lengths[2] + lengths[3] + 2  # room for two of the four
    cached, plain = _pair(value_model, tokenizer, tokens=budget)
    cache = cached.prefix_cache

    def stored(item) -> bool:
        return cache.lookup((item[0], tuple(item[1]))) is not None

    for item in WARM:
        cached.score([item])
        assert cache.tokens <= budget
    assert len(cache) == 2
    assert not stored(WARM[0]) and not stored(WARM[1])  # the oldest went first
    assert stored(WARM[2]) and stored(WARM[3])
    # a use refreshes an entry: Q2's root survives the next insertion, its child does not
    cached.score([WARM[2]])
    cached.score([WARM[0]])
    assert stored(WARM[2]) and not stored(WARM[3]) and stored(WARM[0])
    assert cache.tokens <= budget
    hits = cached.stats["prefix_hits"]
    assert cached.score([WARM[3]]) == pytest.approx(plain.score([WARM[3]]), abs=1e-5)
    assert cached.stats["prefix_hits"] == hits + 1  # extended the root again
    # an item longer than the whole budget is scored but not stored
    tiny, _ = _pair(value_model, tokenizer, tokens=3)
    assert tiny.score(WARM) == pytest.approx(plain.score(WARM), abs=1e-5)
    assert len(tiny.prefix_cache) == 0
    cached.clear_cache()
    assert len(cache) == 0 and cache.tokens == 0


def test_chunks_and_window_limit(value_model) -> None:
    """Batches split by max_batch_size; a model window bounds what is cached."""
    tokenizer = build_char_tokenizer("right")
    cached, plain = _pair(value_model, tokenizer, max_batch_size=2)
    cached.score(WARM[0::2])
    cached.score(WARM[1::2])
    assert cached.stats["prefix_hits"] == 2
    assert cached.score(MIXED) == pytest.approx(plain.score(MIXED), abs=1e-5)
    value_model.config.sliding_window = 30
    try:
        windowed = HFValueScorer(model=value_model, tokenizer=tokenizer, prefix_cache_tokens=1000)
    finally:
        value_model.config.sliding_window = None
    windowed.score(WARM[0::2])
    windowed.score(WARM[1::2])
    assert all(len(ids) <= 30 for ids in windowed.prefix_cache._entries)
    assert windowed.score(MIXED) == pytest.approx(plain.score(MIXED), abs=1e-5)


def test_disabled_cache_is_the_plain_path(value_model, caplog) -> None:
    tokenizer = build_char_tokenizer()
    plain = HFValueScorer(model=value_model, tokenizer=tokenizer, prefix_cache_tokens=0)
    assert plain.prefix_cache is None
    plain.score(WARM)
    plain.score(WARM)
    assert set(plain.stats) == {"calls", "items", "tokens", "truncated", "seconds"}
    plain.clear_cache()  # a no-op
    with pytest.raises(ValueError):
        HFValueScorer(model=value_model, tokenizer=tokenizer, prefix_cache_tokens=-1)
    # a model whose layers are not all full attention is scored without the cache
    value_model.config.layer_types = ["full_attention", "sliding_attention"]
    try:
        with caplog.at_level(logging.WARNING):
            other = HFValueScorer(model=value_model, tokenizer=tokenizer, prefix_cache_tokens=100)
    finally:
        del value_model.config.layer_types
    assert other.prefix_cache is None
    assert "prefix KV cache disabled" in caplog.text

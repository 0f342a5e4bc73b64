"""Tests for the character tokenizer and the model factory (tiny random models, CPU)."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import torch

from rest_mcts.models import (
    build_char_tokenizer,
    build_tiny_causal_lm,
    build_tiny_value_model,
    count_parameters,
    load_causal_lm,
    load_tokenizer,
    load_value_model,
    save_model,
    value_model_from_causal_lm,
)

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 4}


@pytest.fixture(scope="module")
def tokenizer():
    return build_char_tokenizer()


def test_tokenizer_special_ids_and_vocab(tokenizer) -> None:
    assert tokenizer.pad_token_id == 0
    assert tokenizer.convert_tokens_to_ids(["<s>", "</s>", "<unk>"]) == [1, 2, 3]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (1, 2, 3)
    assert len(tokenizer) == 4 + 1 + 95
    assert tokenizer.padding_side == "left"
    assert build_char_tokenizer(padding_side="right").padding_side == "right"
    with pytest.raises(ValueError):
        build_char_tokenizer(padding_side="middle")


@pytest.mark.parametrize(
    "text",
    [
        "Make 23 from 6 4 5\n",
        "  two  spaces, then\n\nblank lines\n",
        "6 * 4 = 24\n24 - 1 = 23\n",
        "".join(c for c in string.printable if c not in "\t\r\x0b\x0c"),
        "",
        " ",
        "\n",
    ],
)
def test_tokenizer_round_trip(tokenizer, text: str) -> None:
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.eos_token_id not in ids
    assert len(ids) == len(text) + 1  # one token per character
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_unknown_char_and_padding(tokenizer) -> None:
    ids = tokenizer("a\u00e9b")["input_ids"]
    assert ids == [1, tokenizer.convert_tokens_to_ids("a"), 3, tokenizer.convert_tokens_to_ids("b")]
    batch = tokenizer(["ab", "abcd"], padding=True)
    assert batch["input_ids"][0][:2] == [0, 0]
    assert batch["attention_mask"][0] == [0, 0, 1, 1, 1]


def test_tokenizer_save_load(tokenizer, tmp_path: Path) -> None:
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    text = "1 + 2 = 3\n x"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"], skip_special_tokens=True) == text
    assert loaded.padding_side == "left"


def test_tiny_causal_lm_config_and_size(tokenizer) -> None:
    model = build_tiny_causal_lm(tokenizer)
    config = model.config
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (0, 1, 2)
    assert config.vocab_size == len(tokenizer)
    assert 0.45e6 < count_parameters(model) < 0.6e6
    assert not model.training
    same = build_tiny_causal_lm(tokenizer)
    assert torch.equal(model.lm_head.weight, same.lm_head.weight)  # seeded init


def test_build_does_not_touch_global_rng(tokenizer) -> None:
    state = torch.get_rng_state()
    build_tiny_causal_lm(tokenizer, **TINY)
    assert torch.equal(state, torch.get_rng_state())


def test_causal_lm_save_load_same_logits(tokenizer, tmp_path: Path) -> None:
    model = build_tiny_causal_lm(tokenizer, **TINY, seed=3)
    save_model(model, tokenizer, tmp_path / "policy")
    assert (tmp_path / "policy" / "model.safetensors").is_file()
    loaded = load_causal_lm(tmp_path / "policy")
    batch = tokenizer(["Make 23 from 6 4 5\n", "x"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits
        actual = loaded(**batch).logits
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    assert load_tokenizer(tmp_path / "policy")("ab")["input_ids"] == tokenizer("ab")["input_ids"]


def test_value_model_save_load_same_values(tokenizer, tmp_path: Path) -> None:
    model = build_tiny_value_model(tokenizer, **TINY, seed=4)
    assert model.config.num_labels == 1
    assert model.config.problem_type == "regression"
    assert model.config.pad_token_id == tokenizer.pad_token_id
    save_model(model, tokenizer, tmp_path / "prm")
    loaded = load_value_model(tmp_path / "prm")
    batch = tokenizer(["q\nstep 1\n", "question\n"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)


def test_value_model_from_causal_lm(tokenizer, tmp_path: Path) -> None:
    policy = build_tiny_causal_lm(tokenizer, **TINY, seed=5)
    save_model(policy, tokenizer, tmp_path / "policy")
    from_path = value_model_from_causal_lm(tmp_path / "policy")
    from_model = value_model_from_causal_lm(policy)
    for value_model in (from_path, from_model):
        assert value_model.config.num_labels == 1
        assert value_model.config.problem_type == "regression"
        assert value_model.config.pad_token_id == tokenizer.pad_token_id
        backbone = value_model.model.state_dict()
        for name, tensor in policy.model.state_dict().items():
            torch.testing.assert_close(backbone[name], tensor, rtol=0, atol=0)
    # the score head is initialised with a fixed seed
    torch.testing.assert_close(from_path.score.weight, from_model.score.weight, rtol=0, atol=0)


def test_missing_model_path_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    for loader in (load_causal_lm, load_value_model, value_model_from_causal_lm):
        with pytest.raises(FileNotFoundError, match=f"model path '{missing}' not found"):
            loader(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_causal_lm(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="tokenizer path"):
        load_tokenizer(missing)


def test_package_import_is_lazy() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys, rest_mcts.models, rest_mcts.backends; "
        "print('torch' in sys.modules or 'transformers' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------- hub ids
HUB_ID = "meta-math/MetaMath-Mistral-7B"


def test_hub_id_reaches_from_pretrained_unchanged(monkeypatch, tokenizer) -> None:
    """A hub id is not a local folder: it goes to from_pretrained as it is (which downloads
    it when there is network); nothing is downloaded here."""
    from rest_mcts.models import factory

    seen: list[tuple[str, object]] = []
    causal = build_tiny_causal_lm(tokenizer, **TINY)
    value = build_tiny_value_model(tokenizer, **TINY)

    def fake(kind, result):
        def from_pretrained(source, *args, **kwargs):
            seen.append((kind, source))
            return result
        return from_pretrained

    monkeypatch.setattr(factory.AutoModelForCausalLM, "from_pretrained", fake("lm", causal))
    monkeypatch.setattr(
        factory.AutoModelForSequenceClassification, "from_pretrained", fake("value", value)
    )
    monkeypatch.setattr(factory.AutoTokenizer, "from_pretrained", fake("tok", tokenizer))
    monkeypatch.setattr(factory.AutoConfig, "from_pretrained", fake("config", causal.config))
    assert load_causal_lm(HUB_ID) is causal
    assert load_value_model(HUB_ID) is value
    assert load_tokenizer(HUB_ID) is tokenizer
    value_model_from_causal_lm(HUB_ID)
    assert seen == [("lm", HUB_ID), ("value", HUB_ID), ("tok", HUB_ID), ("config", HUB_ID),
                    ("value", HUB_ID)]
    assert all(type(source) is str for _, source in seen)

    from rest_mcts.backends import HFPolicyBackend

    backend = HFPolicyBackend(HUB_ID)  # the backend loads through the same functions
    assert backend.model is causal and backend.tokenizer is tokenizer


@pytest.mark.parametrize("path", ["./missing-model", "/no/such/model", "~/no-such-model",
                                  "a/b/c"])
def test_local_looking_missing_path_is_not_taken_for_a_hub_id(path) -> None:
    for loader in (load_causal_lm, load_value_model, value_model_from_causal_lm):
        with pytest.raises(FileNotFoundError, match="model path .* not found"):
            loader(path)
    with pytest.raises(FileNotFoundError, match="tokenizer path"):
        load_tokenizer(path)

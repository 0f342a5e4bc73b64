"""LoRA through peft: wrapping, what trains, merged saves that the backends load."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from rest_mcts.backends.hf_scorer import HFValueScorer
from rest_mcts.models.factory import (
    build_tiny_causal_lm,
    build_tiny_value_model,
    load_causal_lm,
    save_model,
)
from rest_mcts.models.tokenizer import build_char_tokenizer
from rest_mcts.training.knobs import hf_model, is_peft, mergeable_model, prepare_model
from rest_mcts.training.policy_sft import PolicySFTModule
from rest_mcts.training.prm import PRMRegressionModule
from rest_mcts.training.prm_data import ValueDataModule
from rest_mcts.training.sft_data import build_sft_data, solution_example

from tests.training.test_policy_training import TINY, correct_solutions
from tests.training.test_prm_training import countdown_rows

pytest.importorskip("peft")

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


def fit(module, data, steps: int = 8) -> None:
    trainer = L.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data)


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.slow
def test_policy_lora_trains_only_adapter_weights():
    tok = build_char_tokenizer()
    model = prepare_model(build_tiny_causal_lm(tok, **TINY), task="causal_lm", lora=LORA)
    assert is_peft(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable} == {"q_proj", "v_proj"}

    before = snapshot(model)
    examples = [solution_example(r["question"], r["steps"]) for r in correct_solutions(32)]
    data = build_sft_data(tok, examples, val_share=0.0, batch_size=8, max_length=128)
    fit(PolicySFTModule(model, lr=1e-2, warmup_ratio=0.0), data)
    after = snapshot(model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and changed <= trainable  # frozen base weights did not move
    assert any("lora_A" in n for n in changed) and any("lora_B" in n for n in changed)


@pytest.mark.slow
def test_prm_lora_trains_adapters_and_the_value_head():
    tok = build_char_tokenizer()
    model = prepare_model(build_tiny_value_model(tok, **TINY), task="value", lora=LORA)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable), "the regression head must stay trainable"
    assert all("lora_" in n or "score.modules_to_save" in n for n in trainable)

    before = snapshot(model)
    data = ValueDataModule(tok, rows=countdown_rows(40), batch_size=16, max_length=128)
    fit(PRMRegressionModule(model, lr=1e-2, warmup_ratio=0.0, val_rows=data.val_set.rows), data)
    after = snapshot(model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed <= trainable
    assert any("score" in n for n in changed) and any("lora_" in n for n in changed)


def test_lora_policy_merges_into_a_plain_model_that_loads(tmp_path):
    tok = build_char_tokenizer()
    model = prepare_model(build_tiny_causal_lm(tok, **TINY), task="causal_lm", lora=LORA)
    with torch.no_grad():  # non-zero adapters, so that merging matters
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    ids = torch.tensor([[1, 20, 30, 40, 50, 60]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    save_model(mergeable_model(model), tok, tmp_path / "policy")
    assert not list((tmp_path / "policy").glob("adapter_*")), "a merged model, not adapters"
    loaded = load_causal_lm(tmp_path / "policy")
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, expected, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_lora_prm_saved_model_scores_like_the_trained_one(tmp_path):
    """save -> load -> score: the HF scorer on the saved folder gives the trained values."""
    tok = build_char_tokenizer()
    model = prepare_model(build_tiny_value_model(tok, **TINY), task="value", lora=LORA)
    data = ValueDataModule(tok, rows=countdown_rows(40), batch_size=16, max_length=128)
    module = PRMRegressionModule(model, lr=1e-2, warmup_ratio=0.0, val_rows=data.val_set.rows)
    fit(module, data)
    items = [(r.question, r.steps) for r in data.val_set.rows[:8]]
    in_memory = HFValueScorer(model=hf_model(module.model), tokenizer=tok).score(items)
    save_model(mergeable_model(module.model), tok, tmp_path / "prm")
    loaded = HFValueScorer(str(tmp_path / "prm")).score(items)
    assert loaded == pytest.approx(in_memory, abs=1e-5)

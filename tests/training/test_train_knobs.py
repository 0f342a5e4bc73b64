"""Scaling knobs in config: trainer strategies, precision, accumulation, gradient
checkpointing, LoRA options (one-line errors); PRM training end to end via train_prm_model."""

from __future__ import annotations

import json
import re

import pytest
import torch

from rest_mcts.config import ConfigError, instantiate
from rest_mcts.models.factory import build_tiny_causal_lm, save_model
from rest_mcts.models.tokenizer import build_char_tokenizer
from rest_mcts.training.knobs import check_training_config, lora_options, prepare_model

from tests.training.test_policy_training import TINY


@pytest.mark.parametrize("name", ["ddp", "fsdp", "deepspeed"])
def test_strategy_configs_compose_on_gpu(compose_cfg, name):
    cfg = compose_cfg(f"trainer={name}")
    check_training_config(cfg, "policy")


def test_fsdp_strategy_wraps_transformer_blocks(compose_cfg):
    from lightning.pytorch.strategies import FSDPStrategy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    cfg = compose_cfg("trainer=fsdp", "trainer.strategy.activation_checkpointing=true")
    strategy = instantiate(cfg.trainer.strategy, "trainer.strategy")
    assert isinstance(strategy, FSDPStrategy)
    assert LlamaDecoderLayer in strategy.kwargs["auto_wrap_policy"]._module_classes


def test_accumulation_and_precision_reach_the_trainer(compose_cfg):
    cfg = compose_cfg("trainer.accumulate_grad_batches=4", "trainer.precision=bf16-mixed",
                      "~logger")
    trainer = instantiate(cfg.trainer, "trainer", logger=False)
    assert trainer.accumulate_grad_batches == 4
    assert trainer.precision == "bf16-mixed"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("policy.lora={r:0}", r"^policy\.lora\.r=0 must be an integer >= 1"),
        ("prm.lora={r:4,dropout:1.5}", r"^prm\.lora\.dropout=1\.5 is outside \[0, 1\)"),
        ("policy.lora={rank:4}", r"^policy\.lora has unknown key 'rank'"),
        ("policy.lora={target_modules:[]}", r"^policy\.lora\.target_modules=.* must be"),
        ("policy.lora=8", r"^policy\.lora=8 must be null or a mapping"),
        ("prm.gradient_checkpointing=maybe", r"^prm\.gradient_checkpointing='maybe' must be"),
        ("trainer.accumulate_grad_batches=0", r"^trainer\.accumulate_grad_batches=0 must be"),
        ("trainer.precision=fp8", r"^trainer\.precision='fp8' must be one of"),
    ],
)
def test_bad_knobs_are_one_line_errors(compose_cfg, override, message):
    cfg = compose_cfg(override)
    group = "prm" if override.startswith("prm") else "policy"
    with pytest.raises(ConfigError, match=message) as err:
        check_training_config(cfg, group)
    assert "\n" not in str(err.value)


def test_lora_is_refused_with_sharded_weights(compose_cfg):
    cfg = compose_cfg("trainer=fsdp", "policy.lora={r:8}")
    with pytest.raises(ConfigError, match=r"policy\.lora is not supported with trainer strategy"):
        check_training_config(cfg, "policy")
    check_training_config(compose_cfg("trainer=ddp", "policy.lora={r:8}"), "policy")


def test_lora_defaults_fill_missing_keys():
    assert lora_options("policy", None) is None
    assert lora_options("policy", {"r": 16}) == {
        "r": 16, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"
    }


def test_gradient_checkpointing_is_switched_on_and_keeps_gradients():
    tok = build_char_tokenizer()
    ids = torch.tensor([[1, 20, 30, 40, 50, 60, 70]])
    grads = []
    for checkpointing in (False, True):
        model = prepare_model(
            build_tiny_causal_lm(tok, **TINY, seed=1).train(), task="causal_lm",
            gradient_checkpointing=checkpointing,
        )
        assert model.is_gradient_checkpointing == checkpointing
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append(model.model.embed_tokens.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.slow
def test_train_prm_model_from_a_policy_then_from_its_own_output(compose_cfg, tmp_path):
    """The reusable PRM trainer: D_V files and rows, a policy backbone or an earlier PRM as
    start, manifest and safetensors in out_dir, oracle metrics on Countdown; save -> load ->
    score gives the values of the trained model."""
    from rest_mcts.backends.hf_scorer import HFValueScorer
    from rest_mcts.runtime.context import Context
    from rest_mcts.loop.train import train_prm_model

    from tests.training.test_prm_training import countdown_rows

    tok = build_char_tokenizer()
    policy = save_model(build_tiny_causal_lm(tok, **TINY), tok, tmp_path / "policy")
    rows = countdown_rows(60)
    dv = tmp_path / "dv.jsonl"
    dv.write_text("".join(
        json.dumps({"question": r.question, "steps": list(r.steps), "target": r.target}) + "\n"
        for r in rows[:100]
    ))
    cfg = compose_cfg("~logger", "trainer.enable_progress_bar=false", "prm.epochs=1",
                      "prm.lora={r:4,dropout:0.0}")
    metrics = train_prm_model(Context.from_config(cfg), [dv, *rows[100:]], tmp_path / "it1" / "prm",
                              policy)
    assert metrics["data/rows"] == len(rows)
    for key in ("val/mse", "val/acc@0.1", "val/oracle_acc@0.1", "val/oracle_mse",
                "val/sibling_acc", "val/mse_mean_baseline"):
        assert key in metrics
    folder = tmp_path / "it1" / "prm"
    assert (folder / "model.safetensors").exists() and (folder / "manifest.json").exists()
    assert (tmp_path / "it1" / "checkpoints" / "prm" / "last.ckpt").exists()

    # continue from the saved PRM (a value model: loaded as is, not re-headed)
    scorer = HFValueScorer(str(folder))
    items = [(r.question, r.steps) for r in rows[:6]]
    saved_values = scorer.score(items)
    cfg2 = compose_cfg("~logger", "trainer.enable_progress_bar=false", "trainer.max_steps=1",
                       "prm.lr=1e-9", "prm.warmup_ratio=0.0")
    train_prm_model(Context.from_config(cfg2), rows, tmp_path / "it2" / "prm", folder)
    again = HFValueScorer(str(tmp_path / "it2" / "prm")).score(items)
    assert again == pytest.approx(saved_values, abs=1e-4)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_training_reads_the_value_where_the_scorer_reads_it(padding_side):
    """The PRM module's value on a right-padded training batch is the scorer's value at the
    last real token, whatever the scorer's padding side."""
    from rest_mcts.backends.hf_scorer import HFValueScorer
    from rest_mcts.models.factory import build_tiny_value_model
    from rest_mcts.training.prm import PRMRegressionModule
    from rest_mcts.training.prm_data import ValueDataset, collate_values

    from tests.training.test_prm_training import countdown_rows

    tok = build_char_tokenizer()
    model = build_tiny_value_model(tok, **TINY, seed=2)
    head = torch.nn.Linear(model.score.in_features, 1, bias=True)
    with torch.no_grad():  # values inside (0, 1): clamping must not hide a wrong read
        head.weight.copy_(model.score.weight * 0.5)
        head.bias.fill_(0.5)
    model.score = head
    rows = countdown_rows(4)[:8]
    batch = collate_values(ValueDataset(rows, tok, 256).items, tok.pad_token_id)
    assert len(set(batch["positions"].tolist())) > 1, "rows of different lengths"
    with torch.no_grad():
        trained = PRMRegressionModule(model).eval()._values(batch).tolist()
    scorer = HFValueScorer(model=model, tokenizer=build_char_tokenizer(padding_side=padding_side))
    scored = scorer.score([(r.question, r.steps) for r in rows])
    assert all(0.0 < v < 1.0 for v in scored)
    assert trained == pytest.approx(scored, abs=1e-5)


def test_stage_sft_settings_override_policy_without_changing_the_policy0_key(compose_cfg):
    from rest_mcts.runtime.context import Context

    base = Context.from_config(compose_cfg("stage=train_policy"))
    cfg = compose_cfg("stage=train_policy", "stage.sft.lr=1e-4", "stage.sft.epochs=3")
    ctx = Context.from_config(cfg)
    tuned = ctx.policy.overridden("stage.sft", cfg.stage.sft)
    assert (tuned.lr, tuned.epochs) == (1e-4, 3)
    assert tuned.batch_size == base.policy.batch_size  # null: the policy's value
    assert ctx.policy0_dir() == base.policy0_dir()
    other = Context.from_config(compose_cfg("stage=train_policy", "policy.lr=1e-4"))
    assert other.policy0_dir() != base.policy0_dir()
    bad = compose_cfg("stage=train_policy", "stage.sft.lr=0")
    with pytest.raises(ConfigError, match=r"^stage\.sft\.lr=0 is outside \(0, inf\]"):
        Context.from_config(bad).policy.overridden("stage.sft", bad.stage.sft)


@pytest.mark.slow
def test_prm_max_length_leaves_longer_rows_out_with_a_warning(compose_cfg, tmp_path, caplog):
    """``prm.max_length`` (256, as PRM training always used; 1,024 in the pretrained model
    configs) reaches stage=init_prm's and the loop's PRM training; longer rows are counted."""
    import logging
    import statistics

    from rest_mcts.loop.train import train_prm_model
    from rest_mcts.prompts import prm_input
    from rest_mcts.runtime.context import Context

    from tests.training.test_prm_training import countdown_rows

    tok = build_char_tokenizer()
    policy = save_model(build_tiny_causal_lm(tok, **TINY), tok, tmp_path / "policy")
    rows = countdown_rows(20)
    cut = int(statistics.median(len(tok(prm_input(r.question, r.steps))["input_ids"])
                                for r in rows))
    cfg = compose_cfg("~logger", "trainer.enable_progress_bar=false", "trainer.max_steps=1",
                      f"prm.max_length={cut}")
    assert compose_cfg().prm.max_length == 256
    with caplog.at_level(logging.WARNING, logger="rest_mcts.loop.train"):
        metrics = train_prm_model(Context.from_config(cfg), rows, tmp_path / "prm", policy)
    (line,) = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert re.fullmatch(rf"PRM training: \d+ of \d+ rows are longer than {cut} tokens and are "
                        r"left out \(prm\.max_length\)", line)
    assert 0 < metrics["data/train_rows"] + metrics["data/val_rows"] < len(rows)

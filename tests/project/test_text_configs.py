"""Config groups for real tasks: model configs name the paper's checkpoints; data configs
compose; `run.py stage=search` runs end to end on MATH and GSM8K with a tiny chat model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.helpers.paths import CONF, ROOT

FIXTURES = ROOT / "tests" / "fixtures"

PAPER = {
    "mistral7b": ("meta-math/MetaMath-Mistral-7B", "meta-math/MetaMath-Mistral-7B", False),
    "llama3_8b_instruct": ("meta-llama/Meta-Llama-3-8B-Instruct", "meta-math/MetaMath-Mistral-7B", False),
    "sciglm6b": ("zd21/SciGLM-6B", "THUDM/chatglm3-6b", True),
    "qwen25_math_7b_instruct": ("Qwen/Qwen2.5-Math-7B-Instruct", "Qwen/Qwen2.5-Math-7B-Instruct", False),
    "qwen25_math_1_5b_instruct": ("Qwen/Qwen2.5-Math-1.5B-Instruct", "Qwen/Qwen2.5-Math-1.5B-Instruct", False),
}


@pytest.mark.parametrize("model", sorted(PAPER))
def test_model_configs_name_policy_and_prm_checkpoints(compose_cfg, model):
    cfg = compose_cfg("stage=search", f"model={model}", "data=math")
    policy, prm_backbone, remote = PAPER[model]
    assert cfg.model.path == policy
    assert cfg.prm.backbone == prm_backbone and cfg.prm.path is None
    assert cfg.model.trust_remote_code is remote
    assert cfg.backend.trust_remote_code is remote
    assert cfg.model.dtype == "bfloat16" and cfg.model.context_length > 0
    assert cfg.model.chat_template in (True, False)
    assert cfg.data.world.prompts.tokenizer == policy


def test_every_model_config_is_covered():
    # smollm2_135m (a GGUF file on the CPU): tests/models/test_model_defaults.py
    shipped = {p.stem for p in (CONF / "model").glob("*.yaml")} - {"tiny", "smollm2_135m"}
    assert shipped == set(PAPER)


@pytest.mark.slow
def test_cfg_job_prints_the_paper_checkpoints():
    """Without --resolve: the PRM's backbone is written literally, not as an interpolation."""
    out = subprocess.run(
        [sys.executable, "run.py", "stage=search", "model=mistral7b", "--cfg", "job"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    cfg = OmegaConf.create(out)
    assert cfg.model.path == "meta-math/MetaMath-Mistral-7B"
    assert cfg.prm.backbone == "meta-math/MetaMath-Mistral-7B"
    assert "backbone: meta-math/MetaMath-Mistral-7B" in out


@pytest.mark.parametrize("model", sorted(PAPER))
def test_every_model_config_names_its_checkpoints_unresolved(compose_cfg, model):
    """What `--cfg job` prints (the composed config, interpolations unresolved) names the
    policy's hub id and the PRM's backbone."""
    text = OmegaConf.to_yaml(compose_cfg("stage=search", f"model={model}"), resolve=False)
    policy, prm_backbone, _ = PAPER[model]
    printed = OmegaConf.create(text)
    raw = OmegaConf.to_container(printed, resolve=False)
    assert raw["model"]["path"] == policy
    assert raw["prm"]["backbone"] == prm_backbone and raw["prm"]["path"] is None
    assert isinstance(raw["prm"]["context_length"], int)
    assert raw["backend"]["context_length"] == "${oc.select:model.context_length,null}"
    assert printed.backend.context_length == printed.model.context_length


@pytest.mark.parametrize("option, value", [("model.path", "./missing-model"),
                                           ("prm.backbone", "/no/such/backbone")])
@pytest.mark.slow
def test_missing_local_model_path_is_one_error_line(tmp_path, option, value):
    result = _run("stage=search", "data=math", f"{option}={value}", f"hydra.run.dir={tmp_path}",
                  "logger=null")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (f"error: {option}='{value}' does not exist "
                         "(give a model folder or a hub id org/name)")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("data", ["math", "math500", "gsm8k", "sciinstruct", "scibench", "gpqa",
                                  "ceval_hard", "text"])
def test_data_configs_build_a_world_without_reading_data(compose_cfg, data):
    from rest_mcts.runtime.context import Context

    cfg = compose_cfg(f"data={data}", f"data.path={FIXTURES / 'math_sample.jsonl'}")
    world = Context.from_config(cfg).world
    assert world.name == data and world.spec.path
    assert world.prompt_format is not None and world.spec.answer_type == cfg.data.answer_type


def test_countdown_config_keeps_its_world(compose_cfg):
    from rest_mcts.runtime.context import Context

    assert type(Context.from_config(compose_cfg()).world).__name__ == "CountdownWorld"


# ---------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
    from rest_mcts.models.tiny_chat import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat"), hidden_size=32)


def _run(*args, cwd=ROOT):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "run.py", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


FAST = ["logger=null", "search.iterations=1", "search.branch=2", "search.rollout_steps=1",
        "search.rollout_branch=1", "search.max_step_tokens=8"]


@pytest.mark.parametrize("data, critic, n", [("math", "world", 4), ("gsm8k", "world", 4),
                                             ("math", "llm", 2)])
@pytest.mark.slow
def test_search_runs_end_to_end_with_a_tiny_chat_model(tiny_chat_model, tmp_path, data, critic, n):
    out = tmp_path / "run"
    result = _run("stage=search", f"model.path={tiny_chat_model}", f"data={data}",
                  f"data.path=tests/fixtures/{data}_sample.jsonl", f"data.limit={n}",
                  f"hydra.run.dir={out}", f"search.self_critic={critic}",
                  "search.critic_max_tokens=8", *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").open()]
    assert len(rows) == n and len({r["id"] for r in rows}) == n
    assert all(r["id"].startswith(f"{data}-") and r["gold"] for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["search/num_questions"] == n
    assert len(list((out / "trees").glob("*.json"))) == n
    if critic == "llm":  # the untrained model's critic answers are noise: counted, no crash
        assert all(r["info"]["critic_calls"] >= 1 for r in rows)
        assert all(r["info"]["critic_tokens"] >= 1 for r in rows)
        assert all(r["costs"]["policy_tokens"] > r["info"]["critic_tokens"] for r in rows)


@pytest.mark.slow
def test_malformed_dataset_is_one_error_line_and_keeps_results(tiny_chat_model, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    kept = '{"id": "math-old", "correct": true}\n'
    (out / "results.jsonl").write_text(kept)
    bad = tmp_path / "bad.jsonl"
    lines = (FIXTURES / "math_sample.jsonl").read_text().splitlines()[:3]
    bad.write_text("\n".join(lines[:2] + ['{"solution": "It is $\\\\boxed{2}$."}'] + lines[2:]) + "\n")
    result = _run("stage=search", f"model.path={tiny_chat_model}", "data=math",
                  f"data.path={bad}", f"hydra.run.dir={out}", "data.limit=2", *FAST)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and f"{bad}:3:" in error and "missing field 'problem'" in error
    assert (out / "results.jsonl").read_text() == kept

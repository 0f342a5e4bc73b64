"""Throughput of :class:`HFPolicyBackend` against raw ``model.generate`` on the same prompts.

Both are timed in one run, interleaved, on Countdown-like prompts, greedy, with the same
``max_new_tokens`` and no early stopping (the raw call gets no eos id, the backend no stop
strings; the backend's generated tokens are counted from its completions). Prints a markdown
table and writes it to ``experiments/results/bench_backend.md``.

Usage:
    python experiments/bench_backend.py [--model-path P] [--batch-sizes 1 8 32 128]
        [--new-tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import platform
import random
import time
from pathlib import Path

import torch
from _common import ROOT  # noqa: F401  (puts src/ on the path)

from rest_mcts.backends import HFPolicyBackend, SamplingParams
from rest_mcts.models import (
    build_char_tokenizer,
    build_tiny_causal_lm,
    count_parameters,
    load_causal_lm,
    load_tokenizer,
)

logger = logging.getLogger("bench_backend")

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "bench_backend.md"


def countdown_prompts(count: int, seed: int = 0) -> list[str]:
    """Short Countdown-like prompts such as ``"Make 23 from 6 4 5\\n"``."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        numbers = " ".join(str(rng.randint(1, 13)) for _ in range(rng.choice((3, 4))))
        prompts.append(f"Make {rng.randint(10, 99)} from {numbers}\n")
    return prompts


def time_raw(model, tokenizer, prompts: list[str], new_tokens: int) -> tuple[float, int]:
    """Seconds and generated tokens of one raw greedy ``model.generate`` call."""
    encoded = tokenizer(prompts, padding=True, padding_side="left", return_tensors="pt")
    encoded = {name: tensor.to(model.device) for name, tensor in encoded.items()}
    start = time.perf_counter()
    with torch.inference_mode():
        sequences = model.generate(
            **encoded,
            max_new_tokens=new_tokens,
            do_sample=False,
            use_cache=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=None,
        )
    _synchronize(model.device)
    seconds = time.perf_counter() - start
    return seconds, int(sequences.shape[0] * (sequences.shape[1] - encoded["input_ids"].shape[1]))


def time_backend(
    backend: HFPolicyBackend, prompts: list[str], new_tokens: int
) -> tuple[float, int]:
    """Seconds and generated tokens of one greedy ``HFPolicyBackend.generate`` call."""
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=new_tokens, stop=())
    start = time.perf_counter()
    outputs = backend.generate(prompts, params)
    _synchronize(backend.device)
    seconds = time.perf_counter() - start
    return seconds, sum(c.num_tokens for o in outputs for c in o.completions)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(args: argparse.Namespace) -> str:
    """Run the benchmark and return the markdown report."""
    if args.model_path:
        tokenizer = load_tokenizer(args.model_path)
        model = load_causal_lm(args.model_path, dtype=args.dtype, device=args.device)
        source = args.model_path
    else:
        tokenizer = build_char_tokenizer()
        model = build_tiny_causal_lm(tokenizer, hidden_size=128, num_layers=2).to(args.device)
        source = "untrained tiny Llama (hidden 128, 2 layers), char tokenizer"
    if model.generation_config.eos_token_id is not None:
        # The raw call must not stop early; an explicit eos_token_id=None would be filled in
        # from the model's generation config otherwise.
        model.generation_config.eos_token_id = None
    backend = HFPolicyBackend(
        model=model, tokenizer=tokenizer, max_batch_size=max(args.batch_sizes)
    )
    prompts = countdown_prompts(max(args.batch_sizes))
    time_raw(model, tokenizer, prompts[:8], args.new_tokens)  # warm-up
    time_backend(backend, prompts[:8], args.new_tokens)

    rows = []
    for batch_size in args.batch_sizes:
        batch = prompts[:batch_size]
        raw_best = backend_best = 0.0
        tokens_raw = tokens_backend = 0
        for repeat in range(args.repeats):  # interleaved, order alternating, best of N
            for which in ("raw", "backend") if repeat % 2 == 0 else ("backend", "raw"):
                if which == "raw":
                    seconds, tokens_raw = time_raw(model, tokenizer, batch, args.new_tokens)
                    raw_best = max(raw_best, tokens_raw / seconds)
                else:
                    seconds, tokens_backend = time_backend(backend, batch, args.new_tokens)
                    backend_best = max(backend_best, tokens_backend / seconds)
        if tokens_backend != tokens_raw:
            logger.warning(
                "batch %d: backend generated %d tokens, raw %d (early eos?)",
                batch_size,
                tokens_backend,
                tokens_raw,
            )
        rows.append((batch_size, raw_best, backend_best, backend_best / raw_best))
        logger.info("batch %d done", batch_size)

    lines = [
        "# HFPolicyBackend vs raw model.generate",
        "",
        f"- model: {source} ({count_parameters(model) / 1e6:.2f}M parameters)",
        f"- device: {args.device} ({platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        f"- greedy, {args.new_tokens} new tokens per sequence, left padding, "
        f"best of {args.repeats} interleaved runs (order alternating) after a warm-up",
        "",
        "| batch size | raw model.generate tokens/s | HFPolicyBackend tokens/s "
        "| ratio backend/raw |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {b} | {raw:,.0f} | {ours:,.0f} | {ratio:.2f} |" for b, raw, ours, ratio in rows]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default=None, help="HF folder (default: build tiny model)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    report = run(args)
    print(report)  # the report is the script's output
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()

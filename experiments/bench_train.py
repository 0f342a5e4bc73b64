"""Training throughput of the two Lightning modules, and PRM scoring by one forward pass per
path against one pass per prefix.

1. samples/s of `PolicySFTModule` (correct Countdown solutions) and `PRMRegressionModule`
   (Countdown partial solutions with their exact quality values) on the tiny models:
   ``--train-steps`` optimiser steps of a Lightning fit, timed after 3 untimed steps, best
   of ``--repeats`` fits.
2. Values of every step of 64 paths of 4 steps: one forward pass over each whole path,
   reading the value at the last token of each step (`values_at_positions`), against one
   forward pass per prefix (what `HFValueScorer.score` does for 4 x 64 items). Both are
   batched by ``--score-batch``; the largest difference between the two is reported too.

Prints a markdown table and writes it to ``experiments/results/bench_train.md``.

Usage:
    python experiments/bench_train.py [--train-steps 20] [--batch-size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import platform
import random
import time
from pathlib import Path

import lightning as L
import torch
from _common import ROOT  # noqa: F401  (puts src/ on the path)

from rest_mcts.backends.hf_scorer import HFValueScorer
from rest_mcts.models import build_char_tokenizer, build_tiny_causal_lm, count_parameters
from rest_mcts.models.factory import build_tiny_value_model
from rest_mcts.models.value_head import values_at_positions
from rest_mcts.prompts import prm_input
from rest_mcts.search.oracle_scorer import OracleScorer
from rest_mcts.training.policy_sft import PolicySFTModule
from rest_mcts.training.prm import PRMRegressionModule
from rest_mcts.training.prm_data import ValueDataModule, ValueRow
from rest_mcts.training.sft_data import build_sft_data, solution_example
from rest_mcts.worlds import CountdownWorld

logger = logging.getLogger("bench_train")

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "bench_train.md"
TINY = dict(hidden_size=128, num_layers=2, num_heads=4)  # the iteration-0 policy's size


def sft_examples(n: int, seed: int = 0):
    world, rng = CountdownWorld(), random.Random(seed)
    return [
        solution_example(p.question.text, world.correct_trace(p, rng))
        for p in world.generate(n, seed=seed, split="train")
    ]


def value_rows(n: int, seed: int = 0) -> list[ValueRow]:
    world, rng = CountdownWorld(), random.Random(seed)
    oracle = OracleScorer(world)
    rows = []
    for problem in world.generate(n, seed=seed, split="train"):
        trace = world.random_trace(problem.question, rng)
        for k in range(1, len(trace) + 1):
            value = oracle.score([(problem.question.text, tuple(trace[:k]))])[0]
            rows.append(ValueRow(problem.question.text, tuple(trace[:k]), value))
    return rows


class StepTimer(L.Callback):
    """Wall time of the training steps after the first ``warmup`` ones."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.end = time.perf_counter()


def time_fit(module: L.LightningModule, data, steps: int, warmup: int = 3) -> float:
    """Seconds of ``steps`` optimiser steps (forward, backward, AdamW) of a Lightning fit,
    after ``warmup`` untimed steps (no validation, no logging)."""
    timer = StepTimer(warmup)
    trainer = L.Trainer(
        max_steps=warmup + steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        limit_val_batches=0, callbacks=[timer],
    )
    trainer.fit(module, datamodule=data)
    return timer.end - timer.start


def bench_training(args) -> list[tuple[str, int, float]]:
    tok = build_char_tokenizer()
    n = args.batch_size * (args.train_steps + 4)
    sft = build_sft_data(tok, sft_examples(n), val_share=0.0, batch_size=args.batch_size)
    prm = ValueDataModule(tok, rows=value_rows(n), val_share=0.0, batch_size=args.batch_size)
    out = []
    for name, make, data in [
        ("PolicySFTModule", lambda: PolicySFTModule(build_tiny_causal_lm(tok, **TINY)), sft),
        ("PRMRegressionModule", lambda: PRMRegressionModule(build_tiny_value_model(tok, **TINY)),
         prm),
    ]:
        best = min(time_fit(make(), data, args.train_steps) for _ in range(args.repeats))
        params = count_parameters(make().model)
        out.append((name, params, args.train_steps * args.batch_size / best))
        logger.info("%s: %.0f samples/s", name, out[-1][2])
    return out


def bench_scoring(args) -> dict[str, float]:
    """One pass per path vs one pass per prefix, on 64 paths of 4 steps."""
    tok = build_char_tokenizer(padding_side="right")
    model = build_tiny_value_model(tok, **TINY).eval()
    head = torch.nn.Linear(model.score.in_features, 1, bias=True)
    with torch.no_grad():  # values inside (0, 1), so clamping cannot hide a difference
        head.weight.copy_(model.score.weight * 0.5)
        head.bias.fill_(0.5)
    model.score = head
    world, rng = CountdownWorld(num_numbers=5), random.Random(0)
    paths = []
    for problem in world.generate(4 * args.paths, seed=0, split="train"):
        trace = world.random_trace(problem.question, rng)
        if len(trace) >= args.steps:
            paths.append((problem.question.text, tuple(trace[: args.steps])))
        if len(paths) == args.paths:
            break
    if len(paths) < args.paths:
        raise RuntimeError(f"only {len(paths)} paths of {args.steps} steps")
    scorer = HFValueScorer(model=model, tokenizer=tok, max_batch_size=args.score_batch)
    prefixes = [(q, s[:k]) for q, s in paths for k in range(1, args.steps + 1)]

    def per_path() -> list[float]:
        values = []
        with torch.inference_mode():
            for first in range(0, len(paths), args.score_batch):
                chunk = paths[first : first + args.score_batch]
                ends = [[len(tok(prm_input(q, s[:k]))["input_ids"]) - 1
                         for k in range(1, args.steps + 1)] for q, s in chunk]
                enc = tok([prm_input(q, s) for q, s in chunk], padding=True, return_tensors="pt")
                raw = values_at_positions(model, enc["input_ids"], enc["attention_mask"],
                                          torch.tensor(ends))
                values += raw.clamp(0, 1).flatten().tolist()
        return values

    def per_prefix() -> list[float]:
        return scorer.score(prefixes)

    per_path(), per_prefix()  # warm-up
    times = {"path": [], "prefix": []}
    for repeat in range(args.repeats):
        for which in ("path", "prefix") if repeat % 2 == 0 else ("prefix", "path"):
            start = time.perf_counter()
            values = per_path() if which == "path" else per_prefix()
            times[which].append(time.perf_counter() - start)
            if which == "path":
                one_pass = values
            else:
                separate = values
    return {
        "path_s": min(times["path"]),
        "prefix_s": min(times["prefix"]),
        "max_abs_diff": max(abs(a - b) for a, b in zip(one_pass, separate)),
        "value_range": (min(separate), max(separate)),
        "tokens_path": sum(len(tok(prm_input(q, s))["input_ids"]) for q, s in paths),
        "tokens_prefix": sum(len(tok(prm_input(q, s))["input_ids"]) for q, s in prefixes),
    }


def run(args: argparse.Namespace) -> str:
    torch.manual_seed(0)
    training = bench_training(args)
    scoring = bench_scoring(args)
    ratio = scoring["prefix_s"] / scoring["path_s"]
    lines = [
        "# Training throughput and PRM scoring by one pass per path",
        "",
        f"- device: cpu ({platform.processor() or platform.machine()}), torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; tiny Llama (hidden "
        f"{TINY['hidden_size']}, {TINY['num_layers']} layers), character tokenizer",
        f"- training: {args.train_steps} optimiser steps of a Lightning fit (after 3 untimed "
        f"ones) at batch {args.batch_size}, fp32, best of {args.repeats} fits; SFT on correct "
        "Countdown solutions, PRM on Countdown partial solutions with exact values",
        "",
        "| module | parameters | samples/s |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {params / 1e6:.2f}M | {rate:,.0f} |" for name, params, rate in training]
    lines += [
        "",
        f"PRM values of every step of {args.paths} paths of {args.steps} steps "
        f"(5-number Countdown), batches of {args.score_batch}, best of {args.repeats} "
        "interleaved runs:",
        "",
        "| method | forward passes | tokens | seconds |",
        "|---|---:|---:|---:|",
        f"| one pass per path (`values_at_positions`) | {args.paths} | "
        f"{scoring['tokens_path']:,} | {scoring['path_s']:.4f} |",
        f"| one pass per prefix (`HFValueScorer.score`) | {args.paths * args.steps} | "
        f"{scoring['tokens_prefix']:,} | {scoring['prefix_s']:.4f} |",
        "",
        f"Speed-up of one pass per path: **{ratio:.2f}x**; largest difference between the two "
        f"sets of values: {scoring['max_abs_diff']:.1e} (values from "
        f"{scoring['value_range'][0]:.3f} to {scoring['value_range'][1]:.3f}; the untrained head "
        "is rescaled to keep them inside (0, 1), so clamping cannot hide a difference).",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--paths", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--score-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lightning").setLevel(logging.WARNING)
    args = parse_args(argv)
    report = run(args)
    print(report)  # the report is the script's output
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()

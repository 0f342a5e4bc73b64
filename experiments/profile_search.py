"""Profile: where one process's MCTS* time goes, against how many questions it searches side
by side (what one Ray actor of ``executor=ray`` does with its share of the questions).

    OMP_NUM_THREADS=1 python experiments/profile_search.py [--questions 92 184 368]
        [--concurrency 4 64 ...] [--iterations 50] [--prm tiny] [--policy <policy_0 folder>]

For each number of questions n (all searched side by side unless --concurrency is given), one
:class:`~rest_mcts.runtime.executors.Searcher` on one torch thread searches the first n Countdown
test questions; prints the engine's stats: wall seconds, policy and scorer seconds, their calls
and mean rows per call, seconds per call, the engine's own overhead, and the wall seconds per
question. With 2 actors each searches n/2 questions: if searching n/2 costs much more than
half of searching n (a fixed cost per model call, paid per round whatever the batch), 2 actors
cannot be 2x faster than 1 however the questions are dealt: the best ratio on one thread each
is wall(n) / wall(n/2). Also times single forward calls of the policy and the PRM at
several batch sizes. Writes experiments/results/profile_search.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _common import ROOT, compose, markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, nargs="+", default=[92, 184, 368])
    parser.add_argument("--concurrency", type=int, nargs="+", default=None,
                        help="questions side by side, one value or one per --questions "
                             "(default: all of them)")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--prm", default="tiny")
    parser.add_argument("--policy", type=Path, default=None)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 92, 184, 368])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ["OMP_NUM_THREADS"] = "1"
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    import torch

    from rest_mcts.backends import SamplingParams
    from rest_mcts.runtime.context import Context
    from rest_mcts.runtime.executors import Searcher
    from rest_mcts.search.configs import search_config_from

    torch.set_num_threads(1)
    found = sorted((ROOT / "artifacts" / "policy0").glob("countdown-s0-*/manifest.json"))
    policy = args.policy or (found[0].parent if found else None)
    if policy is None:
        raise SystemExit("no cached policy_0: run `python run.py stage=bootstrap` or pass --policy")
    cfg = compose("stage=eval", "backend=hf", f"prm={args.prm}", "search=mcts_star",
                  f"search.iterations={args.iterations}", "~logger",
                  f"paths.output_dir={tempfile.mkdtemp(prefix='profile_search-')}")
    ctx = Context.from_config(cfg)
    method = search_config_from(cfg.search)
    problems = ctx.problems("test", max(args.questions), at_most=True)
    rows = []
    searcher = None
    sides = args.concurrency or [0]
    for i, n in enumerate(args.questions):
        n = min(n, len(problems))
        conc = sides[min(i, len(sides) - 1)] or n
        searcher = Searcher(ctx, method, concurrency=conc, cache_values=True,
                            policy_path=policy, prm_path=None, progress=False, reuse=searcher)
        if hasattr(searcher.scorer, "clear_cache"):
            searcher.scorer.clear_cache()
        start, cpu = time.perf_counter(), time.process_time()
        for _ in searcher.run([(p.id, p.question) for p in problems[:n]]):
            pass
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        s = searcher.engine.stats
        other = s["total_seconds"] - s["policy_seconds"] - s["scorer_seconds"]
        rows.append([
            n, conc, f"{wall:.1f}", f"{s['policy_seconds']:.1f}", f"{s['scorer_seconds']:.1f}",
            f"{other:.1f}", int(s["rounds"]), int(s["policy_calls"]),
            f"{s['policy_prompts'] / max(1, s['policy_calls']):.0f}",
            f"{1000 * s['policy_seconds'] / max(1, s['policy_calls']):.0f}",
            int(s["scorer_calls"]), f"{s['scorer_items'] / max(1, s['scorer_calls']):.0f}",
            f"{1000 * s['scorer_seconds'] / max(1, s['scorer_calls']):.0f}",
            f"{1000 * wall / n:.0f}", f"{1000 * cpu / n:.0f}",
        ])
        print(rows[-1], flush=True)
    header = ["questions", "side by side", "wall s", "policy s", "scorer s", "engine s",
              "rounds", "policy calls", "rows/call", "ms/call", "scorer calls", "items/call",
              "ms/call", "ms/question", "CPU ms/question"]
    table = markdown_table(header, rows)

    # single calls at fixed batch sizes: a Countdown prompt, one step of up to 32 tokens
    question = problems[0].question
    prompt_rows = []
    params = SamplingParams(n=1, temperature=1.0, max_new_tokens=32, stop=("\n",), seed=0)
    for b in args.batches:
        prompts = [p.question.text for p in (problems * (1 + b // len(problems)))[:b]]
        times = {}
        for name, call in (
            ("policy", lambda: searcher.policy.generate(prompts, params)),
            ("prm", lambda: searcher.scorer.score([(question.text, ["1 + 2 = 3"])] * b)),
        ):
            call()
            best = float("inf")
            for _ in range(3):
                if name == "prm" and hasattr(searcher.scorer, "clear_cache"):
                    searcher.scorer.clear_cache()
                t0 = time.perf_counter()
                call()
                best = min(best, time.perf_counter() - t0)
            times[name] = best
        prompt_rows.append([b, f"{1000 * times['policy']:.0f}",
                            f"{1000 * times['policy'] / b:.2f}", f"{1000 * times['prm']:.0f}",
                            f"{1000 * times['prm'] / b:.2f}"])
        print(prompt_rows[-1], flush=True)
    table2 = markdown_table(["batch", "policy ms (one step, <=32 tokens)", "ms/row",
                             "PRM ms (one forward)", "ms/row"], prompt_rows)
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    note = (f"MCTS* (T={args.iterations}) on Countdown test questions, backend=hf (policy_0 "
            f"`{policy.name}`), prm={args.prm}, one torch thread, one process. `uptime` before: "
            f"{load_before}; after: {load_after}.")
    text = "\n\n".join([note, table, "Single calls, best of 3:", table2])
    print(text)
    out = ROOT / "experiments" / "results" / "profile_search.md"
    out.write_text("# profile_search\n\n`OMP_NUM_THREADS=1 python experiments/profile_search.py`"
                   "\n\n" + text + "\n")


if __name__ == "__main__":
    main()

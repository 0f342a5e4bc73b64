"""Benchmark: MCTS* on Countdown questions, one question at a time vs many side by side.

    python experiments/bench_search.py [--questions 64] [--iterations 10] [--concurrency 1 64]

Runs MCTS* with the iteration-0 policy (bootstrapped if not cached) on the same questions
at each concurrency, in one process, with a neural value model (`tiny`: the policy backbone
with an untrained regression head, i.e. the real scorer's cost) and with the exact oracle,
and prints wall time, the speed-up over concurrency 1, and the share of wall time spent
outside backend and scorer calls (the engine's own overhead).
The table is also written to experiments/results/bench_search.md.
"""

from __future__ import annotations

import argparse
import logging
import platform
import time

from _common import ROOT, compose, markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10, help="MCTS* T per question")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--scorers", nargs="+", default=["tiny", "oracle"],
        help="prm configs: tiny = neural value model (untrained head), oracle = exact values",
    )
    parser.add_argument("overrides", nargs="*", help="config overrides, as for run.py")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from rest_mcts.runtime.context import Context
    from rest_mcts.runtime.policy0 import ensure_policy0
    from rest_mcts.search.configs import search_config_from
    from rest_mcts.search.engine import SearchEngine
    from rest_mcts.search.registry import make_search

    rows = []
    for prm in args.scorers:
        cfg = compose(
            "search=mcts_star", f"search.iterations={args.iterations}", f"prm={prm}",
            *args.overrides,
        )
        ctx = Context.from_config(cfg)
        world = ctx.world
        qs = [p.question for p in ctx.problems(args.split, args.questions, at_most=True)]
        policy_path = ensure_policy0(ctx, cfg.paths.output_dir)
        policy = ctx.build_policy(policy_path)
        scorer = ctx.build_scorer(ctx.prm_path, policy_path)
        search_fn = make_search(search_config_from(cfg.search), world, ctx.max_solution_tokens)
        base = None
        for conc in args.concurrency:
            if hasattr(scorer, "clear_cache"):  # each run starts with a cold prefix KV cache
                scorer.clear_cache()
            engine = SearchEngine(policy, scorer, concurrency=conc, seed=cfg.seed, progress=False)
            start = time.perf_counter()
            results = engine.run_all((q.id, search_fn(q)) for q in qs)
            wall = time.perf_counter() - start
            base = base or wall
            s = engine.stats
            tokens = sum(r.costs.policy_tokens for r in results.values())
            rows.append([
                prm, conc, f"{wall:.1f}", f"{base / wall:.1f}x", s["policy_calls"],
                s["scorer_calls"], f"{tokens / wall:,.0f}", f"{s['policy_seconds'] / wall:.0%}",
                f"{s['scorer_seconds'] / wall:.0%}", f"{s['overhead_share']:.1%}",
            ])
            print(f"prm={prm} concurrency {conc}: {wall:.1f} s", flush=True)
    header = [
        "scorer", "concurrency", "wall s", "speed-up", "policy calls", "scorer calls",
        "policy tokens/s", "in policy", "in scorer", "outside backend+scorer",
    ]
    table = markdown_table(header, rows)
    note = (
        f"MCTS* (T={args.iterations}, b={cfg.search.branch}, rollout "
        f"{cfg.search.rollout_steps}x{cfg.search.rollout_branch}) on {len(qs)} {args.split} "
        f"questions; {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads."
    )
    print(note + "\n\n" + table)
    out = ROOT / "experiments" / "results" / "bench_search.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# bench_search\n\n`python experiments/bench_search.py`\n\n" + note + "\n\n" + table + "\n"
    )


if __name__ == "__main__":
    main()

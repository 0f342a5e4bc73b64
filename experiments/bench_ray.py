"""Benchmark: MCTS* on Countdown with `executor=ray` (1 and 2 CPU actors) vs `executor=local`.

    OMP_NUM_THREADS=1 python experiments/bench_ray.py [--questions 64 512] [--iterations 50]
        [--actors 1 2] [--prm tiny] [--policy <policy_0 folder>]

Runs `stage=eval`'s search (`rest_mcts.loop.search_run.run_search`) on the same questions
with the iteration-0 policy (`backend=hf`, the cached policy_0 given by --policy, never
trained here) and the PRM (`tiny`: an untrained value head on the policy, the real scorer's
cost; or `oracle`), each process with one torch thread: in this process (`executor=local`),
then on a local Ray cluster with 1 and 2 actors, each dealt one chunk of
questions/actors questions (the best batching). Prints the wall time of each (Ray's cluster
start excluded, each actor's start-up and model loading included), the speed-up over local
and over 1 actor, the start-up (building the models; for Ray actors also the worker process
and its imports) and the speed-ups after it, the driver's share of its wall time (outside
waiting for actors), and
whether every answer (steps, prediction, policy tokens) equals the local executor's. On 64
Countdown questions the search takes seconds, about what an actor's start-up costs (a worker
process importing torch and loading both models); 512 questions show the scaling once the
search dominates.
The table is also written to experiments/results/bench_ray.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from _common import ROOT, compose, markdown_table


def _policy0() -> Path | None:
    """A cached Countdown policy_0 of this checkout (artifacts/policy0/countdown-s0-*)."""
    found = sorted((ROOT / "artifacts" / "policy0").glob("countdown-s0-*/manifest.json"))
    return found[0].parent if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--iterations", type=int, default=50, help="MCTS* T per question")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prm", default="tiny", help="tiny (neural, untrained head) or oracle")
    parser.add_argument("--policy", type=Path, default=None, help="policy_0 folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("overrides", nargs="*", help="config overrides, as for run.py")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ["OMP_NUM_THREADS"] = "1"
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    import torch

    from rest_mcts.loop.context import Context
    from rest_mcts.loop.executors import LocalExecutor, RayExecutor
    from rest_mcts.loop.search_run import SearchRun, run_search
    from rest_mcts.search.configs import search_config_from
    from rest_mcts.utils.io import read_jsonl

    torch.set_num_threads(1)
    policy = args.policy or _policy0()
    if policy is None:
        raise SystemExit("no cached policy_0: run `python run.py stage=bootstrap` or pass --policy")
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray-"))
    cfg = compose("stage=eval", "backend=hf", f"prm={args.prm}", "search=mcts_star",
                  f"search.iterations={args.iterations}", "~logger", f"paths.output_dir={tmp}",
                  *args.overrides)
    ctx = Context.from_config(cfg)
    method = search_config_from(cfg.search)

    def answers(out: Path) -> dict:
        return {r["id"]: (r["steps"], r["prediction"], r["costs"]["policy_tokens"])
                for r in read_jsonl(out / "results.jsonl")}

    RayExecutor().start_ray()  # the cluster's start is not timed
    rows = []
    for num in args.questions:
        run = SearchRun(split=args.split, num_problems=num, prefix="eval", concurrency=num)
        executors = [("local", LocalExecutor())]
        for n in args.actors:
            executors.append((f"ray, {n} actor{'s' * (n > 1)}", RayExecutor(
                num_actors=n, num_cpus=1, chunk_size=-(-num // n), chunks_in_flight=1,
                torch_threads=1)))
        walls, searched, want = {}, {}, None
        for name, executor in executors:
            out = tmp / f"{num}-{name.replace(' ', '_').replace(',', '')}"
            start = time.perf_counter()
            metrics = run_search(dataclasses.replace(ctx, executor=executor), out, method, run,
                                 policy_path=policy, prm_path=None)
            wall = time.perf_counter() - start
            walls[name] = wall
            got = answers(out)
            want = want or got
            same = sum(got.get(k) == v for k, v in want.items())
            begin = metrics.get("executor/start_seconds", 0.0)
            searched[name] = wall - begin
            one = searched.get("ray, 1 actor")
            rows.append([
                len(want), name, f"{wall:.1f}", f"{walls['local'] / wall:.2f}x",
                f"{walls['ray, 1 actor'] / wall:.2f}x" if one and name != "ray, 1 actor" else "",
                f"{begin:.1f}", f"{searched['local'] / (wall - begin):.2f}x",
                f"{one / (wall - begin):.2f}x" if one and name != "ray, 1 actor" else "",
                f"{metrics['executor/driver_share']:.1%}" if name != "local" else "",
                f"{metrics['eval/acc']:.3f}", f"{same}/{len(want)}",
            ])
            print(f"{num} questions, {name}: {wall:.1f} s, {same}/{len(want)} answers as local",
                  flush=True)
    header = ["questions", "executor", "wall s", "vs local", "vs 1 actor", "start s",
              "after start: vs local", "vs 1 actor", "driver share", "acc", "answers = local"]
    table = markdown_table(header, rows)
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    note = (
        f"MCTS* (T={args.iterations}, b={cfg.search.branch}) on Countdown "
        f"{args.split} questions, backend=hf (policy_0 `{policy.name}`), prm={args.prm}; "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), one torch "
        f"thread per process; local: every question side by side; Ray: one chunk of "
        f"questions/actors per actor. `uptime` before: {load_before}; after: {load_after}."
    )
    print(note + "\n\n" + table)
    out = ROOT / "experiments" / "results" / "bench_ray.md"
    out.write_text("# bench_ray\n\n`OMP_NUM_THREADS=1 python experiments/bench_ray.py`\n\n"
                   + note + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()

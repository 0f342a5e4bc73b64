"""Benchmark: MCTS* on Countdown with `executor=ray` (1 and 2 CPU actors) vs `executor=local`.

    OMP_NUM_THREADS=1 python experiments/bench_ray.py [--questions 64 512] [--iterations 50]
        [--actors 1 2] [--prm tiny] [--policy <policy_0 folder>] [--repeats 1]

Runs `stage=eval`'s search (`rest_mcts.runtime.search_run.run_search`) on the same questions
with the iteration-0 policy (`backend=hf`, the cached policy_0 given by --policy, never
trained here) and the PRM (`tiny`: an untrained value head on the policy, the real scorer's
cost; or `oracle`), each process with one torch thread: in this process (`executor=local`),
then on a local Ray cluster (started before any timing) with 1 and 2 actors, the executor's
defaults dealing the questions (`chunk_size: auto`: one chunk of questions/actors per actor).

Each Ray row is timed twice:

- cold: a new pool, as a standalone `stage=search|eval` runs: each actor's start-up (a worker
  process importing torch and transformers, loading both models) is inside the timing;
- warm: the same search again on the pool the cold run left (processes started, models
  loaded), as the loop's later searches run on its persistent pool; the PRM's prefix cache is
  cleared first, so nothing is answered from the cold run.

Prints the wall times, the speed-up of 2 actors over 1 (cold and warm) and over local, the
start-up seconds (until every actor had its models), the driver's share of its wall time
(outside waiting for actors), the CPU seconds spent by the driver, the actors and Ray's own
processes (raylet, GCS, agents, idle workers) during the search, the actors' CPU seconds per
wall second (about N for N actors when each has a core of its own: less means the machine is
busy), the speed-up N actors would reach warm with a free core each (N x the CPU seconds of
1 actor / those of N: what splitting the questions costs in extra work, whatever the load),
and whether every answer
(steps, prediction, policy tokens) equals the local executor's. With --repeats N every timing
is the best of N. The table is also written to --output (experiments/results/bench_ray.md).
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


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of this process and every process under it (the Ray
    cluster this process started: raylet, GCS, agents, workers), by pid, with a role."""
    import psutil

    me = psutil.Process()
    out = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            cmd = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        role = "driver" if proc.pid == me.pid else "actors" if "_SearchActor" in cmd else "ray"
        out[proc.pid] = (role, times.user + times.system)
    return out


def _cpu_spent(before: dict, after: dict) -> dict[str, float]:
    spent = {"driver": 0.0, "actors": 0.0, "ray": 0.0}
    for pid, (role, seconds) in after.items():
        spent[role] += seconds - before.get(pid, (role, 0.0))[1]
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--iterations", type=int, default=50, help="MCTS* T per question")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prm", default="tiny", help="tiny (neural, untrained head) or oracle")
    parser.add_argument("--policy", type=Path, default=None, help="policy_0 folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--repeats", type=int, default=1, help="best of N per timing")
    parser.add_argument("--output", type=Path,
                        default=ROOT / "experiments" / "results" / "bench_ray.md")
    parser.add_argument("overrides", nargs="*", help="config overrides, as for run.py")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ["OMP_NUM_THREADS"] = "1"
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    import torch

    from rest_mcts.runtime.context import Context
    from rest_mcts.runtime.executors import LocalExecutor, RayExecutor
    from rest_mcts.runtime.search_run import SearchRun, run_search
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
    runs = 0

    def answers(out: Path) -> dict:
        return {r["id"]: (r["steps"], r["prediction"], r["costs"]["policy_tokens"])
                for r in read_jsonl(out / "results.jsonl")}

    def timed(executor, run) -> tuple[float, dict, dict, dict]:
        """One search into a new folder: wall seconds, metrics, answers, CPU seconds."""
        nonlocal runs
        runs += 1
        out = tmp / f"run{runs}"
        before = _cpu_seconds()
        start = time.perf_counter()
        metrics = run_search(dataclasses.replace(ctx, executor=executor), out, method, run,
                             policy_path=policy, prm_path=None)
        wall = time.perf_counter() - start
        return wall, metrics, answers(out), _cpu_spent(before, _cpu_seconds())

    RayExecutor().start_ray()  # the cluster's start is not timed
    rows, summary = [], []
    for num in args.questions:
        run = SearchRun(split=args.split, num_problems=num, prefix="eval", concurrency=num)
        best = {}
        for _ in range(args.repeats):  # local: models built inside the timing, as a stage does
            wall, metrics, want, cpu = timed(LocalExecutor(), run)
            if "local" not in best or wall < best["local"][0]:
                best["local"] = (wall, metrics, want, cpu)
        local_wall, local_metrics, want, local_cpu = best["local"]
        local_start = local_metrics.get("executor/start_seconds", 0.0)
        n = len(want)
        rows.append([n, "local", f"{local_wall:.1f}", f"{local_wall - local_start:.1f}",
                     f"{local_start:.1f}", "", "", "", "", "",
                     f"{local_cpu['driver']:.1f} / - / -", "", "", "",
                     f"{local_metrics['eval/acc']:.3f}",
                     f"{n}/{n}"])
        print(f"{n} questions, local: {local_wall:.1f} s", flush=True)
        for actors in args.actors:
            executor = RayExecutor(num_actors=actors, num_cpus=1, torch_threads=1)
            cold = warm = None
            for _ in range(args.repeats):
                executor.close()  # cold: a new pool, timed from its start
                got = timed(executor, run)
                cold = got if cold is None or got[0] < cold[0] else cold
                got = timed(executor, run)  # warm: the pool the cold run left
                warm = got if warm is None or got[0] < warm[0] else warm
            executor.close()
            best[actors] = (cold, warm)
            (cw, cm, ca, ccpu), (ww, wm, wa, wcpu) = cold, warm
            same = sum(ca.get(k) == v for k, v in want.items())
            same_warm = sum(wa.get(k) == v for k, v in want.items())
            one = best.get(1)
            rows.append([
                n, f"ray, {actors} actor{'s' * (actors > 1)}", f"{cw:.1f}", f"{ww:.1f}",
                f"{cm['executor/start_seconds']:.1f}",
                f"{one[0][0] / cw:.2f}x" if one and actors != 1 else "",
                f"{one[1][0] / ww:.2f}x" if one and actors != 1 else "",
                f"{(local_wall - local_start) / ww:.2f}x",
                f"{wm['executor/driver_share']:.1%}",
                f"{wm['executor/searchers_built']:.0f}",
                f"{ccpu['driver']:.1f} / {ccpu['actors']:.1f} / {ccpu['ray']:.1f}",
                f"{wcpu['driver']:.1f} / {wcpu['actors']:.1f} / {wcpu['ray']:.1f}",
                f"{wcpu['actors'] / ww:.2f}",
                f"{actors * one[1][3]['actors'] / wcpu['actors']:.2f}x"
                if one and actors != 1 else "",
                f"{wm['eval/acc']:.3f}", f"{same}/{n}, {same_warm}/{n}",
            ])
            print(f"{n} questions, ray {actors} actors: cold {cw:.1f} s, warm {ww:.1f} s, "
                  f"{same}/{n} and {same_warm}/{n} answers as local", flush=True)
            if one and actors != 1:
                summary.append(f"{n} questions, {actors} actors vs 1: cold {one[0][0] / cw:.2f}x, "
                               f"warm {one[1][0] / ww:.2f}x")
    header = ["questions", "executor", "cold wall s", "warm wall s", "start s",
              "cold: vs 1 actor", "warm: vs 1 actor", "warm vs local after start",
              "driver share (warm)", "Searchers built (warm)",
              "CPU s (cold): driver / actors / Ray", "CPU s (warm)", "actors' CPU / wall (warm)",
              "warm on free cores: N x CPU(1 actor) / CPU(N)", "acc",
              "answers = local (cold, warm)"]
    table = markdown_table(header, rows)
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    note = (
        f"MCTS* (T={args.iterations}, b={cfg.search.branch}) on Countdown "
        f"{args.split} questions, backend=hf (policy_0 `{policy.name}`), prm={args.prm}; "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), one torch "
        f"thread per process; local: every question side by side, `warm wall` = after building "
        f"its models; Ray: executor defaults (chunk_size auto: one chunk of questions/actors per "
        f"actor), best of {args.repeats}. `uptime` before: {load_before}; after: {load_after}."
    )
    print(note + "\n\n" + table + "\n\n" + "\n".join(summary))
    args.output.write_text("# bench_ray\n\n`OMP_NUM_THREADS=1 python experiments/bench_ray.py`\n\n"
                   + note + "\n\n" + table + "\n\n" + "\n".join(f"- {s}" for s in summary)
                   + "\n")


if __name__ == "__main__":
    main()

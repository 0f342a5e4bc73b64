"""Peak memory and wall time of each step of a self-training loop.

A loop's steps run in one process (Lightning trainings, HF scorers) plus the processes it
starts (a vLLM engine core per evaluation), so the peak that matters is the resident memory
of the whole process tree. ``record`` runs a command and samples that every few seconds;
``report`` assigns the samples to the loop's steps by the start and end times their
manifests record (``finished_at`` - ``seconds``) and prints one row per step:

    python experiments/loop_memory.py record --out mem.tsv -- \\
        python run.py experiment=smollm2_countdown threads=1 stage.dir=outputs/smollm2
    python experiments/loop_memory.py report outputs/smollm2 mem.tsv

Samples are lines ``<unix time> <RSS MiB of the tree> <1-min load>``. RSS counts a page
shared by two processes twice (a forked engine's), so the figure is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path


def tree_rss_mib(pid: int) -> int:
    """Resident memory (MiB) of process ``pid`` and all its descendants (threads once)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total // 2**20


def record(command: list[str], out: Path, every: float) -> int:
    """Run ``command``, writing a sample of its tree's memory every ``every`` seconds."""
    proc = subprocess.Popen(command)
    with out.open("a") as f:
        while proc.poll() is None:
            f.write(f"{time.time():.0f} {tree_rss_mib(proc.pid)} {os.getloadavg()[0]:.2f}\n")
            f.flush()
            time.sleep(every)
    return proc.returncode


def read_samples(path: Path) -> list[tuple[float, int, float]]:
    """``(time, MiB, load)`` per sample line."""
    rows = []
    for line in path.read_text().splitlines():
        t, mib, load = line.split()
        rows.append((float(t), int(mib), float(load)))
    return rows


def step_spans(loop_dir: Path) -> list[tuple[str, float, float]]:
    """``(step, start, end)`` of every finished step of the loop, in order of start."""
    spans = []
    for manifest in loop_dir.rglob("manifest.json"):
        data = json.loads(manifest.read_text())
        if "step" not in data or "finished_at" not in data:
            continue  # a model folder's manifest, not a step's
        end = datetime.fromisoformat(data["finished_at"]).timestamp()
        spans.append((data["step"], end - float(data["seconds"]), end))
    return sorted(spans, key=lambda s: s[1])


def report(loop_dir: Path, samples_path: Path) -> str:
    """The markdown table: step, wall time, peak tree RSS and mean load over the step."""
    samples = read_samples(samples_path)
    lines = ["| step | wall time | peak RSS (process tree) | mean load |", "|---|---|---|---|"]
    for step, start, end in step_spans(loop_dir):
        inside = [s for s in samples if start - 1 <= s[0] <= end + 1]
        peak = f"{max(s[1] for s in inside) / 1024:.1f} GiB" if inside else "-"
        load = f"{sum(s[2] for s in inside) / len(inside):.1f}" if inside else "-"
        lines.append(f"| {step} | {(end - start) / 60:.1f} min | {peak} | {load} |")
    if samples:
        lines.append(f"| whole run | {(samples[-1][0] - samples[0][0]) / 60:.1f} min | "
                     f"{max(s[1] for s in samples) / 1024:.1f} GiB | "
                     f"{sum(s[2] for s in samples) / len(samples):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    rec = sub.add_parser("record", help="run a command, sampling its memory")
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    rec.add_argument("command", nargs=argparse.REMAINDER)
    rep = sub.add_parser("report", help="per-step table of a loop folder and its samples")
    rep.add_argument("loop_dir", type=Path)
    rep.add_argument("samples", type=Path)
    args = parser.parse_args(argv)
    if args.mode == "record":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("record: give the command after --")
        return record(command, args.out, args.every)
    for path in (args.loop_dir, args.samples):
        if not path.exists():
            parser.error(f"{path} does not exist")
    print(report(args.loop_dir, args.samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time the README's first section from a fresh clone: each command as a new user types it.

    .venv/bin/python experiments/first_five_minutes.py              # all but the main job
    .venv/bin/python experiments/first_five_minutes.py --main       # the main job too (~25 min)

The commands are read from the README's "The first five minutes" block, so what is timed is
what the page says. The repository is cloned (its committed state) into a scratch folder and
each command runs there with this virtual environment's Python, one after another, in a clean
environment (no wandb credentials). For each it records the wall time, the CPU time of the
process tree (user + system of the finished children) and the load average before and after;
the wall time on a busy machine is an upper bound, the CPU time is what a quiet one needs
(every command here runs one torch thread, or none). `<run>` in a command is the folder the
search before it wrote. Writes ``experiments/results/first_five_minutes.md``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## The first five minutes"


def readme_commands(readme: Path) -> list[str]:
    """The ``python run.py ...`` lines of the README's first-five-minutes code block, with a
    continuation line (one that starts with an option) joined to the line before."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(HEADING)
    block = text[text.index("```bash", start) + len("```bash"):]
    block = block[:block.index("```")]
    commands: list[str] = []
    for line in block.splitlines():
        code = line.split("#", 1)[0].strip()
        if code.startswith("python run.py"):
            commands.append(code)
        elif code and commands:
            commands[-1] += " " + code
    return commands


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(command: str, clone: Path, python: str) -> dict:
    """Run one README command in the clone; its wall and CPU seconds and the load."""
    argv = shlex.split(command)
    argv[0] = python
    if "<run>" in command:
        runs = sorted((clone / "outputs" / "search").iterdir())
        argv = [a.replace("<run>", runs[-1].name) for a in argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.pop("REST_MCTS_ROOT", None)
    load_before = os.getloadavg()[0]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, cwd=clone, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise SystemExit(f"error: `{command}` exited {proc.returncode}:\n{tail}")
    return {"command": command, "wall": wall, "cpu": cpu, "load_before": load_before,
            "load_after": os.getloadavg()[0]}


def report(rows: list[dict], commit: str) -> str:
    lines = [
        "# The README's first five minutes, timed from a fresh clone",
        "",
        "Command: `.venv/bin/python experiments/first_five_minutes.py"
        + (" --main" if any(r["command"] == "python run.py" for r in rows) else "") + "`",
        f"(commit {commit}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; 2-core VM,"
        f" {os.cpu_count()} CPUs seen). Each command as the README writes it, in a fresh clone,"
        " one after another. Wall: seconds on the clock; CPU: user + system seconds of the"
        " command's process tree, which is what a quiet machine needs when the command runs one"
        " thread; load: the 1-minute load average before and after.",
        "",
        "| command | wall s | CPU s | load before | load after |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| `{r['command']}` | {r['wall']:.1f} | {r['cpu']:.1f} |"
                     f" {r['load_before']:.1f} | {r['load_after']:.1f} |")
    if not any(r["command"] == "python run.py" for r in rows):
        lines += ["", "The main job (`python run.py`, `--main`) was not timed in this run: its"
                  " quiet-machine time is in `fresh_clone_seed0.md`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--main", action="store_true", help="also time `python run.py`")
    parser.add_argument("--out", default=str(ROOT / "experiments/results/first_five_minutes.md"))
    args = parser.parse_args(argv)
    commands = readme_commands(ROOT / "README.md")
    if not args.main:
        commands = [c for c in commands if c != "python run.py"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="first5-") as tmp:
        clone = Path(tmp) / "rest-mcts"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        for command in commands:
            print(f"running: {command}", flush=True)
            rows.append(run_one(command, clone, sys.executable))
            r = rows[-1]
            print(f"  wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, load {r['load_before']:.1f}"
                  f" -> {r['load_after']:.1f}", flush=True)
    Path(args.out).write_text(report(rows, commit), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

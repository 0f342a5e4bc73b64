"""experiments/loop_memory.py: memory samples assigned to a loop's steps by their manifests'
times, and the sampler of a real process tree."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import loop_memory as lm  # experiments/ is on pytest's pythonpath (pyproject.toml)


def _step(folder: Path, step: str, finished_at: str, seconds: float) -> None:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(
        {"step": step, "finished_at": finished_at, "seconds": seconds}))


def test_samples_go_to_the_step_that_was_running(tmp_path):
    from datetime import datetime

    loop = tmp_path / "loop"
    _step(loop / "iter_0" / "d_v0", "iter_0/d_v0", "2026-01-01T00:10:00", 600)
    _step(loop / "iter_0" / "prm", "iter_0/prm", "2026-01-01T00:12:00", 120)
    (loop / "iter_0" / "prm" / "model").mkdir()
    (loop / "iter_0" / "prm" / "model" / "manifest.json").write_text('{"produced_by": "x"}')
    t0 = datetime.fromisoformat("2026-01-01T00:00:00").timestamp()
    samples = tmp_path / "mem.tsv"
    samples.write_text("".join(f"{t0 + t:.0f} {mib} {load}\n" for t, mib, load in [
        (60, 1024, 2.0), (300, 3072, 4.0), (660, 6144, 3.0), (700, 2048, 1.0)]))
    table = lm.report(loop, samples).splitlines()
    assert table[2] == "| iter_0/d_v0 | 10.0 min | 3.0 GiB | 3.0 |"
    assert table[3] == "| iter_0/prm | 2.0 min | 6.0 GiB | 2.0 |"
    assert table[4].startswith("| whole run | 10.7 min | 6.0 GiB |")


def test_record_samples_the_whole_process_tree(tmp_path):
    out = tmp_path / "mem.tsv"
    child = "import subprocess, sys; subprocess.run([sys.executable, '-c', " \
            "'b = bytearray(300 * 2**20); import time; time.sleep(1.5)'])"
    assert lm.record([sys.executable, "-c", child], out, every=0.2) == 0
    rows = lm.read_samples(out)
    assert len(rows) >= 3 and all(load >= 0 for _, _, load in rows)
    assert max(mib for _, mib, _ in rows) >= 300  # the grandchild's 300 MiB counted
    assert os.path.getsize(out) > 0

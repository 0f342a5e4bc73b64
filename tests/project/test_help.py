"""``python run.py --help``: every stage with one line, the everyday options, the groups; not
the whole composed config (``--cfg job`` prints that)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.paths import CONF, ROOT


def test_help_lists_every_stage_in_one_line_each_and_stays_short():
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    section = lines[lines.index("== Stages (stage=...) ==") + 1:]
    section = section[:section.index("")]
    stages = sorted(p.stem for p in (CONF / "stage").glob("*.yaml"))
    assert sorted(line.split()[0] for line in section) == stages  # one line per stage
    assert all(len(line.split()) > 3 for line in section)  # ... that says what it does
    assert any(line.startswith("search: ") and "mcts_star" in line for line in lines)
    assert len(lines) < 60 and "hydra:" not in proc.stdout  # not the composed config

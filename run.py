"""Single entry point: `python run.py stage=<name> [group=choice ...] [key=value ...]`.

Composes conf/config.yaml with Hydra, validates it, seeds everything and runs one stage
(rest_mcts.cli; installed, the same command is `rest-mcts ...` or `python -m rest_mcts ...`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # a plain checkout works too

from rest_mcts.cli import JobFailed, fail, in_multirun, job, main  # noqa: E402,F401

if __name__ == "__main__":
    main()

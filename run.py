"""Single entry point: `python run.py stage=<name> [group=choice ...] [key=value ...]`.

Composes conf/config.yaml with Hydra, validates it, seeds everything and runs one stage.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("REST_MCTS_ROOT", str(ROOT))
sys.path.insert(0, str(ROOT / "src"))  # works from a plain checkout, installed or not
# ... and so do the processes a launcher starts (submitit's jobs unpickle the stage there)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from rest_mcts.backends.openai_client import ServerError  # noqa: E402
from rest_mcts.config import ConfigError, normalize_cli_args  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from rest_mcts.stages import run_stage

    try:
        return run_stage(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except ServerError as err:  # a model server failed for good (after its retries)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    try:
        sys.argv[1:] = normalize_cli_args(ROOT / "conf", sys.argv[1:])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    main()

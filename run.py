"""Single entry point: `python run.py stage=<name> [group=choice ...] [key=value ...]`.

Composes conf/config.yaml with Hydra, validates it, seeds everything and runs one stage.
"""

from __future__ import annotations

import errno
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
from rest_mcts.overrides import check_overrides  # noqa: E402


# the machine refused a write (permissions, a read-only or full disk): the user's to fix, not a bug
UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


class JobFailed(RuntimeError):
    """A multirun job stopped by a one-line error: Hydra records the job as failed, runs the
    sweep's other jobs, and the sweep summary lists it (rest_mcts.sweeps)."""


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def fail(err: Exception, code: int) -> None:
    """Print the one-line error; exit with `code` (a single run) or fail this job alone."""
    print(f"error: {err}", file=sys.stderr)
    if in_multirun():
        raise JobFailed(str(err)) from None
    sys.exit(code)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from rest_mcts.stages import run_stage

    try:
        return run_stage(cfg)
    except ConfigError as err:
        fail(err, 2)
    except ServerError as err:  # a model server failed for good (after its retries)
        fail(err, 1)
    except OSError as err:
        if err.errno not in UNWRITABLE:
            raise
        # what was finished is on disk already (rows are appended one by one, files atomic)
        fail(ConfigError(f"cannot write {err.filename or 'a file'}: {err.strerror}"), 2)
    return None


if __name__ == "__main__":
    try:
        sys.argv[1:] = normalize_cli_args(ROOT / "conf", sys.argv[1:])
        check_overrides(ROOT / "conf", sys.argv[1:])  # unknown keys, an unwritable folder
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    main()

"""The command line: `rest-mcts stage=<name> [group=choice ...] [key=value ...]`.

Composes the project's `conf/config.yaml` (and the user's own config folders:
`rest_mcts.config_sources`) with Hydra, validates it, seeds everything and runs one stage.
`python run.py ...` in a checkout, `python -m rest_mcts ...` and the `rest-mcts` console
script (after `pip install -e .`) are the same entry point, from any folder.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

from omegaconf import DictConfig

from rest_mcts.utils.errors import ConfigError

SRC = Path(__file__).resolve().parents[1]  # the folder that holds the package


# the machine refused a write (permissions, a read-only or full disk): the user's to fix, not a bug
UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


class JobFailed(RuntimeError):
    """A multirun job stopped by a one-line error: Hydra records the job as failed, runs the
    sweep's other jobs, and the sweep summary lists it (rest_mcts.sweeps)."""


def conf_dir() -> Path:
    """The project's `conf/`, found beside the source tree (a checkout or `pip install -e .`).

    Raises:
        ConfigError: there is no `conf/` next to the package (a non-editable install).
    """
    folder = SRC.parent / "conf"
    if not (folder / "config.yaml").is_file():
        raise ConfigError(f"conf/ not found at {folder}: run from a checkout of rest-mcts, "
                          "installed with pip install -e .")
    return folder


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def fail(err: Exception, code: int) -> None:
    """Print the one-line error; exit with `code` (a single run) or fail this job alone."""
    print(f"error: {err}", file=sys.stderr)
    if in_multirun():
        raise JobFailed(str(err)) from None
    sys.exit(code)


def job(cfg: DictConfig) -> float | None:
    """One Hydra job: run the stage of `cfg`, each expected failure one line."""
    from rest_mcts.backends.openai_client import ServerError
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


def prepare_environment(root: Path) -> None:
    """`REST_MCTS_ROOT` (paths.root_dir: outputs/, artifacts/) defaults to the project folder;
    processes a launcher starts import the package from this source tree too (submitit's jobs
    unpickle the stage there)."""
    os.environ.setdefault("REST_MCTS_ROOT", str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)


def main(argv: list[str] | None = None) -> None:
    """Check the command line (one-line errors, exit status 2), then run Hydra's job."""
    import hydra

    from rest_mcts.config import normalize_cli_args
    from rest_mcts.overrides import check_overrides

    args = sys.argv[1:] if argv is None else list(argv)
    try:
        conf = conf_dir()
        prepare_environment(conf.parent)
        args = normalize_cli_args(conf, args)
        check_overrides(conf, args)  # unknown keys, an unwritable folder
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = args
    hydra.main(version_base="1.3", config_path=str(conf), config_name="config")(job)()

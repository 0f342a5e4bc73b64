"""Read a Hydra multirun folder: which jobs the sweep asked for, which ran, which failed.

A multirun folder (``hydra.sweep.dir``) holds ``multirun.yaml`` (the sweep's config, written
by the sweeper before any job starts) and one folder per job with ``.hydra/overrides.yaml``,
``.hydra/hydra.yaml`` and, when the job's stage returned, ``metrics.json`` (written by
:func:`rest_mcts.stages.run_stage`). A job is

* ``ok``: its folder has a readable ``metrics.json``;
* ``failed``: its folder exists without one (the stage raised, or the job was killed);
* ``missing``: the sweep asked for it (Hydra's basic sweeper: the product of every sweep
  override, ``hydra.sweeper.params`` merged with the command line, the command line
  winning) and no folder holds it.

Swept keys are the override keys with more than one value (``search.alpha=0.3,0.5``); a job is
matched to the sweep by its values of them, never by folder name.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rest_mcts.utils.io import read_json
from rest_mcts.utils.swept import job_values, sweep_overrides, swept_keys

log = logging.getLogger(__name__)

JOB_STATUSES = ("ok", "failed", "missing")


@dataclass(frozen=True)
class Job:
    """One job of a sweep.

    Attributes:
        values: the swept keys' values (as the override writes them, e.g. ``"0.5"``).
        status: ``ok``, ``failed`` or ``missing``.
        num: Hydra's job number (``hydra.job.num``; the sweep's order for a missing job).
        folder: the job's folder (None when missing).
        metrics: the numeric scalars of ``metrics.json`` (empty unless ok).
        reason: why a job is not ok, one line.
    """

    values: dict[str, str]
    status: str
    num: int | None = None
    folder: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def __post_init__(self) -> None:
        if self.status not in JOB_STATUSES:
            raise ValueError(f"job status {self.status!r} is not one of {JOB_STATUSES}")

    def label(self) -> str:
        """``#3 search.alpha=0.5,seed=1`` (number and swept values)."""
        num = "?" if self.num is None else str(self.num)
        return f"#{num} " + ",".join(f"{k}={v}" for k, v in self.values.items())


@dataclass(frozen=True)
class Sweep:
    """A multirun folder read back.

    Attributes:
        folder: the multirun folder.
        swept: the swept keys, in the sweep's order.
        expected: how many jobs the sweep asked for (None: unknown, no multirun.yaml or a
            sweeper other than Hydra's basic one).
        jobs: every job, ok, failed or missing, in job-number order.
    """

    folder: Path
    swept: tuple[str, ...]
    expected: int | None
    jobs: tuple[Job, ...]

    def by_status(self, status: str) -> list[Job]:
        return [job for job in self.jobs if job.status == status]


def _parse(overrides: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(overrides))


def expected_jobs(folder: Path) -> tuple[tuple[str, ...], list[dict[str, str]] | None]:
    """The swept keys (:func:`rest_mcts.utils.swept.swept_keys`) and, in job order, each
    job's swept values, from ``multirun.yaml`` (the basic sweeper's own expansion);
    ``((), None)`` when the file is absent and ``(keys, None)`` when the sweeper is not the
    basic one (its jobs cannot be listed)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    path = folder / "multirun.yaml"
    if not path.is_file():
        return (), None
    cfg = OmegaConf.load(path)
    hydra = cfg.get("hydra") or {}
    sweeper = hydra.get("sweeper") or {}
    overrides = sweep_overrides(sweeper.get("params"),
                                list((hydra.get("overrides") or {}).get("task") or []))
    swept = swept_keys(overrides)
    if "BasicSweeper" not in str(sweeper.get("_target_", "")):
        return swept, None
    batches = BasicSweeper.split_arguments(_parse(overrides), None)
    return swept, [job_values(job, swept) for job in batches[0]]


def read_metrics(path: Path) -> dict[str, float]:
    """The finite numeric scalars of a ``metrics.json`` (anything else is left out)."""
    raw = read_json(path, dict)
    out = {}
    for key, value in raw.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                out[str(key)] = float(value)
    return out


def _job_folders(folder: Path) -> list[Path]:
    """Every folder under ``folder`` with ``.hydra/overrides.yaml`` (a job folder)."""
    return sorted({p.parent.parent for p in folder.rglob("overrides.yaml")
                   if p.parent.name == ".hydra"})


def _job_num(job_dir: Path) -> int | None:
    path = job_dir / ".hydra" / "hydra.yaml"
    try:
        return int(OmegaConf.load(path).hydra.job.num)
    except Exception:  # noqa: BLE001 - a number is a nicety; the folder name may carry it
        head = job_dir.name.split("_", 1)[0]
        return int(head) if head.isdigit() else None


def _overrides_of(job_dir: Path) -> list[str]:
    """The job's command-line overrides (``.hydra/overrides.yaml``)."""
    return [str(o) for o in (OmegaConf.load(job_dir / ".hydra" / "overrides.yaml") or [])]


def _read_job(job_dir: Path, swept: tuple[str, ...]) -> Job:
    values = job_values(_overrides_of(job_dir), swept)
    num = _job_num(job_dir)
    metrics_path = job_dir / "metrics.json"
    if not metrics_path.is_file():
        return Job(values, "failed", num, job_dir, reason="no metrics.json (the job failed "
                   "or was stopped; see its log)")
    try:
        metrics = read_metrics(metrics_path)
    except (OSError, ValueError) as err:
        return Job(values, "failed", num, job_dir, reason=f"unreadable metrics.json: {err}")
    return Job(values, "ok", num, job_dir, metrics)


def read_sweep(folder: str | Path) -> Sweep:
    """Read a multirun folder: every job the sweep asked for or that left a folder.

    Without ``multirun.yaml`` (a folder put together by hand) the swept keys are those whose
    values differ between the job folders, and nothing can be known to be missing.

    Raises:
        FileNotFoundError: ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    swept, wanted = expected_jobs(folder)
    dirs = _job_folders(folder)
    if not swept:  # no multirun.yaml: the keys whose values differ between jobs
        seen: dict[str, set[str]] = {}
        for d in dirs:
            for o in _parse(_overrides_of(d)):
                seen.setdefault(o.get_key_element(), set()).add(o.get_value_element_as_str())
        swept = tuple(k for k, v in seen.items() if len(v) > 1)
    found = [_read_job(d, swept) for d in dirs]
    jobs = list(found)
    if wanted is not None:
        have = [tuple(sorted(job.values.items())) for job in found]
        for num, values in enumerate(wanted):
            key = tuple(sorted(values.items()))
            if key in have:
                have.remove(key)
            else:
                jobs.append(Job(values, "missing", num, reason="no job folder"))
    jobs.sort(key=lambda j: (j.num is None, j.num if j.num is not None else 0))
    return Sweep(folder, swept, None if wanted is None else len(wanted), tuple(jobs))

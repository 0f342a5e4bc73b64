"""The Hydra callback that summarises every multirun when it ends (conf/hydra/default.yaml):

    hydra:
      callbacks:
        sweep_summary:
          _target_: rest_mcts.sweeps.callback.SweepSummary

It writes ``summary.csv``, ``summary.md`` and the plots into ``hydra.sweep.dir``
(:func:`rest_mcts.sweeps.aggregate.aggregate`). Hydra's sweeper raises once all jobs of a
multirun have run if one of them failed, and then never calls ``on_multirun_end``; so after
the last job of a multirun in which a job failed (the basic launcher runs them all in this
process), the summary is written from ``on_job_end``, the failed job listed. A summary that
fails itself is logged and never fails the multirun. Single runs are left alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    """Summarise a multirun folder over seeds at the end of the multirun.

    Args:
        plots: write the PNGs too (tables only when false).
    """

    def __init__(self, plots: bool = True) -> None:
        self.plots = bool(plots)
        self.failed_jobs = 0

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._summarise(Path(config.hydra.sweep.dir))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """Count failed jobs; after the last job of a sweep that had one, summarise now
        (Hydra will raise before ``on_multirun_end``)."""
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        hydra = config.get("hydra")
        if hydra is None or hydra.get("mode") != RunMode.MULTIRUN:
            return
        if getattr(job_return, "status", None) == JobStatus.FAILED:
            self.failed_jobs += 1
        if not self.failed_jobs:
            return
        from rest_mcts.sweeps.jobs import expected_jobs

        sweep_dir = Path(hydra.sweep.dir)
        try:
            _, wanted = expected_jobs(sweep_dir)
        except Exception as err:  # noqa: BLE001 - never fail a job for its summary
            log.warning("sweep summary: cannot read %s: %s", sweep_dir / "multirun.yaml", err)
            return
        if wanted is not None and int(hydra.job.num) == len(wanted) - 1:
            self._summarise(sweep_dir)

    def _summarise(self, folder: Path) -> None:
        from rest_mcts.sweeps.aggregate import aggregate

        try:
            aggregate(folder, plots=self.plots)
        except Exception as err:  # noqa: BLE001 - the jobs' results stand without it
            log.warning("sweep summary of %s failed: %s: %s", folder, type(err).__name__, err)
            return
        log.info("sweep summary: %s", folder / "summary.md")

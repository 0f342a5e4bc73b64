"""Steps that run once: a finished step leaves a manifest, a restarted job skips it.

Each step of the self-training loop owns a folder under the loop's root (``iter_k/<step>``).
When the step function returns, ``manifest.json`` is written into that folder (atomically)
with what produced it, its inputs, its outputs and its wall time. A job killed at any point
and started again finds every finished step's manifest and goes on at the first step
without one; a step that was cut half way resumes inside its own folder (the search
stage skips questions already written, training resumes from ``last.ckpt``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from rest_mcts.utils.io import json_field, read_json, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class StepRunner:
    """Runs named steps under ``root``, each at most once to completion.

    Attributes:
        root: the loop's folder.
        plan: every step the job will run, in order (None: unknown); each step's log line
            then says "step i of n" and, once a step ran in this process, a rough ETA
            (the mean wall time of the steps run so far times the steps left).
        ran: names of the steps run (not skipped) by this runner.
        skipped: names of the steps found finished.
    """

    def __init__(self, root: str | Path, plan: list[str] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.plan = list(plan) if plan is not None else None
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self._ran_seconds = 0.0

    def progress(self, name: str) -> str:
        """``step i of n: <name>`` (just ``step <name>`` for a step outside the plan), and
        the elapsed time and a rough ETA once a step has run in this process."""
        if self.plan is None or name not in self.plan:
            return f"step {name}"
        i, n = self.plan.index(name) + 1, len(self.plan)
        line = f"step {i} of {n}: {name}"
        if self.ran:
            mean = self._ran_seconds / len(self.ran)
            left = sum(1 for step in self.plan[i - 1:] if not self.done(step))
            line += (f" [{_minutes(self._ran_seconds)} so far, about "
                     f"{_minutes(mean * left)} to go]")
        return line

    def folder(self, name: str) -> Path:
        return self.root / name

    def done(self, name: str) -> bool:
        return (self.folder(name) / MANIFEST).is_file()

    def outputs(self, name: str) -> dict[str, Any]:
        """The outputs recorded by a finished step (FileFormatError naming its manifest when
        that is empty, not JSON or has no ``outputs`` object)."""
        path = self.folder(name) / MANIFEST
        return json_field(read_json(path, dict), "outputs", path, dict)

    def run(
        self,
        name: str,
        fn: Callable[[Path], dict[str, Any]],
        *,
        produced_by: str,
        inputs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run ``fn(folder)`` unless the step is finished; return its outputs.

        Args:
            name: the step's folder relative to the root, e.g. ``"iter_1/search"``.
            fn: does the work in ``folder``; returns JSON-able outputs (paths, metrics).
            produced_by: what produced the artefacts (written into the manifest).
            inputs: what the step consumed (models, data files), for the manifest.
        """
        folder = self.folder(name)
        if self.done(name):
            self.skipped.append(name)
            log.info("step %s: finished earlier, skipped", name)
            return self.outputs(name)
        folder.mkdir(parents=True, exist_ok=True)
        log.info("%s: running (%s)", self.progress(name), produced_by)
        start = time.time()
        outputs = fn(folder)
        self._ran_seconds += time.time() - start
        write_json(folder / MANIFEST, {
            "step": name,
            "produced_by": produced_by,
            "inputs": inputs or {},
            "outputs": outputs,
            "seconds": time.time() - start,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })
        self.ran.append(name)
        return outputs


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"

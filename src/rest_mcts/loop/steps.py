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
        ran: names of the steps run (not skipped) by this runner.
        skipped: names of the steps found finished.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.ran: list[str] = []
        self.skipped: list[str] = []

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
        log.info("step %s: running (%s)", name, produced_by)
        start = time.time()
        outputs = fn(folder)
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

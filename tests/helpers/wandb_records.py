"""Read an offline wandb run back: the records of its `run-<id>.wandb` file.

wandb 0.31 writes the file from its Go core and ships no Python reader, so this is the
reader: a W&B header (":W&B", magic, version: 7 bytes), then LevelDB-log records in 32 KiB
blocks (crc32, length, type: 7 bytes; types full / first / middle / last), each a
`wandb.proto.wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:  # zero padding to the block's end
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        buf = chunk if kind in (FULL, FIRST) else buf + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(buf)
            yield record


@dataclass
class OfflineRun:
    """What one offline run folder holds: id, config, history rows, summary, artifacts."""

    folder: Path
    id: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None

    def metric(self, name: str) -> list[Any]:
        return [row[name] for row in self.history if name in row]


def read_run(folder: str | Path, wait: float = 15.0) -> OfflineRun:
    """The run in ``folder``; waits up to ``wait`` seconds for its exit record (wandb's core
    may still be writing the file when ``finish()`` has returned)."""
    folder = Path(folder)
    (path,) = folder.glob("run-*.wandb")
    deadline = time.monotonic() + wait
    while True:
        run = _read(folder, path)
        if run.exit_code is not None or time.monotonic() > deadline:
            return run
        time.sleep(0.1)


def _read(folder: Path, path: Path) -> OfflineRun:
    run = OfflineRun(folder)
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run.id, run.group, run.job_type = r.run.run_id, r.run.run_group, r.run.job_type
            run.name, run.tags = r.run.display_name, list(r.run.tags)
            run.config.update({u.key: json.loads(u.value_json) for u in r.run.config.update})
        elif kind == "config":
            run.config.update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "history":
            run.history.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json)
                                for i in r.history.item})
        elif kind == "summary":
            run.summary.update({"/".join(u.nested_key) or u.key: json.loads(u.value_json)
                                for u in r.summary.update})
        elif kind == "artifact":
            a = r.artifact
            run.artifacts.append({
                "name": a.name, "type": a.type, "aliases": list(a.aliases),
                "metadata": json.loads(a.metadata) if a.metadata else {},
                "files": [c.path for c in a.manifest.contents],
            })
        elif kind == "exit":
            run.exit_code = r.exit.exit_code
    return run


def offline_runs(save_dir: str | Path) -> list[OfflineRun]:
    """Every offline run under ``save_dir/wandb``, oldest first."""
    return [read_run(f) for f in sorted(Path(save_dir, "wandb").glob("offline-run-*"))]

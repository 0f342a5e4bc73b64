"""Small, crash-safe file writers: whole files are replaced atomically, JSONL lines are
appended whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


def _write_atomic(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` atomically (temp file + fsync + rename): a reader or a
    killed writer never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (temp file + rename), so a reader never sees half a file."""
    return _write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def append_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Append rows, one JSON line each, with a single write + fsync per call."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows)
    if not data:
        return
    with open(path, "a") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file; a torn last line (killed writer) is dropped, other bad lines raise."""
    path = Path(path)
    if not path.exists():
        return []
    rows: list[dict] = []
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) and not line.endswith("\n"):
                break  # a line cut by a kill: not a finished row
            raise ValueError(f"{path}:{i}: not valid JSON ({err.msg})") from err
    return rows


def repair_jsonl(path: str | Path) -> int:
    """Cut a torn last line (left by a killed writer) so appends start on a fresh line.

    Returns the number of bytes removed."""
    path = Path(path)
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(keep)
    return len(data) - keep


def jsonl_objects(
    path: str | Path, error: type[Exception] = ValueError
) -> Iterator[tuple[str, dict]]:
    """``("<file>:<line>", object)`` for each non-blank line of a JSONL file of objects; a line
    that is not a JSON object raises ``error`` naming the file and line."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{where}: invalid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise error(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write a whole JSONL file atomically (temp file + rename): a kill leaves either the
    finished file or none, never a partial one (an empty ``rows`` gives an empty file)."""
    return _write_atomic(
        path, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows)
    )


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Fill a folder atomically: yields a temporary sibling, renamed to ``path`` when the
    block ends without error (an existing ``path`` is replaced). A killed or failed writer
    leaves the old folder (or none), never half a model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)

"""Small, crash-safe file writers and the one reader of JSON and JSONL files.

Writers: whole files are replaced atomically (with the mode the umask gives a new file),
JSONL lines are appended whole or not at all.

Reader: :func:`read_json`, :func:`read_jsonl` and :func:`jsonl_objects` read UTF-8 text and
JSON through one path, and every way a file can be wrong (bytes that are not UTF-8, invalid
JSON, an empty file, valid JSON of the wrong shape) is one :class:`FileFormatError` whose
message names the file and the line (or field): a :class:`~rest_mcts.config.ConfigError`,
so ``run.py`` prints it as one line and exits with status 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from rest_mcts.utils.errors import ConfigError


class FileFormatError(ConfigError):
    """A file the run reads is not what it should hold; the message is one line that starts
    with ``<file>:`` or ``<file>:<line>:`` and says what is wrong."""


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it
    (``/proc/self/status``; setting it to read it back races with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_atomic(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` atomically (temp file + fsync + rename): a reader or a
    killed writer never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; a file written in place would get 0666 less the umask
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
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


def read_text(path: str | Path, error: type[FileFormatError] = FileFormatError) -> str:
    """The UTF-8 text of ``path``.

    Raises:
        FileNotFoundError: there is no such file.
        FileFormatError: (or ``error``) the bytes are not UTF-8, naming the file and line.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise error(f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at column "
                    f"{column})") from None


def json_kind(value: Any) -> str:
    """What a decoded JSON value is, for error lines: 'an object', 'a list', 'a string',
    'a boolean', 'null' or 'a number'."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def read_json(
    path: str | Path, expect: type | None = None,
    error: type[FileFormatError] = FileFormatError,
) -> Any:
    """The JSON value in ``path``; with ``expect`` (``dict`` or ``list``) it must be one.

    Raises:
        FileNotFoundError: there is no such file.
        FileFormatError: (or ``error``) not UTF-8, empty, invalid JSON or the wrong kind of
            value (one line naming the file and line).
    """
    text = read_text(path, error)
    if not text.strip():
        raise error(f"{path}: empty file (expected JSON)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if expect is not None and not isinstance(value, expect):
        raise error(f"{path}: expected {json_kind(expect())} in JSON, got {json_kind(value)}")
    return value


def json_field(record: dict, key: str, path: str | Path, kind: type | None = None) -> Any:
    """``record[key]`` of a JSON object read from ``path``; FileFormatError naming the file
    and the field when it is missing (or is not a ``kind``)."""
    if key not in record:
        raise FileFormatError(f"{path}: no field '{key}'")
    value = record[key]
    if kind is not None and not isinstance(value, kind):
        raise FileFormatError(f"{path}: field '{key}' is {json_kind(value)}, expected "
                              f"{json_kind(kind())}")
    return value


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


def _objects(
    path: Path, error: type[FileFormatError], torn_ok: bool, required: Sequence[str] = ()
) -> Iterator[tuple[str, dict]]:
    """``("<file>:<line>", object)`` for each non-blank line; the one JSONL line reader.
    With ``torn_ok`` a last line without its newline that does not parse (a killed writer,
    possibly cut inside a UTF-8 character) is no row; any other bad line raises ``error``."""
    lines = path.read_bytes().splitlines(keepends=True)
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        torn = torn_ok and number == len(lines) and not raw.endswith(b"\n")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            if torn:
                return
            raise error(f"{where}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column "
                        f"{err.start + 1})") from None
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if torn:
                return
            raise error(f"{where}: invalid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise error(f"{where}: expected a JSON object, got {json_kind(row)}")
        missing = [key for key in required if key not in row]
        if missing:
            raise error(f"{where}: no field '{missing[0]}'")
        yield where, row


def read_jsonl(path: str | Path, required: Sequence[str] = ()) -> list[dict]:
    """The objects of a JSONL file ([] when there is none); a torn last line (a killed writer)
    is dropped.

    Raises:
        FileFormatError: a line that is not UTF-8, not JSON, not an object or lacks one of the
            ``required`` fields (one line naming the file and line).
    """
    path = Path(path)
    if not path.exists():
        return []
    return [row for _, row in _objects(path, FileFormatError, True, required)]


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
    path: str | Path, error: type[FileFormatError] = FileFormatError
) -> Iterator[tuple[str, dict]]:
    """``("<file>:<line>", object)`` for each non-blank line of a JSONL file of objects; a line
    that is not UTF-8, not JSON or not an object raises ``error`` (FileFormatError or a
    subclass) naming the file and line. Every line must be whole (no torn last line)."""
    return _objects(Path(path), error, False)


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

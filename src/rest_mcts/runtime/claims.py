"""Run folders that one run owns: an exclusive lock for the run's lifetime, and a record of
the config that made the folder, checked on every resume.

Used by ``stage=search|eval`` (``hydra.run.dir``) and ``stage=loop`` (``stage.dir``): both
resume into a folder by skipping the work already in it, which is only right when the same
config made that work and no other run is adding to it at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import ConfigError
from rest_mcts.runtime.keys import result_config  # noqa: F401  (its old home)
from rest_mcts.utils.hashing import fingerprint
from rest_mcts.utils.io import read_json, write_json

LOCK_FILE = ".lock"

@contextlib.contextmanager
def own_folder(folder: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (``flock`` on ``folder/.lock``) while the block
    runs. The kernel drops the lock when the process ends, however it ends (also SIGKILL), so
    a killed run never leaves a stale lock.

    Raises:
        ConfigError: another process holds the folder (one line naming its pid).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError(f"{folder} is in use by another run (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield folder
    finally:
        os.close(fd)  # releases the lock


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``"key: old -> new"`` for each dotted key whose value differs (``<unset>`` when a key
    is on one side only), sorted by key."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        lines: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                lines.append(f"{name}: <unset> -> {_short(new[key])}")
            elif key not in new:
                lines.append(f"{name}: {_short(old[key])} -> <unset>")
            else:
                lines += config_diff(old[key], new[key], name)
        return lines
    return [] if old == new else [f"{prefix or '<config>'}: {_short(old)} -> {_short(new)}"]


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def claim_config(folder: Path, config: dict[str, Any], record: str, *, option: str,
                 where: str | None = None) -> str:
    """Record ``config`` (and its fingerprint) in ``folder/record`` the first time; on every
    later run refuse in one line when the recorded config differs, naming the options that
    changed. ``option`` is the setting that picks the folder (``hydra.run.dir``,
    ``stage.dir``); ``where`` names the folder in the message (default: its path).

    Returns the fingerprint."""
    key = fingerprint(config)
    path = folder / record
    if path.is_file():
        old = read_json(path, dict)
        if old.get("fingerprint") != key:
            changed = config_diff(old["config"], config) if "config" in old else []
            detail = ", ".join(changed) or f"fingerprint {old.get('fingerprint')} -> {key}"
            raise ConfigError(
                f"{where or folder} holds a run with another config ({detail}); choose a new "
                f"{option} or delete it")
        return key
    write_json(path, {"fingerprint": key, "config": config})
    return key

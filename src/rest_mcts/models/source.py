"""Where a model comes from: a local folder, or a Hugging Face hub id (no heavy imports).

`model.path`, `prm.path` and `prm.backbone` accept either. A path that exists locally is a
folder and is used as it is; a string shaped like a hub id (`org/name`, not starting with
`/`, `.` or `~`) is passed unchanged to ``from_pretrained``, which downloads it (or reads
the local Hugging Face cache) when the user has network; anything else is a missing folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(path: str | os.PathLike) -> bool:
    """Whether `path` names a hub repository (`org/name`) rather than a local folder."""
    text = str(path)
    return bool(HUB_ID.match(text)) and not text.startswith((".", "~", "/"))


def model_source(path: str | os.PathLike, what: str = "model") -> Path | str:
    """The local folder (a Path) or the hub id (the string, unchanged) that `path` names.

    Raises:
        FileNotFoundError: `path` neither exists locally nor is shaped like a hub id.
    """
    folder = Path(path).expanduser()
    if folder.exists():
        return folder
    if is_hub_id(path):
        return str(path)
    raise FileNotFoundError(
        f"{what} path '{path}' not found (give a local Hugging Face folder or a hub id org/name)"
    )

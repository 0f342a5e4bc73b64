"""Where a model comes from: a local folder, a GGUF file or a Hugging Face hub id.

`model.path`, `prm.path` and `prm.backbone` accept any of them. A `.gguf` file is converted
once into a cached Hugging Face folder (:mod:`rest_mcts.models.gguf`; the only heavy import
here, made on that path only); another path that exists locally is a folder and is used as
it is; a string shaped like a hub id (`org/name`, not starting with `/`, `.` or `~`) is
passed unchanged to ``from_pretrained``, which downloads it (or reads the local Hugging Face
cache) when the user has network; anything else is a missing folder.
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


def is_gguf(path: str | os.PathLike) -> bool:
    """Whether `path` names a GGUF file (by its suffix)."""
    return str(path).lower().endswith(".gguf")


def model_source(path: str | os.PathLike, what: str = "model") -> Path | str:
    """The local folder (a Path) or the hub id (the string, unchanged) that `path` names; a
    GGUF file gives its converted folder (converted on first use).

    Raises:
        FileNotFoundError: `path` neither exists locally nor is shaped like a hub id.
    """
    folder = Path(path).expanduser()
    if folder.is_file() and is_gguf(folder):
        from rest_mcts.models.gguf import converted_folder

        return converted_folder(folder)
    if folder.exists():
        return folder
    if is_hub_id(path):
        return str(path)
    raise FileNotFoundError(
        f"{what} path '{path}' not found (give a local Hugging Face folder or a hub id org/name)"
    )

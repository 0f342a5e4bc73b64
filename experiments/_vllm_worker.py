"""Functions that bench_vllm.py runs inside a vLLM worker process (``LLM.collective_rpc`` and
``LLM.apply_model`` pickle them by reference, so they live in a module the worker can
import, not in the script; the engine must be started with
``VLLM_ALLOW_INSECURE_SERIALIZATION=1`` to accept them)."""

from __future__ import annotations

import os
from typing import Any


def threads(worker: Any) -> dict[str, Any]:
    """The worker's torch threads and the cores it may run on."""
    import torch

    return {"torch_threads": torch.get_num_threads(),
            "cores": sorted(os.sched_getaffinity(0))}


def repack_tied_lm_head(model: Any) -> bool:
    """Rebuild the CPU GEMM of a tied ``lm_head`` from the (reloaded) embedding weight.

    On the CPU, vLLM 0.32 packs each linear layer's weight for its GEMM kernel when the model
    is loaded (``dispatch_cpu_unquantized_gemm``). ``reload_weights`` loads and repacks every
    layer the checkpoint has weights for, but a ``lm_head`` tied to ``embed_tokens`` has none
    of its own ("ParallelLMHead: Failed to load weights"), so it keeps the packed weight of
    the first checkpoint: the logits come from the old embedding. Returns whether there was
    such a head to repack.
    """
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

    head = getattr(model, "lm_head", None)
    embed = getattr(getattr(model, "model", None), "embed_tokens", None)
    if head is None or embed is None or head.weight.data_ptr() != embed.weight.data_ptr():
        return False
    dispatch_cpu_unquantized_gemm(head, remove_weight=False)
    return True

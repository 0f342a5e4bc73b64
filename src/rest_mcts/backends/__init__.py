"""Model backends behind the :class:`PolicyBackend` and :class:`ValueScorer` protocols.

- `base` -- the two protocols, their records (a seed per prompt row) and `greedy_texts`;
- `registry` -- which backends and scorers exist, their capabilities, building and closing them;
- `hf_policy`, `decode` -- batched generation with a Hugging Face causal LM and its KV-cached
  decode loop that drops finished rows;
- `hf_scorer` -- value scoring with a Hugging Face value model (prefix KV cache);
- `mock` -- a scripted policy for smoke runs (``backend=mock``);
- `openai_backend`, `openai_scorer`, `openai_client` -- policy and PRM behind OpenAI-compatible
  servers, and the HTTP pool with retries they share;
- `vllm_policy`, `vllm_scorer`, `vllm_engine` -- in-process vLLM engines and what they share.

The protocols and record types are imported eagerly (they are light); the Hugging Face and
OpenAI-compatible-server and vLLM backends are imported on first use so that
``import rest_mcts.backends`` stays cheap (the vLLM modules import vLLM itself only when an
engine is built).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rest_mcts.backends.base import (
    FINISH_REASONS,
    Completion,
    GenerationOutput,
    PolicyBackend,
    SamplingParams,
    ValueScorer,
)

_LAZY_EXPORTS = {
    "HFPolicyBackend": "hf_policy",
    "HFValueScorer": "hf_scorer",
    "OpenAIPolicyBackend": "openai_backend",
    "OpenAIValueScorer": "openai_scorer",
    "VLLMPolicyBackend": "vllm_policy",
    "VLLMValueScorer": "vllm_scorer",
}

__all__ = sorted(
    [
        "FINISH_REASONS",
        "Completion",
        "GenerationOutput",
        "PolicyBackend",
        "SamplingParams",
        "ValueScorer",
        *_LAZY_EXPORTS,
    ]
)

if TYPE_CHECKING:
    from rest_mcts.backends.hf_policy import HFPolicyBackend
    from rest_mcts.backends.hf_scorer import HFValueScorer
    from rest_mcts.backends.openai_backend import OpenAIPolicyBackend
    from rest_mcts.backends.openai_scorer import OpenAIValueScorer
    from rest_mcts.backends.vllm_policy import VLLMPolicyBackend
    from rest_mcts.backends.vllm_scorer import VLLMValueScorer


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""Model construction and loading (tokenizer, policy LM, value model).

- `factory` -- build, save and load the policy and value models (the tiny Llama included);
- `tokenizer` -- the character tokenizer of the tiny models (and a byte-level one);
- `tiny_chat` -- a tiny byte-level chat model in Hugging Face format, for plumbing tests;
- `source` -- where a model comes from: a local folder, a GGUF file or a hub id;
- `gguf` -- GGUF checkpoints converted once to cached Hugging Face folders;
- `value_head` -- reading a value model's regression head (the one place values are taken);
- `compat` -- names that differ between the transformers releases this project runs on.

Names are imported lazily so that ``import rest_mcts.models`` does not import torch or
transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "build_char_tokenizer": "tokenizer",
    "build_byte_tokenizer": "tokenizer",
    "build_tiny_chat_model": "tiny_chat",
    "build_tiny_causal_lm": "factory",
    "build_tiny_value_model": "factory",
    "value_model_from_causal_lm": "factory",
    "load_tokenizer": "factory",
    "load_causal_lm": "factory",
    "load_value_model": "factory",
    "save_model": "factory",
    "count_parameters": "factory",
    "values_at_positions": "value_head",
    "last_token_positions": "value_head",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from rest_mcts.models.factory import (
        build_tiny_causal_lm,
        build_tiny_value_model,
        count_parameters,
        load_causal_lm,
        load_tokenizer,
        load_value_model,
        save_model,
        value_model_from_causal_lm,
    )
    from rest_mcts.models.tiny_chat import build_tiny_chat_model
    from rest_mcts.models.tokenizer import build_byte_tokenizer, build_char_tokenizer
    from rest_mcts.models.value_head import last_token_positions, values_at_positions


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

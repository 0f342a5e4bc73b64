"""Names that differ between the transformers releases this project runs on.

``requirements.txt`` pins transformers 5.19.0, the newest that vLLM 0.32 allows; later 5.x
releases (5.24 was used before) renamed two things this project calls:

* the KV-cache keyword of a model's ``forward``: ``past_key_values`` (5.19) became ``cache``
  (5.24, which still takes the old name with a deprecation warning). 5.19 swallows an unknown
  ``cache=`` into ``**kwargs`` and runs without the cache, so decoding would silently be
  wrong: :func:`cache_keyword` picks the name the model takes.
* ``gradient_checkpointing_enable`` became ``activation_checkpointing_enable`` (the old name
  is a deprecated alias in 5.24): :func:`enable_activation_checkpointing`.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

CACHE_KEYWORDS = ("cache", "past_key_values")


def cache_keyword(module: Any) -> str:
    """The keyword under which ``module``'s forward takes a KV cache: ``"cache"`` or
    ``"past_key_values"``. A wrapper whose forward names neither (e.g. a PEFT model passing
    ``**kwargs`` on) gets the installed transformers' own name."""
    return _keyword_of(type(module)) or _installed_keyword()


def takes_cache(module: Any) -> bool:
    """Does ``module``'s forward name a KV-cache keyword (``cache`` or ``past_key_values``)?"""
    return _keyword_of(type(module)) is not None


def enable_activation_checkpointing(model: Any, **kwargs: Any) -> None:
    """Switch on activation (gradient) checkpointing with checkpoint ``kwargs`` (e.g.
    ``use_reentrant=False``), under whichever name the installed transformers has."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


@functools.lru_cache(maxsize=None)
def _keyword_of(cls: type) -> str | None:
    try:
        parameters = inspect.signature(cls.forward).parameters
    except (AttributeError, TypeError, ValueError):
        return None
    return next((name for name in CACHE_KEYWORDS if name in parameters), None)


@functools.lru_cache(maxsize=None)
def _installed_keyword() -> str:
    from transformers.models.llama.modeling_llama import LlamaModel

    return _keyword_of(LlamaModel) or "past_key_values"

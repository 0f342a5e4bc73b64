"""Process-reward (value) scoring with an in-process vLLM pooling engine (``prm=vllm``).

Serves the value model that ``stage=train_prm`` / ``stage=init_prm`` save: a
``*ForSequenceClassification`` checkpoint with one output (``num_labels=1``). vLLM runs it
with its pooling runner (``runner="pooling"``, ``convert="classify"``), pooling the last
token (``seq_pooling_type="LAST"``) with no activation (``use_activation=False``: vLLM would
otherwise put a sigmoid on a one-output classifier), so the value is the raw regression
output at the last real token, clamped to [0, 1]: what
:class:`~rest_mcts.backends.hf_scorer.HFValueScorer` computes, on the same input text
(:func:`rest_mcts.prompts.prm_input`) and the same token ids (the model's tokenizer, called
here; an input longer than ``max_model_len`` keeps its last tokens).

With prefix caching (vLLM's default for last-token pooling on a causal model) a partial
solution whose parent was scored before reuses the parent's KV blocks, the job the HF
scorer's own prefix cache does. vLLM is imported only in the constructor.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Mapping, Sequence

from rest_mcts.backends.registry import Capabilities, register_scorer
from rest_mcts.backends.vllm_engine import (
    INSTALL_HINT,
    engine_context_length,
    keep_last,
    shutdown,
    start_engine,
)
from rest_mcts.prompts import prm_input

logger = logging.getLogger(__name__)


def pooling_engine_kwargs() -> dict[str, Any]:
    """The ``vllm.LLM`` keywords that make an engine a raw one-output value model
    (``pooler_config`` as a plain dict of ``vllm.config.PoolerConfig`` fields)."""
    return {
        "runner": "pooling",
        "convert": "classify",
        "pooler_config": {"seq_pooling_type": "LAST", "use_activation": False},
    }


def value_of(output: Any) -> float:
    """The value in [0, 1] of one ``vllm.ClassificationRequestOutput``: its single raw
    output (``outputs.probs[0]``, which holds the logit when the activation is off), clamped.

    Raises:
        RuntimeError: the request failed (``error`` set).
        ValueError: the model has more than one output, or gave NaN.
    """
    error = getattr(output, "error", None)
    if error is not None:
        raise RuntimeError(f"vLLM value request failed: {error}")
    raw = list(output.outputs.probs)
    if len(raw) != 1:
        raise ValueError(f"the value model has {len(raw)} outputs, expected 1 (num_labels=1)")
    value = float(raw[0])
    if math.isnan(value):
        raise ValueError("the value model returned NaN")
    return min(max(value, 0.0), 1.0)


@register_scorer(
    "vllm",
    Capabilities(trainable=True, needs_model=True, must_close=True, takes_loaded_model=False,
                 requires=("vllm",), install=INSTALL_HINT),
)
class VLLMValueScorer:
    """A :class:`~rest_mcts.backends.base.ValueScorer` on an in-process vLLM pooling engine.

    Attributes:
        llm: the engine (None after :meth:`close`).
        tokenizer: the engine's tokenizer (inputs are sent as token ids).
        context_length: longest input in tokens (``max_model_len``).
        stats: running totals: ``calls``, ``items``, ``tokens``, ``truncated``,
            ``cached_tokens`` (input tokens found in vLLM's prefix cache) and ``seconds``.
    """

    def __init__(
        self,
        model_path: str | None = None,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.3,
        max_model_len: int | None = None,
        enable_prefix_caching: bool | None = None,
        trust_remote_code: bool = False,
        seed: int = 0,
        enforce_eager: bool = False,
        engine_kwargs: Mapping[str, Any] | None = None,
        llm: Any = None,
        make_pooling_params: Callable[..., Any] | None = None,
        revision: str | None = None,
    ) -> None:
        """Start a vLLM pooling engine on the value model at ``model_path`` unless ``llm`` is
        passed in.

        Args:
            model_path: folder (or hub id) of a saved value model (``prm.path``).
            dtype: ``"auto"``, ``"bfloat16"``, ``"float16"`` or ``"float32"``.
            tensor_parallel_size: GPUs the model is split over.
            gpu_memory_utilization: share of GPU memory this engine takes (0.3 beside a
                ``backend=vllm`` policy at 0.6 on the same GPU).
            max_model_len: longest input (``prm.context_length``; None: the model's own);
                longer inputs keep their last tokens.
            enable_prefix_caching: reuse KV blocks of shared prefixes (None: vLLM's default,
                on for last-token pooling on causal models).
            trust_remote_code: passed to vLLM's loaders.
            seed: the engine's seed.
            enforce_eager: skip CUDA graph capture.
            engine_kwargs: further ``vllm.EngineArgs`` keywords.
            llm: an engine (or a stand-in with ``classify`` and ``get_tokenizer``).
            make_pooling_params: builds the pooling parameters (default
                ``vllm.PoolingParams``).
            revision: hub revision of a hub id ``model_path`` (``prm.revision``), for the
                weights and the tokenizer; None: ``main``.

        Raises:
            ConfigError: vLLM is not installed.
            ValueError: a setting out of range, or no model path and no ``llm``.
        """
        extra = dict(engine_kwargs or {})
        for key, value in pooling_engine_kwargs().items():
            extra.setdefault(key, value)
        llm, make_pooling_params = start_engine(
            model_path, llm, make_pooling_params, "PoolingParams", "pooling engine",
            dtype=dtype, tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
            enable_prefix_caching=enable_prefix_caching, trust_remote_code=trust_remote_code,
            seed=seed, enforce_eager=enforce_eager, extra=extra, revision=revision,
        )
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.context_length = engine_context_length(llm, max_model_len)
        self._pooling_params = make_pooling_params(use_activation=False)
        self.stats: dict[str, float] = {
            "calls": 0, "items": 0, "tokens": 0, "truncated": 0, "cached_tokens": 0,
            "seconds": 0.0,
        }

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """Values in [0, 1] for each (question, steps so far) pair, in order (one vLLM call).

        Raises:
            RuntimeError: the scorer was closed, or vLLM failed a request.
        """
        if self.llm is None:
            raise RuntimeError("this vLLM value scorer was closed")
        if not items:
            return []
        start = time.perf_counter()
        texts = [prm_input(question, steps) for question, steps in items]
        ids, cut = keep_last(self.tokenizer(texts)["input_ids"], self.context_length)
        if cut:
            logger.warning(
                "%d value-model inputs exceed max_model_len=%d: they keep their last tokens",
                cut, self.context_length,
            )
        results = self.llm.classify(
            [{"prompt_token_ids": row} for row in ids],
            pooling_params=self._pooling_params,
            use_tqdm=False,
        )
        if len(results) != len(items):
            raise RuntimeError(f"vLLM returned {len(results)} values for {len(items)} inputs")
        values = [value_of(result) for result in results]
        self.stats["calls"] += 1
        self.stats["items"] += len(items)
        self.stats["tokens"] += sum(len(row) for row in ids)
        self.stats["truncated"] += cut
        self.stats["cached_tokens"] += sum(
            getattr(result, "num_cached_tokens", None) or 0 for result in results
        )
        self.stats["seconds"] += time.perf_counter() - start
        return values

    def close(self) -> None:
        """Stop the engine and free its GPU memory; later calls to :meth:`score` fail."""
        if self.llm is not None:
            shutdown(self.llm)
            self.llm = None

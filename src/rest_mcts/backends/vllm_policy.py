"""Batched generation with an in-process vLLM engine (``backend=vllm``): a :class:`PolicyBackend`.

One merged request of the search engine becomes one ``LLM.generate`` call: every prompt is one
vLLM request with its own ``vllm.SamplingParams(n, temperature, top_p, max_tokens, stop, seed,
include_stop_str_in_output=True)``, whose ``seed`` is the prompt's row seed
(:func:`~rest_mcts.backends.base.row_seeds`). vLLM gives the ``n`` samples of a request the
seeds ``seed, seed + 1, ...``, so a prompt's samples depend on its row seed alone, not on what
else is in the call. Prefix caching is on by default: tree search resends long shared
prefixes (the question and the steps so far) many times.

The two translations are pure functions that need no vLLM and are tested against stand-ins
with vLLM's field names: :func:`sampling_kwargs` (our request -> the keywords of
``vllm.SamplingParams``) and :func:`to_generation_output` (a ``vllm.RequestOutput`` -> our
:class:`GenerationOutput`).

Prompts are tokenised here with the engine's tokenizer and sent as token ids, so that a prompt
longer than ``max_model_len - max_new_tokens`` keeps its last tokens (with a warning), as the
HF backend does, instead of failing the whole call. vLLM is imported only in the constructor.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, Mapping, Sequence

from rest_mcts.backends.base import Completion, GenerationOutput, SamplingParams, row_seeds
from rest_mcts.backends.registry import Capabilities, register_policy
from rest_mcts.backends.vllm_engine import (
    INSTALL_HINT,
    engine_context_length,
    keep_last,
    shutdown,
    start_engine,
)

logger = logging.getLogger(__name__)

# vLLM decodes greedily below this temperature (``vllm.sampling_params._SAMPLING_EPS``) and
# then refuses n > 1.
GREEDY_BELOW = 1e-5


def decodes_greedily(params: SamplingParams) -> bool:
    """Does vLLM decode ``params`` greedily (temperature below :data:`GREEDY_BELOW`)?"""
    return params.temperature < GREEDY_BELOW


def sampling_kwargs(params: SamplingParams, seed: int | None) -> dict[str, Any]:
    """Keywords of ``vllm.SamplingParams`` for one prompt of a call.

    Greedy decoding (:func:`decodes_greedily`) asks for one completion (vLLM refuses ``n > 1``
    when greedy; :func:`to_generation_output` repeats it) and no seed. No top-k and no
    penalties apply, as in the HF backend; the stop string stays at the end of the text.

    Args:
        params: the call's sampling settings.
        seed: the prompt's row seed (None: vLLM's own generator).
    """
    greedy = decodes_greedily(params)
    return {
        "n": 1 if greedy else params.n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": 0,
        "max_tokens": params.max_new_tokens,
        "stop": list(params.stop),
        "seed": None if greedy else seed,
        "include_stop_str_in_output": True,
        "skip_special_tokens": True,
    }


def finish_reason(output: Any) -> str:
    """Our ``finish_reason`` of one ``vllm.CompletionOutput``.

    vLLM says ``"stop"`` for both a stop string (``stop_reason`` is that string) and an
    end-of-sequence token (``stop_reason`` None, or the id of a stop token from the model's
    generation config); ``"length"`` for ``max_tokens`` or ``max_model_len``.

    Raises:
        RuntimeError: the request was aborted or failed (any other reason).
    """
    reason = output.finish_reason
    if reason == "length":
        return "length"
    if reason == "stop":
        return "stop" if isinstance(output.stop_reason, str) else "eos"
    raise RuntimeError(f"vLLM request ended with finish_reason={reason!r}")


def to_generation_output(request_output: Any, params: SamplingParams) -> GenerationOutput:
    """Our :class:`GenerationOutput` of one ``vllm.RequestOutput``.

    ``num_tokens`` is the number of generated token ids (the end-of-sequence token included,
    as the HF backend counts it); completions come in vLLM's ``index`` order; a greedy
    completion is repeated ``params.n`` times.

    Raises:
        RuntimeError: vLLM returned another number of completions than asked for.
    """
    greedy = decodes_greedily(params)
    outputs = sorted(request_output.outputs, key=lambda output: output.index)
    expected = 1 if greedy else params.n
    if len(outputs) != expected:
        raise RuntimeError(f"vLLM returned {len(outputs)} completions, expected {expected}")
    completions = tuple(
        Completion(
            text=output.text,
            num_tokens=len(output.token_ids),
            finish_reason=finish_reason(output),
        )
        for output in outputs
    )
    if greedy:
        completions = completions * params.n
    prompt_ids = request_output.prompt_token_ids
    return GenerationOutput(completions=completions, prompt_tokens=len(prompt_ids or ()))


@register_policy("vllm", Capabilities(trainable=True, needs_model=True, must_close=True,
                                     requires=("vllm",), install=INSTALL_HINT))
class VLLMPolicyBackend:
    """A :class:`~rest_mcts.backends.base.PolicyBackend` on an in-process ``vllm.LLM``.

    Attributes:
        llm: the engine (None after :meth:`close`).
        tokenizer: the engine's tokenizer (prompts are sent as token ids).
        context_length: longest sequence the engine takes (``max_model_len``).
        stats: running totals: ``calls``, ``prompts``, ``completions``, ``prompt_tokens``,
            ``generated_tokens``, ``truncated_prompts``, ``cached_prompt_tokens`` (prompt
            tokens found in vLLM's prefix cache) and ``seconds``.
    """

    def __init__(
        self,
        model_path: str | None = None,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.6,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        trust_remote_code: bool = False,
        seed: int = 0,
        enforce_eager: bool = False,
        engine_kwargs: Mapping[str, Any] | None = None,
        llm: Any = None,
        make_sampling_params: Callable[..., Any] | None = None,
        revision: str | None = None,
    ) -> None:
        """Start a vLLM engine on ``model_path`` unless ``llm`` is passed in.

        Args:
            model_path: Hugging Face folder or hub id of the policy.
            dtype: weights and activations: ``"auto"``, ``"bfloat16"``, ``"float16"``,
                ``"float32"``.
            tensor_parallel_size: GPUs the model is split over.
            gpu_memory_utilization: share of GPU memory this engine takes (0.6 leaves room for
                a ``prm=vllm`` scorer at 0.3 on the same GPU).
            max_model_len: longest prompt + completion (``model.context_length``; None: the
                model's own); longer prompts keep their last tokens.
            enable_prefix_caching: reuse KV blocks of shared prompt prefixes.
            trust_remote_code: passed to vLLM's loaders.
            seed: seeds the engine and this backend's generator of row seeds (used when a call
                gives neither ``seeds`` nor ``params.seed``).
            enforce_eager: skip CUDA graph capture.
            engine_kwargs: further ``vllm.EngineArgs`` keywords.
            llm: an engine (or a stand-in with ``generate`` and ``get_tokenizer``) to use
                instead of starting one.
            make_sampling_params: builds one request's sampling parameters from
                :func:`sampling_kwargs` (default ``vllm.SamplingParams``).
            revision: hub revision of a hub id ``model_path`` (``model.revision``), for the
                weights and the tokenizer; None: ``main``.

        Raises:
            ConfigError: vLLM is not installed.
            ValueError: a setting out of range, or no model path and no ``llm``.
        """
        llm, make_sampling_params = start_engine(
            model_path, llm, make_sampling_params, "SamplingParams", "engine", dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
            enable_prefix_caching=enable_prefix_caching, trust_remote_code=trust_remote_code,
            seed=seed, enforce_eager=enforce_eager, extra=engine_kwargs, revision=revision,
        )
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.context_length = engine_context_length(llm, max_model_len)
        self._make_sampling_params = make_sampling_params
        self._rng = random.Random(seed)
        self.stats: dict[str, float] = {
            "calls": 0, "prompts": 0, "completions": 0, "prompt_tokens": 0,
            "generated_tokens": 0, "truncated_prompts": 0, "cached_prompt_tokens": 0,
            "seconds": 0.0,
        }

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        seeds: Sequence[int] | None = None,
    ) -> list[GenerationOutput]:
        """Return ``params.n`` completions for each prompt, in prompt order (one vLLM call).

        Args:
            prompts: prompt texts (the tokenizer adds its special tokens, e.g. bos).
            params: sampling settings; ``seed`` seeds the call (prompt ``i`` gets
                ``derive_seed(seed, i)``) when ``seeds`` is None.
            seeds: one row seed per prompt.

        Raises:
            RuntimeError: the backend was closed, or vLLM aborted a request.
        """
        if self.llm is None:
            raise RuntimeError("this vLLM policy backend was closed")
        if not prompts:
            return []
        start = time.perf_counter()
        prompt_ids, budgets = self._fit_context(self.tokenizer(list(prompts))["input_ids"],
                                                params)
        row = row_seeds(len(prompts), params, seeds)
        if row is None and not decodes_greedily(params):
            row = [self._rng.randrange(2**31) for _ in prompts]
        requests = [
            self._make_sampling_params(**{**sampling_kwargs(params, None if row is None
                                                            else row[i]),
                                          "max_tokens": budgets[i]})
            for i in range(len(prompts))
        ]
        results = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompt_ids], requests, use_tqdm=False
        )
        if len(results) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(results)} outputs for {len(prompts)} prompts")
        outputs = [to_generation_output(result, params) for result in results]
        self.stats["cached_prompt_tokens"] += sum(
            getattr(result, "num_cached_tokens", None) or 0 for result in results
        )
        self._count(outputs, time.perf_counter() - start)
        return outputs

    def close(self) -> None:
        """Stop the engine and free its GPU memory; later calls to :meth:`generate` fail."""
        if self.llm is not None:
            shutdown(self.llm)
            self.llm = None

    def _fit_context(
        self, prompt_ids: list[list[int]], params: SamplingParams
    ) -> tuple[list[list[int]], list[int]]:
        """Prompts fitted to ``max_model_len`` and each one's budget of new tokens: prompts
        cut to ``context_length - max_new_tokens`` tokens (their last ones), with one warning
        per call that cuts any. A budget that alone fills the context (a solution's whole
        remaining budget on a short-context model) cannot keep any prompt: then each request
        keeps its prompt (its last ``context_length - 1`` tokens at most) and generates at
        most what the context leaves after it, as a model stops at its context."""
        budget = params.max_new_tokens
        if self.context_length is None:
            return [list(ids) for ids in prompt_ids], [budget] * len(prompt_ids)
        room = self.context_length - budget
        if room < 1:
            fitted, cut = keep_last(prompt_ids, self.context_length - 1)
            logger.warning(
                "max_new_tokens=%d does not fit max_model_len=%d with a prompt: each request "
                "generates at most max_model_len minus its prompt", budget, self.context_length)
            self.stats["truncated_prompts"] += cut
            return fitted, [self.context_length - len(ids) for ids in fitted]
        fitted, cut = keep_last(prompt_ids, room)
        if cut:
            logger.warning(
                "%d of %d prompts exceed max_model_len=%d minus max_new_tokens=%d: they keep "
                "their last %d tokens", cut, len(prompt_ids), self.context_length,
                budget, room,
            )
            self.stats["truncated_prompts"] += cut
        return fitted, [budget] * len(fitted)

    def _count(self, outputs: list[GenerationOutput], seconds: float) -> None:
        self.stats["calls"] += 1
        self.stats["prompts"] += len(outputs)
        self.stats["prompt_tokens"] += sum(o.prompt_tokens for o in outputs)
        self.stats["completions"] += sum(len(o.completions) for o in outputs)
        self.stats["generated_tokens"] += sum(c.num_tokens for o in outputs for c in o.completions)
        self.stats["seconds"] += seconds


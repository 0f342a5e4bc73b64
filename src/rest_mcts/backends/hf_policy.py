"""Batched generation with a Hugging Face causal LM (CPU or one GPU) behind :class:`PolicyBackend`.

Prompts are tokenised once, left-padded and sent in chunks of at most ``max_batch_size``
sequences. Stop strings that are exactly one token (and occur inside no other token) become
extra end-of-sequence ids; then each chunk is decoded by :func:`~rest_mcts.backends.decode.compact_decode`
(``decoder="compact"``, the default: finished rows leave the batch) or by one
``model.generate`` call (``decoder="generate"``, and always when a stop string spans several
tokens, which goes through transformers' ``stop_strings``). The outputs are cut afterwards in one pass
that does no per-token Python work.

Sampling is seeded per prompt row (see :mod:`rest_mcts.backends.base`): sample ``j`` of a
prompt with row seed ``s`` draws from the stream keyed by ``(s, j)`` in both decoders (for
``model.generate`` through :class:`~rest_mcts.backends.decode.StreamSampler`, with the prompt
rows repeated ``n`` times), so it is the same whatever else the call holds and however it is
chunked; torch's global generator is never touched when seeds are given.
"""

from __future__ import annotations

import logging
import time
from typing import Iterator, Sequence

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from rest_mcts.backends.base import Completion, GenerationOutput, SamplingParams, row_seeds
from rest_mcts.backends.decode import StreamSampler, compact_decode, sample_keys
from rest_mcts.backends.registry import Capabilities, register_policy

logger = logging.getLogger(__name__)

# Settings a checkpoint's generation_config.json may carry that would change what we sample;
# they are reset to these neutral values whenever the model's own config sets them otherwise.
_NEUTRAL_SETTINGS: dict[str, float | int] = {
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "min_length": 0,
    "min_new_tokens": 0,
    "typical_p": 1.0,
    "min_p": 0.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
}


@register_policy("hf", Capabilities(trainable=True, needs_model=True))
class HFPolicyBackend:
    """A :class:`~rest_mcts.backends.base.PolicyBackend` on a local Hugging Face causal LM.

    Attributes:
        model: the causal LM (kept in eval mode while generating).
        tokenizer: its tokenizer.
        device: the model's device.
        max_batch_size: most sequences (prompts x ``n``) per ``generate`` call.
        stats: running totals: ``calls``, ``prompts``, ``completions``, ``prompt_tokens``,
            ``generated_tokens`` (sum of ``Completion.num_tokens``) and ``seconds``.
    """

    def __init__(
        self,
        model_path: str | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        max_batch_size: int = 128,
        trust_remote_code: bool = False,
        decoder: str = "compact",
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        context_length: int | None = None,
        revision: str | None = None,
    ) -> None:
        """Load the model and tokenizer from ``model_path`` unless they are passed in.

        Args:
            model_path: local Hugging Face folder or hub id ``org/name`` (model and tokenizer).
            device: where to load the model; a passed-in ``model`` stays where it is.
            dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"`` (loading only).
            max_batch_size: most sequences per ``generate`` call.
            trust_remote_code: passed to ``from_pretrained``.
            decoder: ``"compact"`` (own KV-cached loop that drops finished rows) or
                ``"generate"`` (transformers' ``model.generate``).
            model: an already loaded causal LM (tests, the training loop).
            tokenizer: an already loaded tokenizer.
            context_length: longest sequence the model takes (``model.context_length``); a
                prompt longer than it minus ``max_new_tokens`` keeps its last tokens (a
                warning says how many prompts were cut). None: no cap.
            revision: hub revision (branch, tag or commit) of a hub id ``model_path``
                (``model.revision``); None: ``main``.
        """
        from rest_mcts.models.factory import load_causal_lm, load_tokenizer

        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if decoder not in ("compact", "generate"):
            raise ValueError(f"decoder must be 'compact' or 'generate', got {decoder!r}")
        if context_length is not None and context_length < 2:
            raise ValueError(f"context_length must be >= 2 (or null), got {context_length}")
        self.decoder = decoder
        self.context_length = context_length
        if model is None or tokenizer is None:
            if model_path is None:
                raise ValueError("HFPolicyBackend needs model_path or both model and tokenizer")
        self.model = model if model is not None else load_causal_lm(
            model_path, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
            revision=revision,
        )
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(
            model_path, trust_remote_code=trust_remote_code, revision=revision
        )
        self.device = next(self.model.parameters()).device
        self.max_batch_size = max_batch_size
        self._eos_ids = _eos_ids(self.model, self.tokenizer)
        self._pad_id = self.tokenizer.pad_token_id
        if self._pad_id is None:
            if not self._eos_ids:
                raise ValueError("tokenizer has neither a pad token nor an eos token")
            self._pad_id = self._eos_ids[0]
        self._single_token_stops: dict[str, int | None] = {}
        self._vocab_texts: list[str] | None = None
        self.stats: dict[str, float] = {
            "calls": 0,
            "prompts": 0,
            "completions": 0,
            "prompt_tokens": 0,
            "generated_tokens": 0,
            "truncated_prompts": 0,
            "seconds": 0.0,
        }

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        seeds: Sequence[int] | None = None,
    ) -> list[GenerationOutput]:
        """Return ``params.n`` completions for each prompt, in prompt order.

        Greedy decoding (``temperature == 0``) generates one completion per prompt and repeats
        it ``n`` times.

        Args:
            prompts: prompt texts (the tokenizer adds its special tokens, e.g. bos).
            params: sampling settings; ``seed`` seeds the call (prompt ``i`` gets
                ``derive_seed(seed, i)``) when ``seeds`` is None.
            seeds: one row seed per prompt: the samples of prompt ``i`` depend on
                ``seeds[i]`` only (None and no ``params.seed``: drawn from torch's generator).

        Returns:
            One :class:`GenerationOutput` per prompt, with ``prompt_tokens`` counted without
            padding.
        """
        if not prompts:
            return []
        start = time.perf_counter()
        prompt_ids: list[list[int]] = self.tokenizer(list(prompts))["input_ids"]
        prompt_ids = self._fit_context(prompt_ids, params.max_new_tokens)
        stop_ids, slow_stops = self._split_stops(params.stop)
        config = self._generation_config(params, stop_ids, slow_stops)
        completions: list[list[Completion]] = [[] for _ in prompts]
        # Greedy samples are all alike: generate one per prompt and repeat it.
        samples = 1 if params.greedy else params.n
        seeded = None
        if not params.greedy:
            seeded = row_seeds(len(prompts), params, seeds)
            if seeded is None:
                seeded = torch.randint(0, 2**31, (len(prompts),)).tolist()
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for indices, first, n in _chunks(len(prompts), samples, self.max_batch_size):
                    rows = self._generate_chunk(
                        [prompt_ids[i] for i in indices], n, config, params,
                        None if seeded is None else [seeded[i] for i in indices], first,
                    )
                    finished = self._finish(rows, params, stop_ids, bool(slow_stops))
                    for offset, index in enumerate(indices):
                        completions[index].extend(finished[offset * n : (offset + 1) * n])
        finally:
            self.model.train(was_training)
        if samples != params.n:
            completions = [found * params.n for found in completions]
        outputs = [
            GenerationOutput(completions=tuple(found), prompt_tokens=len(ids))
            for found, ids in zip(completions, prompt_ids)
        ]
        self._count(outputs, time.perf_counter() - start)
        return outputs

    def _fit_context(self, prompt_ids: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        """Cut prompts to the context: each keeps its last ``context_length - max_new_tokens``
        tokens (what the model continues from), with one warning per call that cuts any.

        Raises:
            ValueError: ``max_new_tokens`` leaves no room for a prompt.
        """
        if self.context_length is None:
            return prompt_ids
        room = self.context_length - max_new_tokens
        if room < 1:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} leaves no room for a prompt in "
                f"model.context_length={self.context_length}"
            )
        cut = sum(len(ids) > room for ids in prompt_ids)
        if not cut:
            return prompt_ids
        longest = max(len(ids) for ids in prompt_ids)
        logger.warning(
            "%d of %d prompts exceed model.context_length=%d minus max_new_tokens=%d "
            "(longest: %d tokens): they keep their last %d tokens",
            cut, len(prompt_ids), self.context_length, max_new_tokens, longest, room,
        )
        self.stats["truncated_prompts"] += cut
        return [ids[-room:] if len(ids) > room else ids for ids in prompt_ids]

    def _generate_chunk(
        self,
        prompt_ids: list[list[int]],
        n: int,
        config: GenerationConfig,
        params: SamplingParams,
        seeds: list[int] | None,
        first_sample: int,
    ) -> torch.Tensor:
        """Decode samples ``first_sample .. first_sample + n - 1`` of each prompt of one
        chunk (row seeds ``seeds``; None when greedy); returns the generated tokens only,
        shape (prompts * n, T)."""
        width = max(len(ids) for ids in prompt_ids)
        input_ids = torch.full((len(prompt_ids), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        for row, ids in enumerate(prompt_ids):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        if self.decoder == "compact":
            return compact_decode(
                self.model,
                input_ids.to(self.device),
                attention_mask.to(self.device),
                n=n,
                max_new_tokens=params.max_new_tokens,
                end_ids=list(config.eos_token_id or []),
                pad_id=self._pad_id,
                greedy=params.greedy,
                temperature=params.temperature,
                top_p=params.top_p,
                stop_strings=config.stop_strings or (),
                decode=self._decode_rows,
                seeds=seeds,
                first_sample=first_sample,
            )
        extra: dict[str, object] = {"tokenizer": self.tokenizer} if config.stop_strings else {}
        if seeds is not None:
            # each row samples from its own stream: repeat the prompts n times and let the
            # StreamSampler pick every token (generate itself then decodes greedily)
            input_ids = input_ids.repeat_interleave(n, dim=0)
            attention_mask = attention_mask.repeat_interleave(n, dim=0)
            keys = sample_keys(seeds, n, first_sample, self.device)
            extra["logits_processor"] = LogitsProcessorList(
                [StreamSampler(keys, width, params.temperature, params.top_p)]
            )
        sequences = self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            generation_config=config,
            **extra,
        )
        return sequences[:, width:]

    def _decode_rows(self, rows: list[list[int]]) -> list[str]:
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True)

    def _finish(
        self,
        generated: torch.Tensor,
        params: SamplingParams,
        stop_ids: list[int],
        search_text: bool,
    ) -> list[Completion]:
        """Cut each generated row at its first eos / stop and decode all rows in one call."""
        eos = set(self._eos_ids)
        end_ids = torch.tensor(sorted(eos | set(stop_ids)), dtype=torch.long)
        is_end = torch.isin(generated, end_ids.to(generated.device))
        has_end = is_end.any(dim=1).tolist()
        first_end = is_end.to(torch.int32).argmax(dim=1).tolist()  # first True per row
        rows = generated.tolist()
        kept: list[list[int]] = []
        counts: list[int] = []
        reasons: list[str] = []
        for row, ended, position in zip(rows, has_end, first_end):
            if not ended:
                kept.append(row)
                counts.append(len(row))
                reasons.append("length")
            elif row[position] in eos:
                kept.append(row[:position])
                counts.append(position + 1)
                reasons.append("eos")
            else:
                kept.append(row[: position + 1])
                counts.append(position + 1)
                reasons.append("stop")
        texts = self.tokenizer.batch_decode(kept, skip_special_tokens=True)
        if search_text:
            for i, text in enumerate(texts):
                end = _first_stop_end(text, params.stop)
                if end is not None:
                    texts[i] = text[:end]
                    counts[i] = self._tokens_to_stop(kept[i], params.stop)
                    reasons[i] = "stop"
        return [
            Completion(text=text, num_tokens=count, finish_reason=reason)
            for text, count, reason in zip(texts, counts, reasons)
        ]

    def _tokens_to_stop(self, tokens: list[int], stops: Sequence[str]) -> int:
        """Fewest leading tokens whose text contains a stop string (binary search)."""
        low, high = 1, len(tokens)
        while low < high:
            middle = (low + high) // 2
            text = self.tokenizer.decode(tokens[:middle], skip_special_tokens=True)
            if _first_stop_end(text, stops) is None:
                low = middle + 1
            else:
                high = middle
        return high

    def _split_stops(self, stops: Sequence[str]) -> tuple[list[int], list[str]]:
        """Split stop strings into single-token ids (fast path) and the rest."""
        ids: list[int] = []
        slow: list[str] = []
        for stop in stops:
            if not stop:
                raise ValueError("empty stop string")
            token_id = self._single_token_stop(stop)
            if token_id is None:
                slow.append(stop)
            else:
                ids.append(token_id)
        return ids, slow

    def _single_token_stop(self, stop: str) -> int | None:
        """The token id of ``stop`` if it is one token that no other token's text contains."""
        if stop not in self._single_token_stops:
            token_id: int | None = None
            ids = self.tokenizer.encode(stop, add_special_tokens=False)
            if len(ids) == 1 and self.tokenizer.decode(ids, skip_special_tokens=True) == stop:
                texts = self._all_token_texts()
                holders = [i for i, text in enumerate(texts) if stop in text]
                token_id = ids[0] if holders == [ids[0]] else None
            self._single_token_stops[stop] = token_id
        return self._single_token_stops[stop]

    def _all_token_texts(self) -> list[str]:
        if self._vocab_texts is None:
            vocab = [[i] for i in range(len(self.tokenizer))]
            self._vocab_texts = self.tokenizer.batch_decode(vocab, skip_special_tokens=True)
        return self._vocab_texts

    def _generation_config(
        self, params: SamplingParams, stop_ids: list[int], slow_stops: list[str]
    ) -> GenerationConfig:
        """Settings for ``model.generate``: always greedy search; sampling is done by a
        :class:`StreamSampler` logits processor (see :meth:`_generate_chunk`)."""
        end_ids = sorted(set(self._eos_ids) | set(stop_ids))
        settings: dict[str, object] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": False,
            "pad_token_id": self._pad_id,
            "eos_token_id": end_ids or None,
            "use_cache": True,
        }
        model_defaults = self.model.generation_config
        for name, neutral in _NEUTRAL_SETTINGS.items():
            value = getattr(model_defaults, name, None)
            if value is not None and value != neutral:
                settings[name] = neutral
        if slow_stops:
            settings["stop_strings"] = list(slow_stops)
        return GenerationConfig(**settings)

    def _count(self, outputs: list[GenerationOutput], seconds: float) -> None:
        self.stats["calls"] += 1
        self.stats["prompts"] += len(outputs)
        self.stats["prompt_tokens"] += sum(o.prompt_tokens for o in outputs)
        self.stats["completions"] += sum(len(o.completions) for o in outputs)
        self.stats["generated_tokens"] += sum(c.num_tokens for o in outputs for c in o.completions)
        self.stats["seconds"] += seconds
        logger.debug("generated %d prompts in %.3fs", len(outputs), seconds)


def _chunks(
    num_prompts: int, n: int, max_batch_size: int
) -> Iterator[tuple[list[int], int, int]]:
    """Yield (prompt indices, first sample index, samples per prompt) with at most
    ``max_batch_size`` sequences each.

    When ``n`` alone exceeds ``max_batch_size``, each prompt's samples are split over calls.
    """
    per_call = min(n, max_batch_size)
    prompts_per_chunk = max(1, max_batch_size // per_call)
    for first in range(0, num_prompts, prompts_per_chunk):
        indices = list(range(first, min(first + prompts_per_chunk, num_prompts)))
        for sample in range(0, n, per_call):
            yield indices, sample, min(per_call, n - sample)


def _first_stop_end(text: str, stops: Sequence[str]) -> int | None:
    """End index of the stop string that ends first in ``text`` (``None`` if none occurs)."""
    ends = [index + len(stop) for stop in stops if (index := text.find(stop)) >= 0]
    return min(ends) if ends else None


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """End-of-sequence ids of the tokenizer and of the model's generation config."""
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(v) for v in value)
    return sorted(ids)

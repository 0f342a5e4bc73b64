"""Process-reward (value) scoring with a Hugging Face sequence-classification model.

The value of a partial solution is the model's scalar output at the last real token of
``prm_input(question, steps)``, clamped to [0, 1]. Positions are located with the attention
mask, so left and right padding give the same values, and
:func:`~rest_mcts.models.value_head.values_at_positions` can read
several positions of one sequence in a single forward pass (e.g. the end of every step).

Prefix KV cache
---------------
Tree search scores almost only a previously scored partial solution plus one new step. With
``prefix_cache_tokens > 0`` the scorer keeps, for each sequence it scored, the keys and values
of every layer for its real tokens (no padding), keyed by its exact token ids, in an LRU store
of at most that many tokens. A new item whose ancestor (the same question with a shorter list
of steps) is stored runs the backbone only on the tokens after the longest common token prefix
of the two id sequences, attending to the stored keys and values: the result equals a full
forward pass (up to float rounding), because a causal model's keys and values at a position
depend only on the tokens up to it. The ancestor must have been scored in an earlier call
(items of one call are computed side by side). Measured on 64 Countdown questions (MCTS*,
10 iterations, tiny PRM, one CPU thread): half the tokens are reused and scorer time halves. The common prefix is taken on token ids of the whole
texts, so a BPE merge across the step boundary just shortens what is reused. An item whose ids
are stored exactly gets the stored value back.

Memory: the store holds ``2 * layers * kv_heads * head_dim * bytes`` per token, on the model's
device: 2 KiB per token for the tiny models (float32; 200,000 tokens = 400 MB); 128 KiB per token
for Mistral-7B and Llama-3-8B in bfloat16 (32 layers, 8 KV heads of 128), so 20,000 tokens =
2.5 GiB; 56 KiB for Qwen2.5-Math-7B (28 layers, 4 KV heads). The cache assumes the model's
weights do not change while the scorer is used: call :meth:`HFValueScorer.clear_cache` after
changing them (the training code trains its own model objects, not a scorer's).

Only models whose backbone takes a transformers KV cache (``cache=`` or ``past_key_values=``,
by transformers version: :mod:`rest_mcts.models.compat`) and whose layers are all full
attention are cached (sliding-window models such as Mistral-7B v0.1 only for sequences no
longer than the window); others are scored without it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Sequence

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from rest_mcts.backends.registry import Capabilities, register_scorer
from rest_mcts.models.compat import cache_keyword, takes_cache
from rest_mcts.models.value_head import (
    head_at,
    last_token_positions,
    position_ids_from_mask,
    values_at_positions,
)
from rest_mcts.prompts import prm_input

logger = logging.getLogger(__name__)


@dataclass
class _Entry:
    """One stored sequence: keys and values of all layers, (layers, 2, kv_heads, tokens,
    head_dim), its clamped value, and the (question, steps) keys that name it."""

    kv: torch.Tensor
    value: float
    names: list[tuple] = field(default_factory=list)


class PrefixKVCache:
    """An LRU store of per-sequence KV tensors keyed by token ids, at most ``budget`` tokens.

    Entries are also found by name, ``(question, steps)``, to locate an item's ancestors.
    """

    def __init__(self, budget: int) -> None:
        if budget < 1:
            raise ValueError(f"budget must be >= 1, got {budget}")
        self.budget = budget
        self.tokens = 0
        self._entries: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self._names: dict[tuple, tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ids: tuple[int, ...]) -> bool:
        return ids in self._entries

    def clear(self) -> None:
        self._entries.clear()
        self._names.clear()
        self.tokens = 0

    def get(self, ids: tuple[int, ...]) -> _Entry | None:
        """The entry stored for exactly ``ids`` (marked as recently used), or None."""
        entry = self._entries.get(ids)
        if entry is not None:
            self._entries.move_to_end(ids)
        return entry

    def lookup(self, name: tuple) -> tuple[tuple[int, ...], _Entry] | None:
        """The ids and entry stored under ``name``, or None (not marked as used)."""
        ids = self._names.get(name)
        if ids is None:
            return None
        entry = self._entries.get(ids)
        if entry is None:  # evicted (names are dropped with their entry; kept for safety)
            del self._names[name]
            return None
        return ids, entry

    def name(self, name: tuple, ids: tuple[int, ...]) -> None:
        """Also find the entry for ``ids`` (which must be stored) under ``name``."""
        old = self._names.get(name)
        if old == ids:
            return
        if old is not None and old in self._entries:
            self._entries[old].names.remove(name)
        self._names[name] = ids
        self._entries[ids].names.append(name)

    def put(self, ids: tuple[int, ...], name: tuple, kv: torch.Tensor, value: float) -> None:
        """Store a sequence (if it fits in the budget), evicting least recently used ones."""
        if ids in self._entries:
            self.get(ids)
            self.name(name, ids)
            return
        if len(ids) > self.budget:
            return
        self._entries[ids] = _Entry(kv, value)
        self.tokens += len(ids)
        self.name(name, ids)
        while self.tokens > self.budget:
            old, entry = self._entries.popitem(last=False)
            self.tokens -= len(old)
            for stale in entry.names:
                if self._names.get(stale) == old:
                    del self._names[stale]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two id sequences."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low], a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle
    return low


def _cache_limit(model: PreTrainedModel) -> tuple[int | None, str | None]:
    """(longest sequence the prefix cache may handle (None: any), reason it cannot be used)."""
    backbone = getattr(model, model.base_model_prefix, None)
    if backbone is None or not hasattr(model, "score"):
        return None, "no backbone/score head"
    if not takes_cache(backbone):
        return None, "backbone forward takes no transformers KV cache"
    config = model.config.get_text_config(decoder=True)
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    if set(layer_types) != {"full_attention"}:
        return None, f"layer types {sorted(set(layer_types))} are not all full attention"
    window = getattr(config, "sliding_window", None)
    return (int(window) if window else None), None


@register_scorer("hf", Capabilities(trainable=True, needs_model=True))
class HFValueScorer:
    """A :class:`~rest_mcts.backends.base.ValueScorer` on a local sequence-classification model.

    Attributes:
        model: the value model (kept in eval mode while scoring).
        tokenizer: its tokenizer; its own ``padding_side`` is used.
        device: the model's device.
        max_batch_size: most items per forward pass.
        prefix_cache: the prefix KV store (see the module docstring), or None when disabled.
        stats: running totals: ``calls``, ``items``, ``tokens`` (real tokens of the scored
            inputs) and ``seconds``; with the prefix cache also ``reused_tokens`` (tokens whose
            keys and values came from the cache, so ``tokens - reused_tokens`` went through the
            model), ``prefix_hits`` (items that extended a stored prefix) and ``exact_hits``
            (items stored exactly).
    """

    def __init__(
        self,
        model_path: str | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        max_batch_size: int = 64,
        trust_remote_code: bool = False,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        prefix_cache_tokens: int = 0,
        context_length: int | None = None,
        revision: str | None = None,
    ) -> None:
        """Load the value model and tokenizer from ``model_path`` unless they are passed in.

        Args:
            model_path: local Hugging Face folder (value model and tokenizer).
            device: where to load the model; a passed-in ``model`` stays where it is.
            dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"`` (loading only).
            max_batch_size: most items per forward pass.
            trust_remote_code: passed to ``from_pretrained``.
            model: an already loaded value model.
            tokenizer: an already loaded tokenizer.
            prefix_cache_tokens: budget of the prefix KV cache in stored tokens (LRU
                eviction); 0 disables it. Memory per token: see the module docstring.
            context_length: longest input in tokens (``prm.context_length``); a longer one
                keeps its last tokens, where the value is read (a warning says how many
                were cut). None: no cap.
            revision: hub revision (branch, tag or commit) of a hub id ``model_path``
                (``prm.revision``); None: ``main``.
        """
        from rest_mcts.models.factory import load_tokenizer, load_value_model

        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if prefix_cache_tokens < 0:
            raise ValueError(f"prefix_cache_tokens must be >= 0, got {prefix_cache_tokens}")
        if context_length is not None and context_length < 1:
            raise ValueError(f"context_length must be >= 1 (or null), got {context_length}")
        self.context_length = context_length
        if (model is None or tokenizer is None) and model_path is None:
            raise ValueError("HFValueScorer needs model_path or both model and tokenizer")
        self.model = model if model is not None else load_value_model(
            model_path, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
            revision=revision,
        )
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(
            model_path, trust_remote_code=trust_remote_code, revision=revision
        )
        if self.tokenizer.pad_token_id is None:
            logger.info("tokenizer has no pad token; using its eos token for padding")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = next(self.model.parameters()).device
        self.max_batch_size = max_batch_size
        self.stats: dict[str, float] = {
            "calls": 0, "items": 0, "tokens": 0, "truncated": 0, "seconds": 0.0
        }
        self.prefix_cache: PrefixKVCache | None = None
        self._max_cached_length: int | None = None
        if prefix_cache_tokens:
            limit, reason = _cache_limit(self.model)
            if reason is not None:
                logger.warning("prefix KV cache disabled: %s", reason)
            else:
                self.prefix_cache = PrefixKVCache(prefix_cache_tokens)
                self._max_cached_length = limit
                self.stats.update(reused_tokens=0, prefix_hits=0, exact_hits=0)

    def clear_cache(self) -> None:
        """Forget all stored prefixes (needed if the model's weights change)."""
        if self.prefix_cache is not None:
            self.prefix_cache.clear()

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """Values in [0, 1] for each (question, steps so far) pair, in order."""
        if not items:
            return []
        start = time.perf_counter()
        texts = [prm_input(question, steps) for question, steps in items]
        truncated_before = self.stats["truncated"]
        # (toggled only when needed: Module.train walks every submodule, 0.4 ms a call here)
        was_training = self.model.training
        if was_training:
            self.model.eval()
        try:
            with torch.inference_mode():
                if self.prefix_cache is None:
                    values, tokens = self._score_uncached(texts)
                else:
                    values, tokens = self._score_cached(items, texts)
        finally:
            if was_training:
                self.model.train()
        seconds = time.perf_counter() - start
        if self.stats["truncated"] > truncated_before:
            logger.warning(
                "%d value-model inputs exceed prm.context_length=%d: they keep their last tokens",
                self.stats["truncated"] - truncated_before, self.context_length,
            )
        self.stats["calls"] += 1
        self.stats["items"] += len(items)
        self.stats["tokens"] += tokens
        self.stats["seconds"] += seconds
        logger.debug("scored %d items in %.3fs", len(items), seconds)
        return values

    def _cut(self, rows: list[list[int]]) -> list[list[int]]:
        """Rows longer than the context keep their last ``context_length`` tokens (counted)."""
        if self.context_length is None:
            return rows
        limit = self.context_length
        self.stats["truncated"] += sum(len(row) > limit for row in rows)
        return [row[-limit:] for row in rows]

    def _encode(self, texts: list[str]):
        """Token ids and attention mask of ``texts``, padded, cut to the context."""
        if self.context_length is None:
            return self.tokenizer(texts, padding=True, return_tensors="pt")
        ids = self._cut(self.tokenizer(texts)["input_ids"])
        return self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")

    def _score_uncached(self, texts: list[str]) -> tuple[list[float], int]:
        # Batch similar lengths together to waste less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        values = [0.0] * len(texts)
        tokens = 0
        for first in range(0, len(order), self.max_batch_size):
            batch = order[first : first + self.max_batch_size]
            encoded = self._encode([texts[i] for i in batch])
            mask = encoded["attention_mask"].to(self.device)
            raw = values_at_positions(
                self.model, encoded["input_ids"].to(self.device), mask, last_token_positions(mask)
            )
            for index, value in zip(batch, raw.clamp(0.0, 1.0).tolist()):
                values[index] = value
            tokens += int(mask.sum())
        return values, tokens

    # ----- prefix KV cache -------------------------------------------------------------------

    def _score_cached(
        self, items: Sequence[tuple[str, Sequence[str]]], texts: list[str]
    ) -> tuple[list[float], int]:
        cache = self.prefix_cache
        assert cache is not None
        ids = [tuple(row) for row in self._cut(self.tokenizer(texts)["input_ids"])]
        names = [(question, tuple(steps)) for question, steps in items]
        values: list[float | None] = [None] * len(items)
        full: list[int] = []  # no stored prefix: a whole forward pass
        extend: list[tuple[int, _Entry, int]] = []  # (item, ancestor entry, tokens reused)
        planned: dict[tuple[int, ...], int] = {}  # ids computed in this call -> first item
        reused = 0
        for i, (question, steps) in enumerate(items):
            entry = cache.get(ids[i])
            if entry is not None:
                values[i] = entry.value
                cache.name(names[i], ids[i])
                self.stats["exact_hits"] += 1
                reused += len(ids[i])
                continue
            if ids[i] in planned:  # a duplicate within this call: copied afterwards
                continue
            planned[ids[i]] = i
            if self._max_cached_length is not None and len(ids[i]) > self._max_cached_length:
                full.append(i)
                continue
            found = None
            for k in range(len(steps) - 1, -1, -1):
                found = cache.lookup((question, tuple(steps[:k])))
                if found is not None:
                    break
            if found is not None:
                prefix_ids, entry = found
                keep = min(_common_prefix(prefix_ids, ids[i]), len(ids[i]) - 1)
                if keep > 0:
                    cache.get(prefix_ids)  # mark as used
                    extend.append((i, entry, keep))
                    reused += keep
                    continue
            full.append(i)
        # (a job holds its ancestor's tensors, so storing new entries cannot pull them away)
        extend.sort(key=lambda job: (len(ids[job[0]]) - job[2], job[2]))
        for first in range(0, len(extend), self.max_batch_size):
            self._extend_batch(extend[first : first + self.max_batch_size], ids, names, values)
        full.sort(key=lambda i: len(ids[i]))
        for first in range(0, len(full), self.max_batch_size):
            self._full_batch(full[first : first + self.max_batch_size], ids, names, values)
        for i in range(len(items)):
            if values[i] is None:  # duplicate of an item computed in this call
                values[i] = values[planned[ids[i]]]
                reused += len(ids[i])
                if ids[i] in cache:
                    cache.name(names[i], ids[i])
        self.stats["reused_tokens"] += reused
        self.stats["prefix_hits"] += len(extend)
        return [float(v) for v in values], sum(len(row) for row in ids)

    def _storable(self, length: int) -> bool:
        return self._max_cached_length is None or length <= self._max_cached_length

    def _store(
        self,
        layers: list[tuple[torch.Tensor, torch.Tensor]],
        row: int,
        start: int,
        item: int,
        ids: list[tuple[int, ...]],
        names: list[tuple],
        value: float,
    ) -> None:
        """Copy row ``row``'s keys and values at ``start : start + len(ids[item])`` into the
        cache (a copy, so the batch tensors are not kept alive)."""
        length = len(ids[item])
        if not self._storable(length):
            return
        end = start + length
        stacked = torch.stack([t[row, :, start:end] for pair in layers for t in pair])
        kv = stacked.view(len(layers), 2, *stacked.shape[1:])
        self.prefix_cache.put(ids[item], names[item], kv, value)

    def _full_batch(
        self,
        batch: list[int],
        ids: list[tuple[int, ...]],
        names: list[tuple],
        values: list[float | None],
    ) -> None:
        """A whole forward pass over ``batch`` (padded on the tokenizer's side); stores each
        item's keys and values."""
        rows = [ids[i] for i in batch]
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        left = self.tokenizer.padding_side == "left"
        for r, row in enumerate(rows):
            start = width - len(row) if left else 0
            input_ids[r, start : start + len(row)] = torch.tensor(row, dtype=torch.long)
            mask[r, start : start + len(row)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        backbone = getattr(self.model, self.model.base_model_prefix)
        kv_cache = DynamicCache()
        outputs = backbone(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids_from_mask(mask),
            use_cache=True,
            **{cache_keyword(backbone): kv_cache},
        )
        raw = head_at(self.model, outputs[0], last_token_positions(mask)).clamp(0.0, 1.0).tolist()
        layers = [(layer.keys, layer.values) for layer in kv_cache.layers]
        starts = mask.argmax(dim=-1).tolist()  # first real token (masks are contiguous)
        for row, (item, value) in enumerate(zip(batch, raw)):
            values[item] = value
            self._store(layers, row, starts[row], item, ids, names, value)

    def _extend_batch(
        self,
        jobs: list[tuple[int, _Entry, int]],
        ids: list[tuple[int, ...]],
        names: list[tuple],
        values: list[float | None],
    ) -> None:
        """A forward pass over only the new tokens of each item, attending to its stored prefix.

        Layout of row ``r`` (``P`` reused tokens, ``N`` new ones, widths ``P_max``, ``N_max``):
        the past is left-padded, ``[pad] * (P_max - P) + prefix``, and the new tokens are
        right-padded, ``new + [pad] * (N_max - N)``; the attention mask is 1 exactly on the real
        tokens, and the new tokens' positions are ``P .. P + N - 1``. So every real token sees
        the same keys at the same positions as in a whole forward pass, its real keys and
        values sit at ``P_max - P : P_max + N``, and the value is read at new index ``N - 1``.
        """
        past_width = max(keep for _, _, keep in jobs)
        new_width = max(len(ids[item]) - keep for item, _, keep in jobs)
        batch = len(jobs)
        template = jobs[0][1].kv
        past = template.new_zeros(
            (template.shape[0], 2, batch, template.shape[2], past_width, template.shape[4])
        )
        pad_id = self.tokenizer.pad_token_id
        input_ids = torch.full((batch, new_width), pad_id, dtype=torch.long)
        mask = torch.zeros((batch, past_width + new_width), dtype=torch.long)
        positions = torch.zeros((batch, new_width), dtype=torch.long)
        for row, (item, entry, keep) in enumerate(jobs):
            new = ids[item][keep:]
            past[:, :, row, :, past_width - keep :] = entry.kv[:, :, :, :keep]
            input_ids[row, : len(new)] = torch.tensor(new, dtype=torch.long)
            mask[row, past_width - keep : past_width + len(new)] = 1
            positions[row] = torch.arange(keep, keep + new_width)
        kv_cache = DynamicCache(ddp_cache_data=[(layer[0], layer[1]) for layer in past])
        backbone = getattr(self.model, self.model.base_model_prefix)
        outputs = backbone(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=True,
            **{cache_keyword(backbone): kv_cache},
        )
        last = torch.tensor([len(ids[item]) - keep - 1 for item, _, keep in jobs])
        raw = head_at(self.model, outputs[0], last).clamp(0.0, 1.0).tolist()
        layers = [(layer.keys, layer.values) for layer in kv_cache.layers]
        for row, ((item, _, keep), value) in enumerate(zip(jobs, raw)):
            values[item] = value
            self._store(layers, row, past_width - keep, item, ids, names, value)

"""A KV-cached decode loop that drops finished rows from the batch as it goes.

``model.generate`` keeps every row of a batch in every forward pass until the longest row
ends, so a batch of short search steps with one long straggler pays for the straggler in
every row. Here a row leaves the batch (and the KV cache) once it has produced an end token,
so each forward pass costs only the rows still writing. Tree search asks for many short
completions at once (one step each), which is exactly where this matters; the measured gain
is in ``experiments/results/bench_search.md``.

Greedy decoding gives the same tokens as ``model.generate`` (same position ids from the
attention mask, same argmax); sampling draws from ``softmax(logits / temperature)`` restricted
to the top-``top_p`` nucleus, as ``generate`` does with ``top_k=0``.

Sampling randomness comes from per-row streams, not from torch's generator: output row
``i * n + j`` (sample ``j`` of prompt ``i``) draws its uniform at step ``t`` as a hash of
(the prompt's row seed, the sample's index, t) (:func:`sample_keys`, :func:`stream_uniforms`).
So a row's sample does not depend on which rows share its batch, how long their prompts are,
how the backend chunks the call, or which rows have finished. All draws of a call are hashed
at once before decoding (a few integer ops on a (rows, max_new_tokens) tensor), so a step
costs one gather, as ``torch.rand`` did. The same streams drive ``model.generate`` through
:class:`StreamSampler`, so both decoders sample alike.
"""

from __future__ import annotations

from typing import Callable, Sequence

import functools

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from rest_mcts.models.compat import cache_keyword


def compact_decode(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    n: int = 1,
    max_new_tokens: int,
    end_ids: list[int],
    pad_id: int,
    greedy: bool,
    temperature: float = 1.0,
    top_p: float = 1.0,
    compact_share: float = 0.125,
    stop_strings: Sequence[str] = (),
    decode: Callable[[list[list[int]]], list[str]] | None = None,
    seeds: Sequence[int] | None = None,
    first_sample: int = 0,
) -> torch.Tensor:
    """Generate up to ``max_new_tokens`` tokens for each left-padded row.

    Args:
        model: a causal LM that accepts a KV cache (``cache`` or ``past_key_values``, see
            :mod:`rest_mcts.models.compat`) and ``position_ids``.
        input_ids: (rows, width) prompt ids, left-padded.
        attention_mask: (rows, width), 0 on padding.
        n: completions per prompt: the prompt is encoded once and its KV cache repeated
            (output rows ``i * n .. i * n + n - 1`` belong to prompt ``i``).
        max_new_tokens: most tokens written per row.
        end_ids: tokens that end a row (kept in the output, as ``generate`` keeps eos).
        pad_id: what fills a row after its end token.
        greedy: argmax decoding; otherwise sampling with ``temperature`` and ``top_p``.
        compact_share: rows are dropped from the batch once at least this share of the rows
            still in it has finished (copying the KV cache on every single finish costs
            more than it saves).
        stop_strings: texts that also end a row (those that are not one token); checked
            each step on the decoded last few tokens of each row, with ``decode``
            (token id rows -> texts). The caller cuts the text at the stop afterwards.
        seeds: one row seed per prompt row (sampling only; None: drawn from torch's
            generator).
        first_sample: index of this call's first sample among each prompt's samples (when
            a prompt's samples are split over calls), so sample ``j`` here is stream
            ``first_sample + j``.

    Returns:
        (rows * n, steps) generated tokens, ``steps <= max_new_tokens``, padded with ``pad_id``.
    """
    device = input_ids.device
    mask = attention_mask.to(device)
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    cache = _new_cache(model, capacity=input_ids.shape[1] + max_new_tokens)
    logits = _forward(model, input_ids, mask, positions, cache)
    last_position = positions[:, -1]
    if n > 1:
        cache.batch_repeat_interleave(n)
        logits = logits.repeat_interleave(n, dim=0)
        mask = mask.repeat_interleave(n, dim=0)
        last_position = last_position.repeat_interleave(n, dim=0)
    rows = logits.shape[0]
    out = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
    ends = torch.tensor(sorted(set(end_ids)), dtype=torch.long, device=device)
    alive = torch.arange(rows, device=device)  # batch row -> output row
    uniforms = None  # (rows, max_new_tokens): every draw of every row, made in one go
    if not greedy:
        keys = sample_keys(_seeds_or_draw(seeds, input_ids.shape[0]), n, first_sample, device)
        uniforms = stream_uniforms(keys, 0, max_new_tokens)
    done = torch.zeros(rows, dtype=torch.bool, device=device)  # per batch row
    steps = 0
    for step in range(max_new_tokens):
        # each row's own stream: its draw does not depend on the other rows
        uniform = None if uniforms is None else uniforms[alive, step]
        token = _choose(logits, uniform, temperature, top_p)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        out[alive, step] = token
        steps = step + 1
        done = done | torch.isin(token, ends)
        if stop_strings:
            done = done | _hits_stop(out[alive, : step + 1], stop_strings, decode)
        finished = int(done.sum())
        if finished == done.numel() or step + 1 == max_new_tokens:
            break
        if finished and finished >= compact_share * done.numel():
            keep = (~done).nonzero(as_tuple=True)[0]
            cache.batch_select_indices(keep)
            alive, token, mask, last_position = alive[keep], token[keep], mask[keep], last_position[keep]
            done = done[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        last_position = last_position + 1
        logits = _forward(model, token[:, None], mask, last_position[:, None], cache)
    return out[:, :steps]


class _PreallocatedLayer(DynamicLayer):
    """A KV cache layer that writes new keys and values into a buffer allocated once with
    room for the whole generation, instead of concatenating (which copies the whole cache
    on every step: a quarter of decode time at batch 192 on the CPU, measured)."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None
        self._length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, end = self._length, self._length + key_states.shape[-2]
        if self._keys is None or end > self._keys.shape[-2]:
            self._grow(key_states, value_states, max(end, self.capacity))
        self._keys[..., start:end, :] = key_states
        self._values[..., start:end, :] = value_states
        self._length = end
        self.keys, self.values = self._keys[..., :end, :], self._values[..., :end, :]
        return self.keys, self.values

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, capacity: int) -> None:
        batch, heads, _, key_dim = key_states.shape
        keys = key_states.new_empty((batch, heads, capacity, key_dim))
        values = value_states.new_empty((batch, heads, capacity, value_states.shape[-1]))
        if self._keys is not None:
            keys[..., : self._length, :] = self._keys[..., : self._length, :]
            values[..., : self._length, :] = self._values[..., : self._length, :]
        self._keys, self._values = keys, values

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._keys is not None:
            self._set(self._keys.repeat_interleave(repeats, 0), self._values.repeat_interleave(repeats, 0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._keys is not None:
            self._set(self._keys[indices], self._values[indices])

    def _set(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self._keys, self._values = keys, values
        self.keys, self.values = keys[..., : self._length, :], values[..., : self._length, :]


def _new_cache(model: PreTrainedModel, capacity: int) -> DynamicCache:
    """Preallocated layers for plain full-attention models; transformers' own dynamic cache
    (built from the model config) for anything else (sliding windows, hybrid layers)."""
    config = model.config.get_text_config(decoder=True)
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    if getattr(config, "sliding_window", None) or set(layer_types) != {"full_attention"}:
        return DynamicCache(config=model.config)
    cache = DynamicCache()
    cache.layer_class_to_replicate = functools.partial(_PreallocatedLayer, capacity)
    return cache


def _hits_stop(
    written: torch.Tensor,
    stop_strings: Sequence[str],
    decode: Callable[[list[list[int]]], list[str]] | None,
) -> torch.Tensor:
    """Whether each row's last few tokens contain a stop string (a window one token longer
    than the longest stop, so a stop that ends with this step's token is always seen)."""
    if decode is None:
        raise ValueError("stop_strings need a decode function")
    window = max(len(stop) for stop in stop_strings) + 1
    texts = decode(written[:, -window:].tolist())
    return torch.tensor(
        [any(stop in text for stop in stop_strings) for text in texts], device=written.device
    )


def _forward(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    positions: torch.Tensor,
    cache: DynamicCache,
) -> torch.Tensor:
    """Next-token logits (rows, vocab) in float32, extending ``cache``."""
    output = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
        **{cache_keyword(model): cache},
    )
    return output.logits[:, -1, :].float()


def _choose(
    logits: torch.Tensor, uniform: torch.Tensor | None, temperature: float, top_p: float
) -> torch.Tensor:
    """One token per row: argmax when ``uniform`` is None, else the inverse-CDF sample at
    ``uniform`` (one draw in [0, 1) per row) from the tempered top-p distribution."""
    if uniform is None:
        return logits.argmax(dim=-1)
    scores = logits / temperature
    if top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        # drop a token when the tokens ranked above it already hold top_p of the mass
        drop = cumulative - sorted_scores.softmax(dim=-1) >= top_p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
    cdf = scores.softmax(dim=-1).cumsum(dim=-1)
    picked = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True).squeeze(-1)
    return picked.clamp(max=logits.shape[-1] - 1)


# ---------------------------------------------------------------------------- row streams
_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """``x * constant mod 2**32`` for int64 tensors holding 32-bit values, without ever
    overflowing int64 (the constant is applied in two 16-bit halves)."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash with full avalanche (Wellons' "lowbias32"), elementwise."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _seeds_or_draw(seeds: Sequence[int] | None, rows: int) -> list[int]:
    if seeds is None:
        return torch.randint(0, 2**31, (rows,)).tolist()
    if len(seeds) != rows:
        raise ValueError(f"got {len(seeds)} seeds for {rows} prompt rows")
    return [int(seed) for seed in seeds]


def sample_keys(
    seeds: Sequence[int], n: int, first_sample: int = 0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Stream keys of the output rows ``i * n + j``: a hash of (``seeds[i]``,
    ``first_sample + j``); any Python int seed is taken modulo 2**64."""
    wide = [int(s) % 2**64 for s in seeds]
    low = torch.tensor([s & _MASK32 for s in wide], dtype=torch.long)
    high = torch.tensor([s >> 32 for s in wide], dtype=torch.long)
    key = _mix32(_mix32(low ^ 0x9E3779B9) ^ high).repeat_interleave(n)
    sample = torch.arange(n, dtype=torch.long).repeat(len(seeds)) + first_sample
    return _mix32(key ^ _mix32(sample & _MASK32)).to(device)


def stream_uniforms(keys: torch.Tensor, first_step: int, steps: int) -> torch.Tensor:
    """(len(keys), steps) float32 uniforms in [0, 1) (24 random bits each): entry ``[r, t]``
    is the draw of the stream ``keys[r]`` at decoding step ``first_step + t``."""
    step = torch.arange(first_step, first_step + steps, dtype=torch.long, device=keys.device)
    bits = _mix32(keys[:, None] ^ _mix32((step + 0x632BE5AB) & _MASK32)[None, :])
    return (bits >> 8).to(torch.float32) * (1.0 / (1 << 24))


class StreamSampler:
    """A ``model.generate`` logits processor that samples each row from its own stream.

    Run with greedy decoding (``do_sample=False``) over prompts already repeated ``n``
    times: it picks the token exactly as :func:`compact_decode` does (same tempered top-p
    distribution, same uniform) and leaves only that token's score finite, so argmax takes it.
    """

    def __init__(self, keys: torch.Tensor, width: int, temperature: float, top_p: float) -> None:
        self.keys, self.width = keys, width
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.width
        uniform = stream_uniforms(self.keys.to(scores.device), step, 1)[:, 0]
        token = _choose(scores.float(), uniform, self.temperature, self.top_p)
        picked = torch.full_like(scores, float("-inf"))
        return picked.scatter(-1, token[:, None], 0.0)

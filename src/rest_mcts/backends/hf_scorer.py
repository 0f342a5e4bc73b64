"""Process-reward (value) scoring with a Hugging Face sequence-classification model.

The value of a partial solution is the model's scalar output at the last real token of
``prm_input(question, steps)``, clamped to [0, 1]. Positions are located with the attention
mask, so left and right padding give the same values, and :func:`values_at_positions` can read
several positions of one sequence in a single forward pass (e.g. the end of every step).
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rest_mcts.prompts import prm_input

logger = logging.getLogger(__name__)


def last_token_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real (mask 1) token of each row; works for left and right padding.

    Args:
        attention_mask: (batch, length) tensor of 0/1.

    Returns:
        (batch,) long tensor. Rows with no real token give 0.
    """
    length = attention_mask.shape[-1]
    index = torch.arange(length, device=attention_mask.device).expand_as(attention_mask)
    return torch.where(attention_mask.bool(), index, torch.zeros_like(index)).amax(dim=-1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count real tokens only, so left padding does not shift positions."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def values_at_positions(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
) -> torch.Tensor:
    """Raw (unclamped) value-head outputs at chosen token positions, in one forward pass.

    Runs the backbone (``model.<base_model_prefix>``) to get the hidden states and applies
    ``model.score`` only at the requested positions.

    Args:
        model: a sequence-classification model with one output and a ``score`` head.
        input_ids: (batch, length) token ids.
        attention_mask: (batch, length) 0/1 mask; padding may be on either side.
        positions: (batch,) or (batch, k) token indices to read (each a real token).

    Returns:
        float32 tensor shaped like ``positions``.
    """
    backbone = getattr(model, model.base_model_prefix)
    outputs = backbone(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
    )
    hidden = outputs[0]
    index = positions.to(hidden.device).long()
    flat = index if index.dim() == 2 else index.unsqueeze(-1)
    rows = torch.arange(hidden.shape[0], device=hidden.device).unsqueeze(-1)
    picked = hidden[rows, flat]  # (batch, k, hidden)
    values = model.score(picked).squeeze(-1).float()  # (batch, k)
    return values if index.dim() == 2 else values.squeeze(-1)


class HFValueScorer:
    """A :class:`~rest_mcts.backends.base.ValueScorer` on a local sequence-classification model.

    Attributes:
        model: the value model (kept in eval mode while scoring).
        tokenizer: its tokenizer; its own ``padding_side`` is used.
        device: the model's device.
        max_batch_size: most items per forward pass.
        stats: running totals: ``calls``, ``items``, ``tokens`` (real tokens) and ``seconds``.
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
        context_length: int | None = None,
    ) -> None:
        """Load the value model and tokenizer from ``model_path`` unless they are passed in.

        Args:
            model_path: local Hugging Face folder or hub id ``org/name`` (value model and
                tokenizer).
            device: where to load the model; a passed-in ``model`` stays where it is.
            dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"`` (loading only).
            max_batch_size: most items per forward pass.
            trust_remote_code: passed to ``from_pretrained``.
            model: an already loaded value model.
            tokenizer: an already loaded tokenizer.
            context_length: longest input in tokens (``prm.context_length``); a longer one
                keeps its last tokens, where the value is read (a warning says how many
                were cut). None: no cap.
        """
        from rest_mcts.models.factory import load_tokenizer, load_value_model

        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if context_length is not None and context_length < 1:
            raise ValueError(f"context_length must be >= 1 (or null), got {context_length}")
        self.context_length = context_length
        if (model is None or tokenizer is None) and model_path is None:
            raise ValueError("HFValueScorer needs model_path or both model and tokenizer")
        self.model = model if model is not None else load_value_model(
            model_path, dtype=dtype, device=device, trust_remote_code=trust_remote_code
        )
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(
            model_path, trust_remote_code=trust_remote_code
        )
        if self.tokenizer.pad_token_id is None:
            logger.info("tokenizer has no pad token; using its eos token for padding")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = next(self.model.parameters()).device
        self.max_batch_size = max_batch_size
        self.stats: dict[str, float] = {
            "calls": 0, "items": 0, "tokens": 0, "truncated": 0, "seconds": 0.0
        }

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """Values in [0, 1] for each (question, steps so far) pair, in order."""
        if not items:
            return []
        start = time.perf_counter()
        texts = [prm_input(question, steps) for question, steps in items]
        # Batch similar lengths together to waste less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        values = [0.0] * len(texts)
        tokens = 0
        truncated_before = self.stats["truncated"]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for first in range(0, len(order), self.max_batch_size):
                    batch = order[first : first + self.max_batch_size]
                    encoded = self._encode([texts[i] for i in batch])
                    mask = encoded["attention_mask"].to(self.device)
                    raw = values_at_positions(
                        self.model,
                        encoded["input_ids"].to(self.device),
                        mask,
                        last_token_positions(mask),
                    )
                    for index, value in zip(batch, raw.clamp(0.0, 1.0).tolist()):
                        values[index] = value
                    tokens += int(mask.sum())
        finally:
            self.model.train(was_training)
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

    def _encode(self, texts: list[str]):
        """Token ids and attention mask of ``texts``, padded; inputs longer than the context
        keep their last ``context_length`` tokens."""
        if self.context_length is None:
            return self.tokenizer(texts, padding=True, return_tensors="pt")
        ids = self.tokenizer(texts)["input_ids"]
        limit = self.context_length
        self.stats["truncated"] += sum(len(row) > limit for row in ids)
        return self.tokenizer.pad(
            {"input_ids": [row[-limit:] for row in ids]}, padding=True, return_tensors="pt"
        )

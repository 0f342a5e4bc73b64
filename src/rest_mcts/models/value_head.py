"""Reading a value model's regression head: the one place values are taken from hidden states.

A value model (PRM) is a Hugging Face sequence-classification model with one regression
output (built by :func:`~rest_mcts.models.factory.value_model_from_causal_lm` or
:func:`~rest_mcts.models.factory.build_tiny_value_model`). Both the search-time scorer
(``backends.hf_scorer``) and PRM training (``training.prm``) read values through these
functions, so a trained PRM is scored exactly as it was trained.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel


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


def head_at(model: PreTrainedModel, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``model.score`` applied to ``hidden`` (batch, length, width) at ``positions``
    ((batch,) or (batch, k)); float32, shaped like ``positions``."""
    index = positions.to(hidden.device).long()
    flat = index if index.dim() == 2 else index.unsqueeze(-1)
    rows = torch.arange(hidden.shape[0], device=hidden.device).unsqueeze(-1)
    picked = hidden[rows, flat]  # (batch, k, hidden)
    values = model.score(picked).squeeze(-1).float()  # (batch, k)
    return values if index.dim() == 2 else values.squeeze(-1)


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
    return head_at(model, outputs[0], positions)

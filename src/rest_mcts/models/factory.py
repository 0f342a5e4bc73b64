"""Build, save and load the policy and value (PRM) models.

Tiny Llama models are built from scratch for CPU experiments; any Hugging Face causal LM loads
through the same functions, from a local folder or by hub id (``org/name``, passed unchanged to
``from_pretrained``, which downloads it when there is network; see ``models.source``). The value model is a sequence-classification head with one
regression output on top of a causal-LM backbone (the paper initialises the PRM from the
policy).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from rest_mcts.models.source import model_source

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


def build_tiny_causal_lm(
    tokenizer: PreTrainedTokenizerBase,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> LlamaForCausalLM:
    """Build a randomly initialised small Llama causal LM for ``tokenizer``.

    With the defaults and the 100-token character tokenizer this has about 0.53M parameters.

    Args:
        tokenizer: supplies the vocabulary size and the pad/bos/eos ids.
        hidden_size: model width.
        num_layers: transformer blocks.
        num_heads: attention heads (no grouped-query attention).
        intermediate_size: MLP width; ``None`` means ``4 * hidden_size``.
        max_position_embeddings: longest sequence the model is meant for.
        seed: seed of the weight initialisation (the global RNG is left untouched).

    Returns:
        The model in eval mode, float32, on the CPU.
    """
    config = _tiny_llama_config(
        tokenizer, hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    logger.info("built tiny causal LM with %d parameters", count_parameters(model))
    return model


def build_tiny_value_model(
    tokenizer: PreTrainedTokenizerBase,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> LlamaForSequenceClassification:
    """Build a randomly initialised small Llama value model (one regression output).

    Args: as :func:`build_tiny_causal_lm`.

    Returns:
        A ``LlamaForSequenceClassification`` with ``num_labels=1``, ``problem_type="regression"``
        and ``pad_token_id`` set, in eval mode, float32, on the CPU.
    """
    config = _tiny_llama_config(
        tokenizer, hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings
    )
    config.num_labels = 1
    config.problem_type = "regression"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForSequenceClassification(config)
    model.eval()
    logger.info("built tiny value model with %d parameters", count_parameters(model))
    return model


def value_model_from_causal_lm(
    path_or_model: PathLike | PreTrainedModel,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
    pad_token_id: int | None = None,
    seed: int = 0,
    revision: str | None = None,
) -> PreTrainedModel:
    """Build a value model whose backbone starts from a causal LM (its LM head is dropped).

    Args:
        path_or_model: a causal-LM folder, a hub id or an already loaded causal LM.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"``.
        device: where to put the model.
        trust_remote_code: passed to ``from_pretrained``.
        pad_token_id: overrides the config's pad id; when neither is set, the eos id is used.
        seed: seed of the freshly initialised ``score`` head (global RNG untouched); the head
            is the same whether a path or a loaded model is given.
        revision: the hub revision (branch, tag or commit) of a hub id; None: ``main``.

    Returns:
        A sequence-classification model with ``num_labels=1`` and ``problem_type="regression"``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(path_or_model, PreTrainedModel):
            model = _value_model_from_loaded(path_or_model, pad_token_id)
            if dtype != "auto":
                model.to(dtype=_torch_dtype(dtype))
        else:
            path = _check_model_dir(path_or_model)
            kwargs: dict[str, Any] = hub_kwargs(path, revision)
            resolved_pad = (
                pad_token_id
                if pad_token_id is not None
                else _missing_pad_id(path, trust_remote_code, revision)
            )
            if resolved_pad is not None:
                kwargs["pad_token_id"] = resolved_pad
            # transformers reports the new `score` head as MISSING: expected here, so that
            # report is dropped (any other key still shows).
            with _without_score_head_report():
                model = AutoModelForSequenceClassification.from_pretrained(
                    path,
                    num_labels=1,
                    problem_type="regression",
                    dtype=_dtype_arg(dtype),
                    trust_remote_code=trust_remote_code,
                    **kwargs,
                )
        _init_score_head(model, seed)
    model.to(device)
    model.eval()
    return model


class _DropScoreHeadReport(logging.Filter):
    """Drop transformers' state-dict LOAD REPORT when every key it lists is the `score` head."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if "LOAD REPORT" not in text:
            return True
        keys = [line.split("|")[0].strip() for line in text.splitlines() if line.count("|") >= 2]
        keys = [k for k in keys if k and k != "Key" and not set(k) <= set("-+ ")]
        return not (keys and all(k.startswith("score.") for k in keys))


@contextlib.contextmanager
def _without_score_head_report() -> Iterator[None]:
    hf_logger = logging.getLogger("transformers.modeling_utils")
    drop = _DropScoreHeadReport()
    hf_logger.addFilter(drop)
    try:
        yield
    finally:
        hf_logger.removeFilter(drop)


def load_tokenizer(
    path: PathLike, trust_remote_code: bool = False, revision: str | None = None
) -> PreTrainedTokenizerBase:
    """Load a tokenizer saved with ``save_pretrained`` (a local folder) or by hub id (at
    ``revision``: a branch, tag or commit; None: ``main``).

    Raises:
        FileNotFoundError: ``path`` is neither a folder with tokenizer files nor a hub id.
    """
    folder = model_source(path, "tokenizer")
    if isinstance(folder, str):  # hub id
        return AutoTokenizer.from_pretrained(
            folder, trust_remote_code=trust_remote_code, **hub_kwargs(folder, revision))
    if not folder.is_dir() or not any(
        (folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")
    ):
        raise FileNotFoundError(
            f"tokenizer path '{path}' not found (expected a Hugging Face folder with "
            "tokenizer.json or tokenizer_config.json)"
        )
    return AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)


def load_causal_lm(
    path: PathLike, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False,
    revision: str | None = None,
) -> PreTrainedModel:
    """Load a causal LM from a local Hugging Face folder or a hub id (at ``revision``: a
    branch, tag or commit; None: ``main``), in eval mode.

    Raises:
        FileNotFoundError: ``path`` is a missing folder (not a hub id) or has no ``config.json``.
    """
    folder = _check_model_dir(path)
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=_dtype_arg(dtype), trust_remote_code=trust_remote_code,
        **hub_kwargs(folder, revision),
    )
    model.to(device)
    model.eval()
    return model


def load_value_model(
    path: PathLike, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False,
    revision: str | None = None,
) -> PreTrainedModel:
    """Load a value model (sequence classification, one output) from a local folder or a hub
    id (at ``revision``; None: ``main``), in eval mode.

    Raises:
        FileNotFoundError: ``path`` is a missing folder (not a hub id) or has no ``config.json``.
    """
    folder = _check_model_dir(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, dtype=_dtype_arg(dtype), trust_remote_code=trust_remote_code,
        **hub_kwargs(folder, revision),
    )
    if model.config.num_labels != 1:
        raise ValueError(
            f"value model at '{path}' has num_labels={model.config.num_labels}, expected 1"
        )
    model.to(device)
    model.eval()
    return model


def save_model(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, path: PathLike
) -> Path:
    """Save a model (safetensors) and its tokenizer into one folder; return the folder."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    logger.info("saved %s to %s", type(model).__name__, folder)
    return folder


def hub_kwargs(source: Path | str, revision: str | None) -> dict[str, Any]:
    """``{"revision": revision}`` for ``from_pretrained`` of a hub id (``source`` as
    :func:`~rest_mcts.models.source.model_source` gives it: a string), else nothing: a local
    folder has no revisions, and an unset revision leaves the call as it was (``main``)."""
    return {"revision": str(revision)} if revision and isinstance(source, str) else {}


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of (distinct) parameters; tied weights count once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _tiny_llama_config(
    tokenizer: PreTrainedTokenizerBase,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    intermediate_size: int | None,
    max_position_embeddings: int,
) -> LlamaConfig:
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )


def _value_model_from_loaded(
    causal_lm: PreTrainedModel, pad_token_id: int | None
) -> PreTrainedModel:
    config = causal_lm.config.__class__.from_dict(causal_lm.config.to_dict())
    config.num_labels = 1
    config.problem_type = "regression"
    if pad_token_id is not None:
        config.pad_token_id = pad_token_id
    elif config.pad_token_id is None:
        config.pad_token_id = _first_id(config.eos_token_id)
    model = AutoModelForSequenceClassification.from_config(config)
    source = getattr(causal_lm, causal_lm.base_model_prefix)
    target = getattr(model, model.base_model_prefix)
    target.load_state_dict(source.state_dict())
    return model.to(next(causal_lm.parameters()).device)


def _init_score_head(model: PreTrainedModel, seed: int) -> None:
    """Re-initialise the value head from ``seed`` (normal, std = ``initializer_range``)."""
    head = getattr(model, "score", None)
    if not isinstance(head, torch.nn.Linear):
        return
    std = getattr(model.config, "initializer_range", 0.02)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight = torch.randn(head.weight.shape, generator=generator) * std
        head.weight.copy_(weight.to(head.weight.dtype))
        if head.bias is not None:
            head.bias.zero_()


def _missing_pad_id(
    folder: Path | str, trust_remote_code: bool, revision: str | None = None
) -> int | None:
    """The eos id when the config has no pad id (``None`` when it has one: it is kept)."""
    config = AutoConfig.from_pretrained(
        folder, trust_remote_code=trust_remote_code, **hub_kwargs(folder, revision))
    if getattr(config, "pad_token_id", None) is not None:
        return None
    return _first_id(getattr(config, "eos_token_id", None))


def _first_id(token_id: int | list[int] | None) -> int | None:
    if isinstance(token_id, (list, tuple)):
        return token_id[0] if token_id else None
    return token_id


def _check_model_dir(path: PathLike) -> Path | str:
    """The local model folder (checked for config.json), or the hub id unchanged."""
    folder = model_source(path, "model")
    if isinstance(folder, str):
        return folder
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"model path '{path}' not found (expected a Hugging Face model folder with config.json)"
        )
    return folder


def _torch_dtype(dtype: str) -> torch.dtype:
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r} (use float32, bfloat16, float16 or auto)")
    return value


def _dtype_arg(dtype: str) -> torch.dtype | str:
    return "auto" if dtype == "auto" else _torch_dtype(dtype)

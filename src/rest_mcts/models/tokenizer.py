"""A character-level tokenizer for the tiny from-scratch models (built offline, no hub)."""

from __future__ import annotations

import logging

from tokenizers import Tokenizer, decoders, models, processors
from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
CHARACTERS = ("\n",) + tuple(chr(code) for code in range(32, 127))


def build_char_tokenizer(padding_side: str = "left") -> PreTrainedTokenizerFast:
    """Build a character-level tokenizer: one token per character, spaces and newlines included.

    The vocabulary is ``<pad>`` (id 0), ``<s>``, ``</s>``, ``<unk>``, then ``"\\n"`` and the
    printable ASCII characters 32..126 (100 tokens in all). Encoding prepends ``<s>``; no
    ``</s>`` is appended automatically. Characters outside the vocabulary map to ``<unk>``.
    ``decode(encode(s), skip_special_tokens=True) == s`` for any printable ASCII text with
    newlines.

    Args:
        padding_side: ``"left"`` (generation) or ``"right"``.

    Returns:
        A fast tokenizer that saves and loads with ``save_pretrained``/``from_pretrained``.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    # A BPE model with no merges and no pre-tokenizer splits text into single characters.
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK_TOKEN))
    backend.decoder = decoders.Fuse()
    tokenizer = _wrap(backend, vocab, padding_side)
    logger.debug("built character tokenizer with %d tokens", len(tokenizer))
    return tokenizer


# A minimal chat template for the tiny byte-level models: each message is written as
# <|role|>\n<content><|end|>\n, and the generation prompt opens an assistant turn.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
CHAT_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")


def build_byte_tokenizer(
    padding_side: str = "left", chat_template: str | None = TINY_CHAT_TEMPLATE
) -> PreTrainedTokenizerFast:
    """Build a byte-level tokenizer: one token per UTF-8 byte, so it covers any text.

    The vocabulary is ``<pad>`` (id 0), ``<s>``, ``</s>``, ``<unk>``, the 256 byte tokens
    (GPT-2's byte-to-unicode alphabet, no merges) and the chat tokens ``<|system|>``,
    ``<|user|>``, ``<|assistant|>``, ``<|end|>`` (264 tokens in all). Encoding prepends
    ``<s>``. ``decode(encode(s), skip_special_tokens=True) == s`` for any string.

    Args:
        padding_side: ``"left"`` (generation) or ``"right"``.
        chat_template: Jinja chat template stored with the tokenizer (used by
            ``apply_chat_template``); None for none.

    Returns:
        A fast tokenizer that saves and loads with ``save_pretrained``/``from_pretrained``.
    """
    from tokenizers import pre_tokenizers

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + tuple(alphabet))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = _wrap(backend, vocab, padding_side, extra_special=CHAT_TOKENS)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    logger.debug("built byte-level tokenizer with %d tokens", len(tokenizer))
    return tokenizer


def _wrap(
    backend, vocab: dict[str, int], padding_side: str, extra_special: tuple[str, ...] = ()
) -> PreTrainedTokenizerFast:
    """The transformers tokenizer around a `tokenizers` backend: ``<s>`` prepended to every
    encoding, the project's special tokens, and the given padding side."""
    bos_id = vocab[BOS_TOKEN]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B",
        special_tokens=[(BOS_TOKEN, bos_id)],
    )
    extra = {"additional_special_tokens": list(extra_special)} if extra_special else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        pad_token=PAD_TOKEN,
        padding_side=padding_side,
        clean_up_tokenization_spaces=False,
        **extra,
    )

"""Build and save a tiny byte-level chat model in Hugging Face format (offline, seconds).

The plumbing test model for natural-language worlds: an untrained tiny Llama (same factory
as the Countdown models) with a byte-level tokenizer that covers any text and carries a
chat template. Its answers are noise; it exists so that MATH/GSM8K runs can be tested end
to end on a CPU::

    python -m rest_mcts.models.tiny_chat /tmp/tiny-chat
    python run.py stage=search model.path=/tmp/tiny-chat data=math \\
        data.path=tests/fixtures/math_sample.jsonl data.limit=4
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rest_mcts.models.factory import build_tiny_causal_lm, save_model
from rest_mcts.models.tokenizer import build_byte_tokenizer


def build_tiny_chat_model(
    path: str | Path,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_position_embeddings: int = 4096,
    seed: int = 0,
) -> Path:
    """Build the tiny chat model and save it (model, tokenizer, chat template) to ``path``."""
    tokenizer = build_byte_tokenizer()
    model = build_tiny_causal_lm(
        tokenizer,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        seed=seed,
    )
    return save_model(model, tokenizer, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="output folder")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = build_tiny_chat_model(args.path, args.hidden_size, args.num_layers, seed=args.seed)
    print(out)


if __name__ == "__main__":
    main()

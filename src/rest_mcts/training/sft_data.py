"""Policy SFT data: (prompt, completion) pairs, tokenised with the loss on the completion only.

D_G files (correct solutions, written by the search stage or by hand) are JSONL with one
object per line: ``{"question": str, "steps": [str, ...]}`` (the policy learns to write the
steps after the question, formatted by `prompts.policy_prompt` exactly as at search time), or
``{"prompt": str, "completion": str}`` for text already formatted. A bad row raises an error
naming the file and line (:mod:`rest_mcts.training.rows`). :func:`build_sft_data`
deduplicates, drops examples longer than the length limit and holds out a share of the
questions for validation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from rest_mcts.training.resumable import ShuffledDataModule
from rest_mcts.utils.hashing import held_out
from rest_mcts.training.rows import (  # noqa: F401 -- re-exported
    SFTExample,
    read_solution_rows,
    solution_example,
)

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


def deduplicate_examples(examples: Iterable[SFTExample]) -> list[SFTExample]:
    """Each distinct (prompt, completion) once, first occurrence order."""
    return list(dict.fromkeys(examples))


def split_by_prompt(
    examples: Sequence[SFTExample], val_share: float, seed: int = 0
) -> tuple[list[SFTExample], list[SFTExample]]:
    """Deterministic train/validation split that keeps each question (prompt) on one side."""
    train = [e for e in examples if not held_out(e.prompt, val_share, seed)]
    val = [e for e in examples if held_out(e.prompt, val_share, seed)]
    return train, val


def tokenize_sft(
    examples: Sequence[SFTExample], tokenizer, max_length: int
) -> list[tuple[list[int], list[int]]]:
    """Token ids and labels per example; prompt tokens get label -100 (no loss), the
    completion is followed by EOS (so the policy learns to stop), and both are cut at
    ``max_length`` tokens."""
    prompts = tokenizer([e.prompt for e in examples], add_special_tokens=True)["input_ids"]
    completions = tokenizer([e.completion for e in examples], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    out = []
    for p, c in zip(prompts, completions):
        c = list(c) + [eos]
        ids = (list(p) + c)[:max_length]
        labels = ([IGNORE_INDEX] * len(p) + c)[:max_length]
        out.append((ids, labels))
    return out


def filter_length(
    examples: Sequence[SFTExample], tokenizer, max_length: int
) -> tuple[list[SFTExample], int]:
    """Examples whose prompt + completion + EOS fit in ``max_length`` tokens (a cut solution
    would teach the policy to stop early), and how many were dropped."""
    if not examples:
        return [], 0
    prompts = tokenizer([e.prompt for e in examples], add_special_tokens=True)["input_ids"]
    completions = tokenizer([e.completion for e in examples], add_special_tokens=False)["input_ids"]
    kept = [
        e for e, p, c in zip(examples, prompts, completions) if len(p) + len(c) + 1 <= max_length
    ]
    return kept, len(examples) - len(kept)


class SFTDataset(Dataset):
    def __init__(self, examples: Sequence[SFTExample], tokenizer, max_length: int):
        self.items = tokenize_sft(examples, tokenizer, max_length)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[list[int], list[int]]:
        return self.items[i]


def collate_right_padded(batch, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch for training (labels -100 on padding)."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, lab) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(lab)] = torch.tensor(lab)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


class SFTDataModule(ShuffledDataModule):
    """Train/val loaders over in-memory SFT examples."""

    def __init__(
        self,
        train: Sequence[SFTExample],
        val: Sequence[SFTExample],
        tokenizer,
        batch_size: int = 64,
        max_length: int = 128,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__(seed)
        self.train_set = SFTDataset(train, tokenizer, max_length)
        self.val_set = SFTDataset(val, tokenizer, max_length) if val else None
        self.pad_id = tokenizer.pad_token_id
        self.batch_size = batch_size
        self.num_workers = num_workers

    def _loader(self, data: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=self.generator if shuffle else None,
            num_workers=self.num_workers,
            collate_fn=lambda b: collate_right_padded(b, self.pad_id),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False) if self.val_set else []


def build_sft_data(
    tokenizer,
    sources: Sequence[SFTExample | str | Path],
    *,
    val_share: float = 0.1,
    batch_size: int = 64,
    max_length: int = 128,
    num_workers: int = 0,
    seed: int = 0,
    fmt: Any = None,
) -> SFTDataModule:
    """SFT data module over D_G: examples and/or JSONL files (see module doc; ``fmt``: the
    world's prompt format the files' rows are rendered with), deduplicated, length-filtered
    and split by question.

    The module gets ``stats`` (rows read, duplicates, too long, train and validation sizes).
    """
    examples: list[SFTExample] = []
    for source in sources:
        if isinstance(source, SFTExample):
            examples.append(source)
        else:
            examples += read_solution_rows(source, fmt)
    if not examples:
        raise ValueError("no policy SFT examples (give D_G files or examples)")
    unique = deduplicate_examples(examples)
    kept, too_long = filter_length(unique, tokenizer, max_length)
    if not kept:
        raise ValueError(f"every policy SFT example is longer than max_length={max_length} tokens")
    train, val = split_by_prompt(kept, val_share, seed)
    if not train:
        train, val = val, []  # too few questions to hold any out
    data = SFTDataModule(
        train, val, tokenizer, batch_size=batch_size, max_length=max_length,
        num_workers=num_workers, seed=seed,
    )
    data.stats = {
        "data/rows": float(len(examples)),
        "data/duplicates": float(len(examples) - len(unique)),
        "data/too_long": float(too_long),
        "data/train_rows": float(len(train)),
        "data/val_rows": float(len(val)),
    }
    log.info("policy SFT data: %s", {k: int(v) for k, v in data.stats.items()})
    return data

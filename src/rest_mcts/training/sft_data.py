"""Policy SFT data: (prompt, completion) pairs, tokenised with the loss on the completion only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SFTExample:
    """One supervised example: the policy reads ``prompt`` and learns to write ``completion``."""

    prompt: str
    completion: str

    def __post_init__(self) -> None:
        if not self.completion:
            raise ValueError("SFTExample.completion must be non-empty")


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


class SFTDataModule(L.LightningDataModule):
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
        super().__init__()
        self.train_set = SFTDataset(train, tokenizer, max_length)
        self.val_set = SFTDataset(val, tokenizer, max_length) if val else None
        self.pad_id = tokenizer.pad_token_id
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed

    def _loader(self, data: Dataset, shuffle: bool) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=gen if shuffle else None,
            num_workers=self.num_workers,
            collate_fn=lambda b: collate_right_padded(b, self.pad_id),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False) if self.val_set else []

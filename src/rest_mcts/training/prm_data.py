"""PRM data D_V: (question, partial solution, target quality value) rows from JSONL files.

Each line of a D_V file is ``{"question": str, "steps": [str, ...], "target": float}``
(extra fields such as ``question_id``, ``m``, ``r`` are kept but not needed). Rows are
validated (:mod:`rest_mcts.training.rows`: a bad row raises an error naming the file and
line), deduplicated on
(question, steps) by averaging their targets, and split into train and validation sets by
question, so no question appears in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from rest_mcts.prompts import prm_input
from rest_mcts.training.resumable import ShuffledDataModule
from rest_mcts.utils.hashing import held_out
from rest_mcts.training.rows import ValueRow, read_value_rows  # noqa: F401 -- re-exported


def deduplicate(rows: Iterable[ValueRow]) -> list[ValueRow]:
    """One row per (question, steps); targets of duplicates are averaged."""
    sums: dict[tuple[str, tuple[str, ...]], list[float]] = {}
    for row in rows:
        sums.setdefault((row.question, row.steps), []).append(row.target)
    return [ValueRow(q, s, sum(t) / len(t)) for (q, s), t in sums.items()]


def split_by_question(
    rows: Sequence[ValueRow], val_share: float, seed: int = 0
) -> tuple[list[ValueRow], list[ValueRow]]:
    """Deterministic train/validation split that keeps each question on one side."""
    train = [r for r in rows if not held_out(r.question, val_share, seed)]
    val = [r for r in rows if held_out(r.question, val_share, seed)]
    return train, val


class ValueDataset(Dataset):
    """Tokenised PRM inputs (`prompts.prm_input`) with their targets."""

    def __init__(self, rows: Sequence[ValueRow], tokenizer, max_length: int):
        texts = [prm_input(r.question, r.steps) for r in rows]
        ids = tokenizer(texts, add_special_tokens=True)["input_ids"]
        kept = [(list(i), r) for i, r in zip(ids, rows) if len(i) <= max_length]
        self.items = [(i, r.target) for i, r in kept]
        self.rows = [r for _, r in kept]  # aligned with items (validation metrics use them)
        self.dropped = len(rows) - len(kept)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


def collate_values(batch, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token ids; `positions` is each row's last real token."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, _) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": mask,
        "positions": torch.tensor([len(ids) - 1 for ids, _ in batch]),
        "targets": torch.tensor([t for _, t in batch], dtype=torch.float32),
    }


class ValueDataModule(ShuffledDataModule):
    """Train/validation loaders over D_V rows (from JSONL files or given directly)."""

    def __init__(
        self,
        tokenizer,
        rows: Sequence[ValueRow] | None = None,
        files: Sequence[str | Path] = (),
        val_share: float = 0.1,
        batch_size: int = 64,
        max_length: int = 256,
        seed: int = 0,
    ):
        super().__init__(seed)
        all_rows = list(rows or [])
        for f in files:
            all_rows += read_value_rows(f)
        if not all_rows:
            raise ValueError("no PRM training rows (give rows or D_V files)")
        unique = deduplicate(all_rows)
        train, val = split_by_question(unique, val_share, seed)
        self.train_set = ValueDataset(train, tokenizer, max_length)
        self.val_set = ValueDataset(val, tokenizer, max_length) if val else None
        self.pad_id = tokenizer.pad_token_id
        self.batch_size = batch_size
        self.mean_target = sum(r.target for r in train) / max(1, len(train))

    def _loader(self, data: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=self.generator if shuffle else None,
            collate_fn=lambda b: collate_values(b, self.pad_id),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False) if self.val_set else []

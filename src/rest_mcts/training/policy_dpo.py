"""Policy DPO as a LightningModule beside policy SFT (Rafailov et al. 2023, Eq. 7).

    L_DPO = -log sigmoid( beta * [ (log pi(y_w|x) - log pi_ref(y_w|x))
                                 - (log pi(y_l|x) - log pi_ref(y_l|x)) ] )

over preference pairs (x, y_w chosen, y_l rejected); log pi(y|x) sums the completion's token
log-probabilities (prompt and padding masked as in SFT, the completion followed by EOS). The
reference pi_ref is a frozen copy of the policy at the start of the iteration: no gradient,
never in the optimiser, kept in eval mode. The data are pairs
``{"prompt", "chosen", "rejected"}`` (:func:`rest_mcts.loop.baseline_data.dpo_pairs`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from rest_mcts.training.optim import WarmupAdamWModule
from rest_mcts.training.resumable import ShuffledDataModule
from rest_mcts.training.rows import SFTExample
from rest_mcts.training.sft_data import IGNORE_INDEX, collate_right_padded, tokenize_sft
from rest_mcts.utils.hashing import held_out
from rest_mcts.utils.io import read_jsonl

log = logging.getLogger(__name__)


def sequence_logps(model: torch.nn.Module, input_ids, attention_mask, labels) -> torch.Tensor:
    """Sum of log p(token) over each row's labelled tokens (labels != -100), shape (rows,)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    target = labels[:, 1:]
    mask = target != IGNORE_INDEX
    logps = torch.gather(logits.float().log_softmax(-1), 2,
                         target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logps * mask).sum(-1)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float):
    """Eq. 7 of Rafailov et al. (2023) per pair, and the implicit rewards
    beta * (log pi - log pi_ref) of the chosen and rejected completions."""
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    return -F.logsigmoid(chosen - rejected), chosen, rejected


class PolicyDPOModule(WarmupAdamWModule):
    """Wraps a Hugging Face causal LM (``model``, trained) and its frozen reference
    (``reference``); a batch holds the chosen rows first, then the rejected ones."""

    def __init__(
        self,
        model: torch.nn.Module,
        reference: torch.nn.Module,
        beta: float = 0.1,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.03,
        min_lr_ratio: float = 0.1,
    ):
        super().__init__()
        if beta <= 0:
            raise ValueError(f"DPO beta must be > 0, got {beta}")
        self.model = model.train()
        self.reference = reference.eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.save_hyperparameters(ignore=["model", "reference"])

    def _step(self, batch, split: str) -> torch.Tensor:
        self.reference.eval()  # Lightning's train() reaches every submodule
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        half = ids.shape[0] // 2
        policy = sequence_logps(self.model, ids, mask, labels)
        with torch.no_grad():
            ref = sequence_logps(self.reference, ids, mask, labels)
        losses, chosen, rejected = dpo_loss(policy[:half], policy[half:], ref[:half], ref[half:],
                                            self.hparams.beta)
        loss = losses.mean()
        kw = {"batch_size": half, "sync_dist": split == "val"}
        self.log(f"{split}/loss", loss, prog_bar=True, **kw)
        self.log(f"{split}/reward_acc", (chosen > rejected).float().mean(), **kw)
        self.log(f"{split}/reward_margin", (chosen - rejected).mean(), **kw)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")


# ---------------------------------------------------------------------------- data
class PairDataset(Dataset):
    """Tokenised pairs: each item is ((chosen ids, labels), (rejected ids, labels))."""

    def __init__(self, pairs: Sequence[dict[str, str]], tokenizer, max_length: int):
        chosen = tokenize_sft([SFTExample(p["prompt"], p["chosen"]) for p in pairs], tokenizer,
                              max_length)
        rejected = tokenize_sft([SFTExample(p["prompt"], p["rejected"]) for p in pairs],
                                tokenizer, max_length)
        self.items = list(zip(chosen, rejected))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def collate_pairs(batch, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded rows: the batch's chosen completions, then its rejected ones."""
    return collate_right_padded([c for c, _ in batch] + [r for _, r in batch], pad_id)


class PairDataModule(ShuffledDataModule):
    """Train/val loaders over preference pairs, split by prompt (question)."""

    def __init__(self, pairs: Sequence[dict[str, str]], tokenizer, *, val_share: float = 0.1,
                 batch_size: int = 16, max_length: int = 128, seed: int = 0):
        super().__init__(seed)
        fits = [p for p in pairs if _fits(p, tokenizer, max_length)]
        train = [p for p in fits if not held_out(p["prompt"], val_share, seed)]
        val = [p for p in fits if held_out(p["prompt"], val_share, seed)]
        if not train:
            train, val = val, []
        if not train:
            raise ValueError(f"no DPO pair fits in max_length={max_length} tokens")
        self.train_set = PairDataset(train, tokenizer, max_length)
        self.val_set = PairDataset(val, tokenizer, max_length) if val else None
        self.pad_id = tokenizer.pad_token_id
        self.batch_size = batch_size
        self.stats = {"data/pairs": float(len(pairs)),
                      "data/too_long": float(len(pairs) - len(fits)),
                      "data/train_pairs": float(len(train)), "data/val_pairs": float(len(val))}

    def _loader(self, data: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle,
                          generator=self.generator if shuffle else None,
                          collate_fn=lambda b: collate_pairs(b, self.pad_id))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False) if self.val_set else []


def _fits(pair: dict[str, str], tokenizer, max_length: int) -> bool:
    prompt = len(tokenizer(pair["prompt"], add_special_tokens=True)["input_ids"])
    longest = max(len(tokenizer(pair[k], add_special_tokens=False)["input_ids"])
                  for k in ("chosen", "rejected"))
    return prompt + longest + 1 <= max_length


def read_pairs(files: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The pairs of JSONL files (``{"prompt", "chosen", "rejected", ...}`` per line)."""
    pairs = []
    for path in files:
        for row in read_jsonl(path):
            if not all(isinstance(row.get(k), str) and row[k] for k in
                       ("prompt", "chosen", "rejected")):
                raise ValueError(f"{path}: a DPO pair needs non-empty prompt, chosen, rejected")
            pairs.append(row)
    return pairs

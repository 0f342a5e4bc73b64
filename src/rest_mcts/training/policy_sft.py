"""Policy SFT as a LightningModule: causal-LM loss on the solution tokens only.

The same module bootstraps the tiny Countdown policy from scratch and fine-tunes a 7B
policy on the correct traces D_G of the self-training loop.
"""

from __future__ import annotations

import torch

from rest_mcts.training.optim import WarmupAdamWModule


class PolicySFTModule(WarmupAdamWModule):
    """Wraps a Hugging Face causal LM; labels of prompt and padding tokens are -100."""

    def __init__(
        self,
        model: torch.nn.Module,
        lr: float = 2e-5,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.03,
        min_lr_ratio: float = 0.1,
    ):
        super().__init__()
        self.model = model.train()  # HF models load in eval mode
        self.save_hyperparameters(ignore=["model"])

    def forward(self, input_ids, attention_mask, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)

    def _loss(self, batch) -> torch.Tensor:
        return self(batch["input_ids"], batch["attention_mask"], batch["labels"]).loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss = self._loss(batch)
        # sync_dist: under DDP the mean over every rank's validation batches, not rank 0's
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0],
                 sync_dist=True)

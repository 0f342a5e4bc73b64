"""AdamW with linear warmup and cosine decay, shared by the PRM and policy modules."""

from __future__ import annotations

import math

import lightning as L
import torch


def adamw_with_warmup(
    model: torch.nn.Module,
    lr: float,
    weight_decay: float,
    warmup_ratio: float,
    total_steps: int,
    min_lr_ratio: float = 0.1,
) -> dict:
    """Lightning `configure_optimizers` dict: AdamW (no decay on biases and norms), lr
    rising linearly over ``warmup_ratio * total_steps`` steps, then cosine down to
    ``min_lr_ratio * lr``; stepped every optimiser step."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
    )
    total = max(1, int(total_steps))
    warmup = max(1, int(round(warmup_ratio * total))) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class WarmupAdamWModule(L.LightningModule):
    """Base for modules that wrap a Hugging Face model as ``self.model`` and save the
    hyperparameters ``lr``, ``weight_decay``, ``warmup_ratio`` and ``min_lr_ratio``."""

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_with_warmup(
            self.model,
            lr=hp.lr,
            weight_decay=hp.weight_decay,
            warmup_ratio=hp.warmup_ratio,
            total_steps=self.trainer.estimated_stepping_batches,
            min_lr_ratio=hp.min_lr_ratio,
        )

"""PRM regression as a LightningModule: MSE between the value head at the last real token
and the quality value target v_k (paper, Section 3.1), with AdamW and warmup.

The backbone is an `AutoModelForSequenceClassification` with one regression output, so a
trained PRM is a standard Hugging Face checkpoint. Values are read exactly as the scorer
reads them at search time (`models.value_head.values_at_positions`).
"""

from __future__ import annotations

from typing import Sequence

import torch

from rest_mcts.models.value_head import values_at_positions
from rest_mcts.training.knobs import hf_model
from rest_mcts.training.optim import WarmupAdamWModule
from rest_mcts.training.prm_data import ValueRow
from rest_mcts.training.prm_metrics import Oracle, value_metrics  # noqa: F401 (re-exported)


class PRMRegressionModule(WarmupAdamWModule):
    """Trains the value model on D_V; logs train/loss and the validation metrics of
    :func:`rest_mcts.training.prm_metrics.value_metrics` (with ``oracle``: against the exact
    quality values too)."""

    def __init__(
        self,
        model: torch.nn.Module,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.03,
        min_lr_ratio: float = 0.1,
        val_rows: Sequence[ValueRow] = (),
        oracle: Oracle | None = None,
    ):
        super().__init__()
        self.model = model.train()
        self.val_rows = list(val_rows)
        self.oracle = oracle
        self._val_preds: list[float] = []
        self.save_hyperparameters(ignore=["model", "val_rows", "oracle"])

    def forward(self, input_ids, attention_mask, positions) -> torch.Tensor:
        # hf_model: under LoRA, the HF model inside the peft wrapper (adapters active)
        return values_at_positions(hf_model(self.model), input_ids, attention_mask, positions)

    def _values(self, batch) -> torch.Tensor:
        return self(batch["input_ids"], batch["attention_mask"], batch["positions"])

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(self._values(batch), batch["targets"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["targets"]))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_preds = []

    def validation_step(self, batch, batch_idx: int) -> None:
        self._val_preds += self._values(batch).tolist()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        preds = self._all_val_preds()
        if len(preds) != len(self.val_rows):
            return
        # every rank holds all predictions, so the metrics agree; sync_dist only averages equals
        for key, value in value_metrics(preds, self.val_rows, self.oracle).items():
            self.log(key, value, prog_bar=key == "val/mse", sync_dist=True)

    def _all_val_preds(self) -> list[float]:
        """The predictions of all validation rows, in row order, on every rank.

        Under DDP Lightning's ``DistributedSampler`` (no shuffle) deals rank r the rows
        r, r+W, r+2W, ... of the W ranks, wrapped round to equal lengths; gathering the
        ranks' lists and interleaving them restores the order (the wrapped tail is cut)."""
        world = self.trainer.world_size
        if world == 1 or len(self._val_preds) == len(self.val_rows):
            return self._val_preds  # one process, or every rank scored every row
        local = torch.tensor(self._val_preds, dtype=torch.float32, device=self.device)
        gathered = self.all_gather(local)  # (world, rows per rank)
        return gathered.T.reshape(-1).tolist()[: len(self.val_rows)]

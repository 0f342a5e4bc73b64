"""Lightning's WandbLogger on the stage's run, for every training inside the stage.

A stage may train several models into one run (the loop: PRM_0, then PRM_k and policy_k of
every iteration). :class:`RunLogger` differs from Lightning's WandbLogger in two ways:

- **The run's config stays the project's.** Lightning hands every logger the module's
  ``save_hyperparameters`` (``lr``, ``weight_decay``, ...) at each ``fit``; WandbLogger would
  add them as top-level keys of the run's config. The run's config is the resolved Hydra
  config (:func:`rest_mcts.tracking.identity.loggable_config`), which already holds those
  values where the user set them (``prm.lr``, ``policy.lr``), so they are not logged again.
- **One step across the run.** Each ``fit`` counts ``trainer/global_step`` from 0. wandb
  plots a metric against one step metric (``train/*`` and ``val/*`` against
  ``trainer/global_step``, :meth:`rest_mcts.tracking.run.StageRun.open`) and expects it to
  grow: a step that goes back draws the next training's curve over the previous one's. The
  logger adds an offset, the steps of the trainings logged before it in this run, so
  ``trainer/global_step`` is the run's cumulative optimizer step and never goes back. An
  offset rather than a step metric per training (``prm_0/step``, ``policy_1/step``, ...)
  keeps Lightning's metric names, so every training's ``train/loss`` and ``val/*`` share the
  dashboard's panels (as in a stand-alone ``stage=train_prm`` run), one after another along
  the x-axis, instead of a new set of panels per model and iteration. The next free step
  is handed to ``on_fit_end`` after each ``fit``, and the loop keeps it beside its run id,
  so a resumed loop goes on from there. Lightning's ``epoch`` (which restarts too) is logged
  as ``trainer/epoch``, against the same step.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from lightning.pytorch.loggers import WandbLogger

EPOCH = "trainer/epoch"


class RunLogger(WandbLogger):
    """A WandbLogger on an open wandb run (``experiment``) whose steps start at
    ``first_step`` and never go back, and that leaves the run's config alone."""

    def __init__(self, experiment: Any, save_dir: str, first_step: int = 0,
                 on_fit_end: Callable[[int], None] | None = None) -> None:
        super().__init__(experiment=experiment, save_dir=save_dir)
        self.offset = int(first_step)  # steps logged by earlier trainings of the run
        self.next_step = int(first_step)  # the first step a new training may log at
        self._on_fit_end = on_fit_end

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing: the run's config is the project's resolved config (module docstring)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        if "epoch" in metrics:
            metrics[EPOCH] = metrics.pop("epoch")
        if step is not None:
            if self.offset + step < self.next_step - 1:  # a new fit not announced by finalize
                self.offset = self.next_step
            step = self.offset + step
            self.next_step = max(self.next_step, step + 1)
        super().log_metrics(metrics, step)

    def finalize(self, status: str) -> None:
        """End of a ``fit``: the next one starts after every step logged so far."""
        super().finalize(status)
        self.offset = self.next_step
        if self._on_fit_end is not None:
            self._on_fit_end(self.next_step)

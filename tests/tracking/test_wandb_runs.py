"""What a wandb user reads in a run, read back from real offline runs: trainings inside one run
share one rising step and leave the run's config alone, the loop logs each final metric
once, an offline run ends with its `wandb sync` line, a multirun's runs are named by their
swept keys."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers.paths import ROOT
from tests.helpers.wandb_records import offline_runs

STEP = "trainer/global_step"


def _regression_module(lr: float):
    """A real LightningModule (a linear regression) that saves a hyperparameter, as the
    project's modules do."""
    import lightning as L
    import torch

    class Regression(L.LightningModule):
        def __init__(self, lr: float) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(2, 1)

        def _mse(self, batch):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def training_step(self, batch, batch_idx):
            loss = self._mse(batch)
            self.log("train/loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val/mse", self._mse(batch))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    return Regression(lr)


def _fit(logger, lr: float = 0.1, epochs: int = 2) -> None:
    """4 optimizer steps per epoch (8 rows, batches of 2), validation each epoch."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    x = torch.randn(8, 2)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=2)
    trainer = L.Trainer(max_epochs=epochs, logger=logger, log_every_n_steps=1, accelerator="cpu",
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(_regression_module(lr), train_dataloaders=data, val_dataloaders=data)


def _steps_by_training(history: list[dict]) -> list[list[int]]:
    """The run's `trainer/global_step` values, one list per training: a training starts
    after a row of other metrics (the loop's evaluation between trainings) or where
    `trainer/epoch` starts again at 0 after a later epoch (two fits back to back)."""
    trainings: list[list[int]] = []
    last_epoch, gap = None, True
    for row in history:
        if STEP not in row:
            gap = True
            continue
        epoch = row.get("trainer/epoch")
        if gap or (epoch == 0 and last_epoch not in (None, 0)):
            trainings.append([])
        trainings[-1].append(row[STEP])
        last_epoch, gap = epoch, False
    return trainings


def test_trainings_in_one_run_share_one_rising_step_and_leave_its_config_alone(
        compose_cfg, tmp_path, wandb_env):
    """Two real Lightning fits into one stage run, then a third after a restart (the run
    resumed from its id file): `trainer/global_step` never goes back, the config is the
    project's resolved config only (no `lr` from save_hyperparameters), and Lightning's
    `epoch` is logged as `trainer/epoch`."""
    pytest.importorskip("wandb")
    from rest_mcts.tracking import StageRun, loggable_config

    cfg = compose_cfg("stage=train_prm", "logger=wandb", "logger.offline=true")
    loop = tmp_path / "loop"
    run = StageRun(cfg, tmp_path / "first").open(resume_dir=loop)
    logger = run.lightning_logger()
    _fit(logger, lr=0.1)
    _fit(logger, lr=0.05)
    run.finish()
    (first,) = offline_runs(tmp_path / "first")
    trainings = _steps_by_training(first.history)
    assert [len(set(t)) for t in trainings] == [8, 8]  # 2 epochs of 4 steps each
    steps = [s for t in trainings for s in t]
    assert steps == sorted(steps) and max(trainings[0]) < min(trainings[1])
    assert first.metric("train/loss") and len(first.metric("val/mse")) == 4
    assert not [row for row in first.history if "epoch" in row]
    assert set(first.config) == set(loggable_config(cfg)) | {"_wandb"}
    assert "lr" not in first.config and first.config["prm"]["lr"] == cfg.prm.lr
    assert json.loads((loop / "wandb_run.json").read_text())["step"] == max(steps) + 1

    again = StageRun(cfg, tmp_path / "second").open(resume_dir=loop)  # a restart
    _fit(again.lightning_logger(), epochs=1)
    again.finish()
    (second,) = offline_runs(tmp_path / "second")
    assert second.id == first.id
    resumed = [row[STEP] for row in second.history if STEP in row]
    assert resumed and min(resumed) > max(steps) and resumed == sorted(resumed)


def test_an_offline_run_ends_with_the_one_line_that_uploads_it(compose_cfg, tmp_path,
                                                               wandb_env, caplog):
    pytest.importorskip("wandb")
    from rest_mcts.tracking import StageRun

    run = StageRun(compose_cfg("stage=eval", "logger=wandb"), tmp_path / "out").open()
    run.log({"eval/acc": 0.5})
    with caplog.at_level(logging.INFO, logger="rest_mcts.tracking"):
        run.finish()
    (offline,) = offline_runs(tmp_path / "out")
    hints = [r.getMessage() for r in caplog.records if "wandb sync" in r.getMessage()]
    assert hints == [f"wandb run logged offline: upload it with `wandb sync {offline.folder}`"]
    assert list(offline.folder.glob("run-*.wandb"))


def _hydra_job(tmp_path: Path, params: dict, command: list[str], task: list[str]):
    """What HydraConfig holds in one job of a multirun whose sweep folder's multirun.yaml
    records ``params`` (hydra.sweeper.params) and the ``command`` line's overrides."""
    sweep = tmp_path / "sweep"
    sweep.mkdir(exist_ok=True)
    OmegaConf.save({"hydra": {"sweeper": {"params": params}, "overrides": {"task": command}}},
                   sweep / "multirun.yaml")
    return OmegaConf.create({"sweep": {"dir": str(sweep)}, "sweeper": {"params": params},
                             "overrides": {"task": task}})


def test_a_jobs_name_is_its_swept_keys_and_values_only(tmp_path, monkeypatch):
    """`sweep=alpha` sweeps search.alpha and seed through hydra.sweeper.params; a command-line
    value of one of them ends its sweep; settings every job shares never name a run."""
    from rest_mcts.tracking.identity import swept_name

    params = {"search.alpha": "0.0,0.25", "seed": "0,1,2"}
    task = ["search.alpha=0.25", "seed=1", "backend=mock", "stage.num_problems=2", "sweep=alpha"]
    command = ["sweep=alpha", "backend=mock", "stage.num_problems=2"]
    assert swept_name(_hydra_job(tmp_path, params, command, task)) == "search.alpha=0.25 seed=1"
    narrowed = _hydra_job(tmp_path, params, ["sweep=alpha", "seed=1", "backend=mock"], task)
    assert swept_name(narrowed) == "search.alpha=0.25"
    group = _hydra_job(tmp_path, {}, ["model=tiny,smollm2", "seed=0,1"],
                       ["model=tiny", "seed=1"])
    assert swept_name(group) == "model=tiny seed=1"
    # no multirun.yaml (a folder made by hand): this job's params and the sweeping command line
    hc = _hydra_job(tmp_path, params, command, task)
    (tmp_path / "sweep" / "multirun.yaml").unlink()
    monkeypatch.setattr(sys, "argv", ["run.py", "-m", "sweep=alpha", "seed=2"])
    assert swept_name(hc) == "search.alpha=0.25"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE")}
    env.update(REST_MCTS_ROOT=str(tmp_path), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               WANDB_DIR=str(tmp_path / "wandb_dir"), WANDB_DATA_DIR=str(tmp_path / "wandb_data"),
               WANDB_CACHE_DIR=str(tmp_path / "wandb_cache"), NETRC=str(tmp_path / "no_netrc"),
               WANDB_CONFIG_DIR=str(tmp_path / "wandb_cfg"))
    return env


@pytest.mark.slow
def test_a_sweep_configs_runs_are_named_by_the_swept_keys_grouped_by_the_multirun(tmp_path):
    """`-m sweep=alpha 'search.alpha=0.25,0.5' seed=1 backend=mock ...`: two jobs, named
    `search.alpha=0.25` and `search.alpha=0.5` (seed=1 and the other overrides are every
    job's), one group: the multirun."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, str(ROOT / "run.py"), "-m", "sweep=alpha", "search.alpha=0.25,0.5",
           "seed=1", "backend=mock", "prm=oracle", "stage.num_problems=2", "search.iterations=2",
           "threads=1", "logger=wandb", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [run for job in sorted(sweep.glob("*_*")) for run in offline_runs(job)]
    assert sorted(r.name for r in runs) == ["search.alpha=0.25", "search.alpha=0.5"]
    assert {r.group for r in runs} == {f"{sweep.parent.name}-{sweep.name}"}
    assert {r.config["seed"] for r in runs} == {1}
    assert sorted(r.config["search"]["alpha"] for r in runs) == [0.25, 0.5]


@pytest.mark.slow
def test_a_two_iteration_loop_logs_one_rising_step_its_config_and_each_final_metric_once(
        tmp_path, tiny_policy):
    """experiment=debug with 2 iterations, through run.py, wandb offline: PRM_0, PRM_1 and
    PRM_2 train into the loop's run along one rising `trainer/global_step`; the config holds
    no key Lightning added; the final metrics (the gains, the stage's time) are logged once
    and the last iteration's row is not logged again under `loop/`; the run ends with one
    `wandb sync <folder>` line."""
    loop_dir = tmp_path / "loop"
    cmd = [sys.executable, str(ROOT / "run.py"), "experiment=debug", "logger=wandb",
           "threads=1", "stage.iterations=2", "trainer.log_every_n_steps=1",
           f"model.path={tiny_policy}", f"stage.dir={loop_dir}",
           f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    (run,) = offline_runs(loop_dir)
    assert run.exit_code == 0

    trainings = _steps_by_training(run.history)
    assert len(trainings) == 3  # PRM_0, PRM_1, PRM_2 (D_G stays empty: no policy training)
    steps = [s for t in trainings for s in t]
    assert steps == sorted(steps)
    assert all(max(a) < min(b) for a, b in zip(trainings, trainings[1:]))
    assert len(run.metric("train/loss")) == 3 and len(run.metric("val/mse")) == 3

    resolved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert set(run.config) == set(resolved) | {"choices", "_wandb"}
    for key in ("lr", "weight_decay", "warmup_ratio", "min_lr_ratio", "epoch"):
        assert key not in run.config

    rows = [h for h in run.history if "eval/cot_acc" in h]
    assert [h["loop/iter"] for h in rows] == [0, 1, 2]
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "loop/cot/acc" in final and "loop/gain_cot/acc" in final
    counts: dict[str, int] = {}
    for row in run.history:
        for key in row:
            counts[key] = counts.get(key, 0) + 1
    assert counts["loop/gain_cot_acc"] == counts["time/stage_seconds"] == 1
    assert not [k for k in counts if k.startswith("loop/") and not k.startswith("loop/gain_")
                and k != "loop/iter"]  # the last row is not logged again
    assert counts["eval/cot_acc"] == 3  # once per iteration

    hints = [line for line in out.splitlines() if "wandb sync" in line]
    assert len(hints) == 1 and hints[0].rstrip().endswith(f"`wandb sync {run.folder}`")
    assert not re.search(r"Loading weights|Writing model shards", out)

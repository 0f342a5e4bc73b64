"""Lightning DDP for real on the CPU: 2 processes (gloo), both models (PRM regression, policy
SFT), compared with one process on the same data with the same global batch.

Each run starts `tests/helpers/ddp_train.py` in a subprocess (Lightning's launcher re-runs that
command line for rank 1), which trains through `rest_mcts.loop.train` exactly as the stages do.

Why the DDP model is close to, not equal to, the one-process model with the same global batch
(2 x 8 against 16) and seed: DDP averages the gradients of the ranks' mean losses, which is
the gradient of the global mean, but (1) Lightning's DistributedSampler shuffles with its own
permutation (seeded by epoch), not the data module's generator, so the batches hold other rows;
(2) with an odd row count it repeats one row to deal both ranks equally; (3) the policy's loss
is a mean over each rank's solution tokens, so two ranks with different token counts weigh
tokens differently from one batch of 16. The tests therefore assert the same quality on the
validation rows, with tolerances a few times the gaps measured (PRM: val MSE 0.125 against
0.115, values at most 0.053 apart; policy: val loss 3.9545 against 3.9545, from 4.59); the runs
are seeded, so the numbers repeat.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rest_mcts.models.factory import build_tiny_causal_lm, save_model
from rest_mcts.models.tokenizer import build_char_tokenizer
from rest_mcts.worlds import CountdownWorld

from tests.helpers.paths import ROOT

BATCH = 8  # per device: the global batch is 16 under DDP, and the one-process batch
EPOCHS = 4
VAL_SHARE = 0.25  # as in ddp_train.py


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A tiny causal LM (the policy, and the PRM's backbone), D_V and D_G files."""
    from rest_mcts.search.oracle_scorer import OracleScorer

    root = tmp_path_factory.mktemp("ddp")
    tok = build_char_tokenizer()
    save_model(build_tiny_causal_lm(tok, hidden_size=32, num_layers=1, num_heads=2, seed=3),
               tok, root / "init")
    world, rng = CountdownWorld(), random.Random(0)
    scorer = OracleScorer(world)
    d_v, d_g = [], []
    for p in world.generate(40, seed=1, split="train"):  # seed 1: an odd number of PRM rows
        q = p.question.text
        trace = world.random_trace(p.question, rng)
        d_v += [{"question": q, "steps": trace[:k],
                 "target": scorer.score([(q, tuple(trace[:k]))])[0]}
                for k in range(1, len(trace) + 1)]
        d_g.append({"question": q, "steps": world.correct_trace(p, rng)})
    for name, rows in (("d_v", d_v), ("d_g", d_g)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"root": root, "init": root / "init", "prm": root / "d_v.jsonl",
            "policy": root / "d_g.jsonl"}


def train(kind: str, inputs, out: Path, devices: int, batch: int) -> dict[int, dict]:
    """Run ddp_train.py; returns each rank's report."""
    cmd = [sys.executable, str(ROOT / "tests" / "helpers" / "ddp_train.py"), kind, str(out),
           str(inputs[kind]), str(inputs["init"]), str(devices), str(batch), str(EPOCHS)]
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r: json.loads((out / f"rank{r}.json").read_text()) for r in range(devices)}


def epoch_losses(out: Path) -> list[float]:
    """Mean train/loss of each epoch, from the CSV logger (rank 0's batches under DDP)."""
    by_epoch: dict[int, list[float]] = {}
    with open(out / "csv" / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row["train/loss"]:
                by_epoch.setdefault(int(row["epoch"]), []).append(float(row["train/loss"]))
    return [sum(v) / len(v) for _, v in sorted(by_epoch.items())]


def prm_val_predictions(model_dir: Path, data_file: Path) -> tuple[list[float], list[float]]:
    """The saved PRM's values on the validation rows (the split training used), and targets."""
    from rest_mcts.models.factory import load_tokenizer, load_value_model
    from rest_mcts.training.prm import PRMRegressionModule
    from rest_mcts.training.prm_data import ValueDataModule, read_value_rows

    tok = load_tokenizer(model_dir)
    data = ValueDataModule(tok, rows=read_value_rows(data_file), val_share=VAL_SHARE,
                           batch_size=64, max_length=256, seed=0)
    module = PRMRegressionModule(load_value_model(model_dir)).eval()
    with torch.no_grad():
        preds = [v for b in data.val_dataloader() for v in module._values(b).tolist()]
    return preds, [r.target for r in data.val_set.rows]


def policy_val_loss(model_dir: Path, data_file: Path) -> float:
    """The saved policy's mean loss over the validation examples (the split training used)."""
    from rest_mcts.models.factory import load_causal_lm, load_tokenizer
    from rest_mcts.training.policy_sft import PolicySFTModule
    from rest_mcts.training.sft_data import build_sft_data

    tok = load_tokenizer(model_dir)
    data = build_sft_data(tok, [data_file], val_share=VAL_SHARE, batch_size=1, max_length=128)
    module = PolicySFTModule(load_causal_lm(model_dir)).eval()
    with torch.no_grad():
        losses = [module._loss(b).item() for b in data.val_dataloader()]
    return sum(losses) / len(losses)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["prm", "policy"])
def test_ddp_on_two_cpu_processes_trains_like_one_process(kind, inputs, tmp_path):
    ddp = train(kind, inputs, tmp_path / "ddp", devices=2, batch=BATCH)
    one = train(kind, inputs, tmp_path / "one", devices=1, batch=2 * BATCH)

    # two ranks ran; only global rank 0 wrote the model (one folder, no temporary left over)
    assert [ddp[r]["world_size"] for r in (0, 1)] == [2, 2]
    assert ddp[0]["wrote_model"] and not ddp[1]["wrote_model"]
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "checkpoints", "csv", "model", "rank0.json", "rank1.json"]
    assert (tmp_path / "ddp" / "checkpoints" / "model" / "last.ckpt").is_file()

    # optimizer steps for the global batch: DistributedSampler deals each rank
    # ceil(n / 2) rows (wrapping round when n is odd), batched by 8 per device
    n = int(ddp[0]["metrics"]["data/train_rows"])
    assert n % 2 == 1 or kind == "policy"  # the PRM data exercises the wrap-round
    assert ddp[0]["metrics"]["train/steps"] == math.ceil(math.ceil(n / 2) / BATCH) * EPOCHS
    assert one[0]["metrics"]["train/steps"] == math.ceil(n / (2 * BATCH)) * EPOCHS
    assert ddp[1]["metrics"]["train/steps"] == ddp[0]["metrics"]["train/steps"]

    # the training loss falls (epoch means, first vs last)
    for out in ("ddp", "one"):
        losses = epoch_losses(tmp_path / out)
        assert len(losses) == EPOCHS and losses[-1] < 0.95 * losses[0], (out, losses)

    # the saved models load and do as well as each other on the validation rows
    if kind == "prm":
        preds_ddp, targets = prm_val_predictions(tmp_path / "ddp" / "model", inputs["prm"])
        preds_one, _ = prm_val_predictions(tmp_path / "one" / "model", inputs["prm"])
        mse = [sum((p - t) ** 2 for p, t in zip(ps, targets)) / len(targets)
               for ps in (preds_ddp, preds_one)]
        # the val metrics under DDP cover every validation row, gathered from both ranks
        assert ddp[0]["metrics"]["val/mse"] == pytest.approx(mse[0], abs=1e-5)
        assert ddp[1]["metrics"]["val/mse"] == ddp[0]["metrics"]["val/mse"]
        assert mse[0] < ddp[0]["metrics"]["val/mse_mean_baseline"] * 1.5
        assert abs(mse[0] - mse[1]) < 0.02, mse
        assert max(abs(a - b) for a, b in zip(preds_ddp, preds_one)) < 0.25
    else:
        loss_ddp = policy_val_loss(tmp_path / "ddp" / "model", inputs["policy"])
        loss_one = policy_val_loss(tmp_path / "one" / "model", inputs["policy"])
        start = policy_val_loss(inputs["init"], inputs["policy"])
        assert loss_ddp < 0.95 * start and loss_one < 0.95 * start
        assert abs(loss_ddp - loss_one) < 0.02 * loss_one, (loss_ddp, loss_one)


@pytest.mark.slow
def test_stage_train_prm_under_ddp_through_run_py(inputs, tmp_path):
    """`python run.py stage=train_prm trainer=ddp ...`: Lightning re-launches run.py for
    rank 1 inside the same Hydra run folder; rank 0 alone writes the PRM and metrics.json."""
    from rest_mcts.models.factory import load_value_model

    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "run.py"), "stage=train_prm", "trainer=ddp",
           "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
           f"stage.data_files=[{inputs['prm']}]", f"model.path={inputs['init']}",
           "logger=null", f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false",
           f"prm.batch_size={BATCH}", "prm.epochs=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REST_MCTS_ROOT": str(tmp_path / "root")}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    n = int(metrics["data/train_rows"])
    assert metrics["train/steps"] == math.ceil(math.ceil(n / 2) / BATCH)
    assert "val/mse" in metrics  # gathered from both ranks' validation rows
    load_value_model(run_dir / "prm")
    assert (run_dir / "checkpoints" / "prm" / "last.ckpt").is_file()
    assert not list(run_dir.glob(".*tmp*"))  # no temporary folder or file left by a rank
    rank1_log = (run_dir / "train_ddp_process_1.log").read_text()  # rank 1's Hydra job, here
    assert "Initializing distributed: GLOBAL_RANK: 1" in rank1_log
    assert "metrics written" not in rank1_log
    assert "metrics written" in (run_dir / "run.log").read_text()
    assert not (tmp_path / "root").exists()  # no stray output folder

"""Train the PRM or the policy through `rest_mcts.loop.train` on the CPU, in one process or
under Lightning DDP (the test_ddp helper; run as a script so that Lightning's subprocess
launcher can start the other ranks by re-running this command line).

    python tests/helpers/ddp_train.py {prm,policy} OUT DATA INIT DEVICES BATCH EPOCHS

with src/ on PYTHONPATH (test_ddp sets it; the ranks Lightning starts inherit it).

Every rank writes ``OUT/rank<r>.json``: its world size, whether it wrote the model, and the
metrics `train_prm_model` / `train_policy_sft` returned on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(kind: str, out: str, data: str, init: str, devices: int, batch: int, epochs: int) -> None:
    from hydra import compose, initialize_config_dir
    from lightning.pytorch.loggers import CSVLogger

    import rest_mcts.training.artifacts as artifacts
    from rest_mcts.runtime.context import Context
    from rest_mcts.loop.train import train_policy_sft, train_prm_model
    from rest_mcts.utils.seeding import seed_everything

    out_dir = Path(out)
    trainer = (["trainer=ddp", "trainer.accelerator=cpu", f"trainer.devices={devices}",
                "trainer.precision=32-true"] if devices > 1 else ["trainer=cpu"])
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[
            f"paths.root_dir={out_dir}", f"paths.output_dir={out_dir}", "~logger",
            *trainer, "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
            f"prm.batch_size={batch}", f"prm.epochs={epochs}", "prm.lr=3e-3",
            "prm.warmup_ratio=0.0", f"policy.batch_size={batch}", f"policy.epochs={epochs}",
            "policy.lr=3e-3", "policy.warmup_ratio=0.0", "policy.val_greedy_questions=0",
        ])
    seed_everything(cfg.seed)
    ctx = Context.from_config(cfg)

    saved = {}
    save = artifacts.save_trained_model

    def recording_save(trainer, *args, **kwargs):  # which rank wrote the model?
        saved["rank"], saved["world_size"] = trainer.global_rank, trainer.world_size
        saved["folder"] = save(trainer, *args, **kwargs)
        return saved["folder"]

    artifacts.save_trained_model = recording_save
    logger = CSVLogger(str(out_dir / "csv"), name="", version="")
    train = train_prm_model if kind == "prm" else train_policy_sft
    metrics = train(ctx, [data], out_dir / "model", init, logger=logger, val_share=0.25)
    report = {"rank": saved["rank"], "world_size": saved["world_size"],
              "wrote_model": saved["folder"] is not None, "metrics": metrics}
    (out_dir / f"rank{saved['rank']}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    kind, out, data, init, devices, batch, epochs = sys.argv[1:8]
    main(kind, out, data, init, int(devices), int(batch), int(epochs))

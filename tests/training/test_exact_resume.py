"""A training killed between epochs and resumed from ``last.ckpt`` ends with the very weights
of the training that was never interrupted (data order and random generators restored), for
the PRM (with LoRA dropout: the random generators matter) and for the policy SFT."""

from __future__ import annotations

import json

import lightning as L
import pytest

from rest_mcts.models.factory import build_tiny_causal_lm, save_model
from rest_mcts.models.tokenizer import build_char_tokenizer

from tests.training.test_policy_training import TINY, correct_solutions, write_jsonl


class Killed(RuntimeError):
    pass


class KillAtEpoch(L.Callback):
    """Dies as epoch ``epoch`` starts: the checkpoint of the epoch before is on disk."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise Killed(f"killed at epoch {self.epoch}")


def _train(kind, ctx, data, out, init, ckpt_path=None):
    from rest_mcts.loop.train import train_policy_sft, train_prm_model

    train = train_prm_model if kind == "prm" else train_policy_sft
    return train(ctx, [data], out, init, ckpt_path=ckpt_path)


def _data(kind, tmp_path):
    if kind == "policy":
        return write_jsonl(tmp_path / "dg.jsonl", correct_solutions(96))
    from tests.training.test_prm_training import countdown_rows

    rows = countdown_rows(60)
    return write_jsonl(tmp_path / "dv.jsonl", [
        {"question": r.question, "steps": list(r.steps), "target": r.target} for r in rows])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["prm", "policy"])
def test_a_training_killed_between_epochs_resumes_to_the_same_weights(
    kind, compose_cfg, tmp_path, monkeypatch
):
    from rest_mcts.runtime.context import Context
    from rest_mcts.training import artifacts

    tok = build_char_tokenizer()
    init = save_model(build_tiny_causal_lm(tok, **TINY), tok, tmp_path / "policy0")
    data = _data(kind, tmp_path)
    cfg = compose_cfg("~logger", "trainer.enable_progress_bar=false", f"{kind}.epochs=3",
                      f"{kind}.batch_size=16", f"{kind}.lora={{r:4,dropout:0.3}}")

    whole = tmp_path / "whole" / "model"
    _train(kind, Context.from_config(cfg), data, whole, init)

    real_fit = artifacts.fit

    def dying_fit(*args, callbacks=None, **kwargs):
        return real_fit(*args, callbacks=[*(callbacks or []), KillAtEpoch(2)], **kwargs)

    cut = tmp_path / "cut" / "model"
    monkeypatch.setattr(artifacts, "fit", dying_fit)
    with pytest.raises(Killed):
        _train(kind, Context.from_config(cfg), data, cut, init)
    last = tmp_path / "cut" / "checkpoints" / "model" / "last.ckpt"
    assert last.is_file() and not cut.exists()
    monkeypatch.setattr(artifacts, "fit", real_fit)
    _train(kind, Context.from_config(cfg), data, cut, init, ckpt_path=str(last))

    assert (cut / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    steps = [json.loads((f / "manifest.json").read_text())["metrics"]["train/steps"]
             for f in (whole, cut)]
    assert steps[0] == steps[1] > 0

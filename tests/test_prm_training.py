"""PRM data and regression module (stage=train_prm end to end is in test_stages)."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from rest_mcts.models.factory import build_tiny_value_model
from rest_mcts.models.tokenizer import build_char_tokenizer
from rest_mcts.training.prm import PRMRegressionModule, value_metrics
from rest_mcts.training.prm_data import (
    ValueDataModule,
    ValueRow,
    collate_values,
    deduplicate,
    read_value_rows,
    split_by_question,
)
from rest_mcts.worlds import CountdownWorld


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bad_rows_name_file_and_line(tmp_path):
    good = {"question": "Make 3 from 1 2", "steps": ["Step 1: 2 + 1 = 3 (left: 3)\n"], "target": 1}
    for bad, message in [
        ({**good, "target": 1.5}, "target"),
        ({**good, "steps": []}, "steps"),
        ({**good, "question": ""}, "question"),
    ]:
        path = write_rows(tmp_path / "dv.jsonl", [good, bad])
        with pytest.raises(ValueError, match=rf"dv.jsonl:2: .*{message}"):
            read_value_rows(path)
    (tmp_path / "torn.jsonl").write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(ValueError, match="torn.jsonl:2"):
        read_value_rows(tmp_path / "torn.jsonl")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_value_rows(tmp_path / "missing.jsonl")


def test_dedup_averages_and_split_keeps_questions_apart():
    rows = [ValueRow("q1", ("a\n",), 0.2), ValueRow("q1", ("a\n",), 0.4)]
    rows += [ValueRow(f"q{i}", ("b\n",), 0.5) for i in range(2, 200)]
    unique = deduplicate(rows)
    assert len(unique) == 199 and unique[0].target == pytest.approx(0.3)
    train, val = split_by_question(unique, 0.2, seed=0)
    assert {r.question for r in train}.isdisjoint({r.question for r in val})
    assert 20 < len(val) < 60


def test_collate_reads_the_last_real_token():
    batch = collate_values([([5, 6, 7], 0.5), ([5, 6], 1.0)], pad_id=0)
    assert batch["positions"].tolist() == [2, 1]
    assert batch["input_ids"][1].tolist() == [5, 6, 0]


def countdown_rows(n=300):
    """Exact quality values of random Countdown paths (a learnable regression target)."""
    import random

    from rest_mcts.search.oracle_scorer import OracleScorer

    world = CountdownWorld()
    scorer = OracleScorer(world)
    rng = random.Random(0)
    rows = []
    for problem in world.generate(n, seed=0, split="train"):
        trace = world.random_trace(problem.question, rng)
        for k in range(1, len(trace) + 1):
            value = scorer.score([(problem.question.text, tuple(trace[:k]))])[0]
            rows.append(ValueRow(problem.question.text, tuple(trace[:k]), value))
    return rows


@pytest.mark.slow
def test_a_few_optimisation_steps_lower_the_loss():
    torch.manual_seed(0)
    tok = build_char_tokenizer()
    model = build_tiny_value_model(tok, hidden_size=32, num_layers=1, num_heads=2)
    data = ValueDataModule(tok, rows=countdown_rows(150), batch_size=32, max_length=128)
    module = PRMRegressionModule(model, lr=3e-3, warmup_ratio=0.0, val_rows=data.val_set.rows)
    batch = next(iter(data.train_dataloader()))
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(module._values(batch), batch["targets"]).item()
    trainer = L.Trainer(
        max_steps=30, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )
    trainer.fit(module, datamodule=data)
    with torch.no_grad():
        after = torch.nn.functional.mse_loss(module._values(batch), batch["targets"]).item()
    assert after < before
    assert "val/mse" in trainer.callback_metrics and "val/acc@0.1" in trainer.callback_metrics


def test_value_metrics_with_oracle():
    rows = [ValueRow("q", ("a\n",), 0.5), ValueRow("q", ("b\n",), 0.0)]
    oracle = lambda q, s: (s == ("a\n",), 0.5 if s == ("a\n",) else 0.0)  # noqa: E731
    m = value_metrics([0.55, 0.3], rows, oracle)
    assert m["val/mse"] == pytest.approx((0.05**2 + 0.3**2) / 2)
    assert m["val/acc@0.1"] == 0.5
    assert m["val/oracle_acc"] == 1.0
    assert m["val/oracle_mse"] == pytest.approx(m["val/mse"])

"""PRM data and regression module (stage=train_prm end to end is in test_stages)."""

from __future__ import annotations

import json
import math

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


def test_value_metrics_against_d_v_targets():
    rows = [ValueRow("q", ("a\n",), 0.5), ValueRow("q", ("b\n",), 0.0)]
    m = value_metrics([0.55, 0.3], rows)
    assert m["val/mse"] == pytest.approx((0.05**2 + 0.3**2) / 2)
    assert m["val/acc@0.1"] == 0.5
    assert not any(key.startswith(("val/oracle", "val/sibling")) for key in m)


def oracle_rows():
    """Every legal partial solution of two Countdown questions (a tree of all steps), with
    exact quality values as target: exact values differ between many siblings."""
    from rest_mcts.loop.train import value_oracle
    from rest_mcts.worlds.countdown import apply_move, format_step

    world = CountdownWorld()
    oracle = value_oracle(world)
    rows = []
    for problem in world.generate(2, seed=0, split="val"):
        q = problem.question
        frontier = [()]
        while frontier:
            steps = frontier.pop()
            state = world.state(q, list(steps))
            for move in world.legal_moves(state):
                path = (*steps, format_step(len(steps) + 1, *move, apply_move(state, move)))
                rows.append(ValueRow(q.text, path, oracle(q.text, path)))
                if not world.check_path(q, list(path)).finished:
                    frontier.append(path)
    return rows, oracle


def test_the_exact_value_scores_perfectly_against_the_oracle():
    """A PRM that returns the exact quality value: error 0, accuracy 1, rank correlation 1,
    every sibling pair ordered right. Reachable unfinished steps have v* = 0.5 here, which
    the old "v > 0.5 matches reachability" accuracy counted wrong."""
    rows, oracle = oracle_rows()
    exact = [r.target for r in rows]
    assert 0.5 in exact and 1.0 in exact and 0.0 in exact
    m = value_metrics(exact, rows, oracle)
    assert m["val/mse"] == 0 and m["val/acc@0.1"] == 1
    assert m["val/oracle_mse"] == 0 and m["val/oracle_mae"] == 0
    assert m["val/oracle_acc@0.1"] == 1
    assert m["val/oracle_spearman"] == pytest.approx(1.0)
    assert m["val/sibling_acc"] == 1 and m["val/sibling_pairs"] > 10
    assert "val/oracle_acc" not in m


def test_constant_and_reversed_prms_rank_siblings_at_half_and_zero():
    rows, oracle = oracle_rows()
    constant = value_metrics([0.3] * len(rows), rows, oracle)
    assert constant["val/sibling_acc"] == 0.5
    assert math.isnan(constant["val/oracle_spearman"])  # a constant has no ranking
    reversed_ = value_metrics([1 - r.target for r in rows], rows, oracle)
    assert reversed_["val/sibling_acc"] == 0
    assert reversed_["val/oracle_spearman"] == pytest.approx(-1.0)
    assert constant["val/sibling_pairs"] == reversed_["val/sibling_pairs"]


def test_sibling_pairs_need_the_same_parent_and_different_exact_values():
    from rest_mcts.training.prm_metrics import ranks, sibling_accuracy, spearman

    rows = [ValueRow("q", ("a",), 0), ValueRow("q", ("b",), 0), ValueRow("q", ("a", "c"), 0),
            ValueRow("q", ("b", "d"), 0), ValueRow("r", ("a",), 0)]
    exact = [0.5, 0.0, 1.0, 0.0, 0.0]
    # pairs: ("a",) vs ("b",) only; ("a","c") and ("b","d") have different parents,
    # ("r", "a") another question
    assert sibling_accuracy(rows, [0.9, 0.1, 0.0, 1.0, 1.0], exact) == (1.0, 1)
    assert sibling_accuracy(rows, [0.4, 0.4, 0.0, 1.0, 1.0], exact) == (0.5, 1)
    same = [ValueRow("q", ("a",), 0), ValueRow("q", ("b",), 0)]
    assert math.isnan(sibling_accuracy(same, [0.1, 0.9], [0.5, 0.5])[0])  # equal exact values
    assert ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3, 4], [10, 20, 20, 40]) == pytest.approx(0.9486832980505138)

"""prm=orm end to end through run.py: stage=train_prm stage.target=orm trains the outcome reward
model on a few verified trees, then stage=eval search=best_of_n scores each sampled solution
with it (prm.path: that model)."""

from __future__ import annotations

import json

import pytest

from rest_mcts.utils.io import read_jsonl

from tests.helpers.orm_trees import write_trees
from tests.stages.test_stages import run_py

pytestmark = pytest.mark.slow


def test_train_the_orm_on_trees_then_best_of_n_scores_with_it(tmp_path, tiny_policy):
    trees = write_trees(tmp_path / "trees", 12)
    train = run_py(tmp_path, "stage=train_prm", "stage.target=orm", "data=countdown3",
                   f"stage.trees_dir={tmp_path / 'trees'}", f"model.path={tiny_policy}",
                   "prm.epochs=2", run_dir=tmp_path / "orm_run")
    rows = read_jsonl(train / "orm_data.jsonl")
    assert len(rows) == sum(len(t.finished()) for t in trees)
    assert {r["target"] for r in rows} == {0.0, 1.0}
    assert (train / "orm" / "config.json").is_file() and not (train / "prm").exists()
    metrics = json.loads((train / "metrics.json").read_text())
    assert metrics["train/steps"] > 0 and "val/mse" in metrics

    run = run_py(tmp_path, "stage=eval", "data=countdown3", "search=best_of_n", "search.n=3",
                 "prm=orm", f"prm.path={train / 'orm'}", f"model.path={tiny_policy}",
                 "stage.num_problems=2", run_dir=tmp_path / "eval")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["eval/num_questions"] == 2 and metrics["eval/prm_calls_per_question"] > 0
    assert metrics.get("prm/untrained_head", 0.0) == 0.0

    # the values best-of-N chose by are the ORM's scores of the sampled solutions
    from rest_mcts.backends.hf_scorer import HFValueScorer

    scorer = HFValueScorer(str(train / "orm"))
    for result in read_jsonl(run / "results.jsonl"):
        tree = json.loads((run / "trees" / f"{result['id']}.json").read_text())
        samples = tree["samples"]
        assert len(samples) == 3
        expected = scorer.score([(tree["question"], tuple(s["steps"])) for s in samples])
        assert [s["value"] for s in samples] == pytest.approx(expected, abs=1e-5)

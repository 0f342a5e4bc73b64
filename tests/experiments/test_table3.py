"""experiments/_table3.py: the verifier table (SC, ORM and PRM best-of-N and weighted votes,
MCTS*) at equal policy tokens; its loop-folder reading and table on made-up cells, and the
whole table on tiny models (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import _table3 as t3  # experiments/ is on pytest's pythonpath (pyproject.toml)

from tests.helpers.orm_trees import write_trees


def _manifest(folder: Path, step: str, outputs: dict, inputs: dict | None = None) -> None:
    path = folder / step / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"step": step, "outputs": outputs, "inputs": inputs or {}}))


def test_loop_inputs_take_policy_k_prm_k_and_the_trees_behind_prm_k_data(tmp_path):
    loop = tmp_path / "loop"
    for k in (0, 1, 2):
        _manifest(loop, f"iter_{k}/policy", {"model": f"/models/policy_{k}"})
    (loop / "iter_0" / "d_v0" / "bfs" / "trees").mkdir(parents=True)
    (loop / "iter_1" / "search" / "trees").mkdir(parents=True)
    data = [str(loop / "iter_0" / "d_v0" / "d_v.jsonl"),
            str(loop / "iter_1" / "extract" / "d_v.jsonl")]
    _manifest(loop, "iter_1/prm", {"model": str(loop / "iter_1" / "prm" / "model")},
              {"data": data})
    inputs = t3.loop_inputs(3, loop)  # iteration 2 has no PRM: the last finished is 1
    assert inputs.iteration == "1" and inputs.seed == 3
    assert inputs.policy == "/models/policy_1" and inputs.orm_init == "/models/policy_0"
    assert inputs.prm == str(loop / "iter_1" / "prm" / "model")
    assert inputs.trees == (str(loop / "iter_0" / "d_v0" / "bfs" / "trees"),
                            str(loop / "iter_1" / "search" / "trees"))
    with pytest.raises(SystemExit, match="no finished step iter_2/prm"):
        t3.loop_inputs(3, loop, iteration=2)
    with pytest.raises(SystemExit, match="not a loop folder"):
        t3.loop_inputs(3, tmp_path / "empty")


def test_table_rows_in_the_paper_order_with_range_over_seeds_and_tokens():
    cells = [t3.Cell(s, m, acc, tok, 50, bracketed=(m != "sc" or s == 0))
             for s, shift in ((0, 0.0), (1, 0.1))
             for m, acc, tok in (("mcts_star", 0.4 + shift, 300.0), ("sc", 0.3 + shift, 290.0),
                                 ("orm_best_of_n", 0.2 + shift, 300.0))]
    table = t3.table3_markdown(cells)
    lines = [line for line in table.splitlines() if line.startswith("| ") and "method" not in line]
    assert [line.split(" | ")[0] for line in lines] == [
        "| SC (self-consistency)", "| ORM (best-of-N)", "| MCTS*"]
    assert "| MCTS* | 0.450 (0.400..0.500) · 300 tok | 0.400 0.500 | 2 |" in table
    assert "0.350 (0.300..0.400) · 290 tok * |" in table  # seed 1 read outside its curve
    with pytest.raises(ValueError, match="unknown method"):
        t3.Cell(0, "bfs", 0.1, 1.0, 1)


@pytest.mark.slow
def test_run_table3_on_tiny_models_end_to_end(tmp_path, tiny_policy, compose_cfg):
    """Two seeds, two questions: the ORM trains on the trees, every row is read at MCTS*'s
    tokens, and the ORM rows score the sampling pass's samples with the ORM."""
    from rest_mcts.loop.data import d_v_rows, load_trees
    from rest_mcts.loop.train import train_prm_model
    from rest_mcts.runtime.context import Context
    from rest_mcts.training.prm_data import ValueRow
    from rest_mcts.utils.io import read_jsonl

    trees = tmp_path / "trees"
    write_trees(trees, 10)
    ctx = Context.from_config(compose_cfg("data=countdown3"))
    prm = tmp_path / "prm"
    rows = d_v_rows(load_trees(trees))
    train_prm_model(ctx, [ValueRow(r["question"], tuple(r["steps"]), r["target"]) for r in rows],
                    prm, tiny_policy, settings=ctx.prm.replace(epochs=1))
    inputs = [t3.SeedInputs(seed, str(tiny_policy), str(prm), (str(trees),), str(tiny_policy))
              for seed in (0, 1)]
    out = tmp_path / "table3"
    table, cells = t3.run_table3(inputs, out=out, problems=2, sc_max_n=4, orm_epochs=1,
                                 overrides=["data=countdown3", "search.iterations=2",
                                            "threads=1"])
    assert {c.method for c in cells} == set(t3.METHODS) and {c.seed for c in cells} == {0, 1}
    for seed in (0, 1):
        mine = {c.method: c for c in cells if c.seed == seed}
        target = mine["mcts_star"].tokens
        for method in t3.SAMPLED:  # read at MCTS*'s tokens (or marked as outside the curve)
            assert mine[method].tokens == pytest.approx(target) or not mine[method].bracketed
    for label in t3.METHODS.values():
        assert f"| {label} |" in table
    [s0] = out.glob("s0-*")
    orm = json.loads((s0 / "orm" / "manifest.json").read_text())
    assert orm["rows"] == sum(len(t.finished()) for t in load_trees(trees))
    assert (s0 / "orm" / "model" / "config.json").is_file()

    from rest_mcts.backends.hf_scorer import HFValueScorer

    scorer = HFValueScorer(orm["model"])
    for row in read_jsonl(s0 / "orm_scored_results.jsonl"):
        expected = scorer.score([(row["question"], tuple(s["steps"])) for s in row["samples"]])
        assert [s["value"] for s in row["samples"]] == pytest.approx(expected, abs=1e-5)

    again, cached = t3.run_table3(inputs, out=out, problems=2, sc_max_n=4, orm_epochs=1,
                                  overrides=["data=countdown3", "search.iterations=2",
                                             "threads=1"])
    assert again == table and cached == cells  # every seed's cells from the cache

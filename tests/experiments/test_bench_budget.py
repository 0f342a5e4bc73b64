"""experiments/bench_budget.py: its pure parts (aggregation, interpolation, equal-token
comparison, tables, plot, cell cache) on made-up cells; the search run itself is not tested
here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import bench_budget as bb  # experiments/ is on pytest's pythonpath (pyproject.toml)


def cells_for(seed: int, shift: float = 0.0) -> list[bb.Cell]:
    """Best-of-N rising 0.1 per doubling of tokens from 60 tokens, SC flat, MCTS* at 240."""
    out = [bb.Cell(seed, "cot", "greedy", 0.15 + shift, 60.0, 200)]
    for i, n in enumerate((1, 2, 4, 8)):
        out.append(bb.Cell(seed, "best_of_n", str(n), 0.1 + 0.1 * i + shift, 60.0 * n, 200))
        out.append(bb.Cell(seed, "self_consistency", str(n), 0.12 + shift, 60.0 * n, 200))
    out.append(bb.Cell(seed, "mcts_star", "5", 0.25 + shift, 240.0, 200))
    out.append(bb.Cell(seed, "mcts_star", "50", 0.30 + shift, 1000.0, 200))  # beyond N=8
    return out


def test_interp_log_is_linear_in_log_tokens_and_never_extrapolates():
    xs, ys = [100.0, 400.0, 200.0], [0.1, 0.3, 0.2]
    assert bb.interp_log(xs, ys, 200.0) == pytest.approx(0.2)
    assert bb.interp_log(xs, ys, 100.0 * math.sqrt(2)) == pytest.approx(0.15)
    assert bb.interp_log(xs, ys, 400.0) == pytest.approx(0.3)
    assert bb.interp_log(xs, ys, 99.0) is None and bb.interp_log(xs, ys, 401.0) is None
    assert bb.interp_log([], [], 5.0) is None
    assert bb.interp_log([50.0, 50.0], [0.2, 0.4], 50.0) == pytest.approx(0.3)  # equal x: mean


def test_aggregate_mean_and_sample_std_over_seeds_ordered_by_method_then_tokens():
    cells = cells_for(0) + cells_for(1, 0.02) + cells_for(2, 0.04)
    points = bb.aggregate(cells)
    assert [p.method for p in points][:1] == ["cot"]
    bon = [p for p in points if p.method == "best_of_n"]
    assert [p.budget for p in bon] == ["1", "2", "4", "8"]  # by tokens, not as text
    assert bon[0].acc_mean == pytest.approx(0.12) and bon[0].acc_std == pytest.approx(0.02)
    assert bon[0].tokens_std == 0 and bon[0].seeds == 3


def test_compare_at_equal_tokens_interpolates_each_seed_and_picks_the_best_baseline():
    cells = cells_for(0) + cells_for(1, 0.02) + cells_for(2, 0.04)
    comps = bb.compare_at_equal_tokens(cells)
    assert [c.budget for c in comps] == ["5", "50"]
    at240 = comps[0]
    # best-of-N at 240 tokens = its N=4 point, 0.3 (+ shift); MCTS* 0.25 (+ the same shift)
    assert at240.best == "best_of_n"
    assert at240.baseline_acc["best_of_n"][0] == pytest.approx(0.32)
    assert at240.diff[0] == pytest.approx(-0.05) and at240.diff[1] == pytest.approx(0.0, abs=1e-9)
    assert at240.baseline_acc["bfs"] is None  # not run
    assert comps[1].best is None and comps[1].diff is None  # 1000 tokens: beyond every curve
    text = bb.verdict(comps)
    assert "below the best baseline at 1 of 1 budgets (by more than one std over seeds at 1)" \
        in text and "PRM best-of-N" in text
    table = bb.comparison_table(comps)
    assert "outside its range" in table and "T=5" in table and "-0.050 ± 0.000" in table


def test_verdict_when_mcts_wins_or_nothing_is_comparable():
    cells = [bb.Cell(0, "best_of_n", "1", 0.1, 60.0, 10),
             bb.Cell(0, "best_of_n", "4", 0.2, 240.0, 10),
             bb.Cell(0, "mcts_star", "5", 0.5, 120.0, 10)]
    assert "at or above the best baseline at all 1 budgets" in bb.verdict(
        bb.compare_at_equal_tokens(cells))
    far = [bb.Cell(0, "mcts_star", "5", 0.5, 10.0, 10), *cells[:2]]
    assert "no equal-token comparison" in bb.verdict(bb.compare_at_equal_tokens(far))


def test_results_table_rows_and_labels():
    table = bb.results_table(bb.aggregate(cells_for(0) + [bb.Cell(0, "bfs", "4x3", 0.2, 300, 200)]))
    assert "| CoT (greedy) | greedy | 60 ± 0 | 0.150 ± 0.000 | 1 |" in table
    assert "| BFS (PRM) | beam x b=4x3 |" in table and "| PRM best-of-N | N=8 |" in table


def test_cell_validation():
    with pytest.raises(ValueError):
        bb.Cell(0, "nope", "1", 0.1, 1.0, 1)
    with pytest.raises(ValueError):
        bb.Cell(0, "cot", 1, 0.1, 1.0, 1)  # budgets are text
    with pytest.raises(ValueError):
        bb.Cell(0, "cot", "greedy", 1.5, 1.0, 1)


def test_plot_and_cache_round_trip(tmp_path):
    cells = cells_for(0) + cells_for(1, 0.02)
    for i, c in enumerate(cells):
        path = tmp_path / "cells" / f"s{c.seed}" / f"{c.method}-{c.budget}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"key": f"k{i}", "cell": c.__dict__,
                                    "uptime": "up 1:00,  load average: 1.50, 1.0, 1.0"}))
    back, loads = bb.read_cells(tmp_path)
    assert sorted(back, key=repr) == sorted(cells, key=repr)
    assert bb.load_range(loads) == "1.50..1.50"
    only, _ = bb.read_cells(tmp_path, {"k0"})
    assert only == [cells[0]]
    png = tmp_path / "out" / "plot.png"
    bb.plot(bb.aggregate(back), png, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cell_plan_budgets_and_settings():
    from rest_mcts.search.configs import search_config

    mcts = search_config("mcts_star")
    plan = bb.cell_plan(mcts, [1, 4], ["2", "8x6"], [5], [50], [10])
    got = {(m, b): s for m, b, s in plan}
    # the sampled rules at N = 1 and 4: one sampling pass of 4 solutions per question
    assert list(got) == [("cot", "greedy"), ("sampled", "4"), ("bfs", "2x3"), ("bfs", "8x6"),
                         ("mcts_star", "5"), ("mcts_star_full", "50"), ("mcts_star_widen", "10")]
    assert got[("sampled", "4")] == search_config("sampled", n=4, temperature=mcts.temperature)
    assert got[("bfs", "8x6")].beam_width == 8 and got[("bfs", "8x6")].branch == 6
    assert got[("mcts_star", "5")].iterations == 5 and got[("mcts_star", "5")].early_stop
    assert not got[("mcts_star_full", "50")].early_stop
    assert got[("mcts_star_widen", "10")].widen and got[("mcts_star_widen", "10")].early_stop
    models = bb.SeedModels(0, Path("f"), "p", "q")
    assert bb.cell_key(got[("mcts_star", "5")], models, "test", 200) != bb.cell_key(
        got[("mcts_star_full", "50")], models, "test", 200)


def test_missing_loop_folder_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as err:
        bb.loop_models(1, tmp_path / "nothing")
    msg = str(err.value)
    assert "\n" not in msg and "--run 1=" in msg and "--make" in msg


def sample(answer: str | None, correct: bool, value: float, tokens: int) -> dict:
    """A judged sample as a results row stores it: two steps, the second valued ``value``."""
    return {"steps": ["a\n", f"{answer}\n"], "finished": answer is not None, "answer": answer,
            "tokens": tokens, "value": value, "step_values": [0.5, value], "correct": correct}


def test_pass_cells_read_every_rule_at_each_n_from_one_pass():
    rows = [{"id": "q0", "samples": [sample("7", False, 0.9, 50), sample("3", True, 0.4, 70),
                                     sample("3", True, 0.6, 60)]},
            {"id": "q1", "samples": [sample("5", True, 0.2, 40), sample(None, False, 0.0, 80),
                                     sample("6", False, 0.8, 60)]}]
    cells = bb.pass_cells(2, rows, [1, 2, 3, 8], wall_seconds=30.0)
    got = {(c.method, c.budget): c for c in cells}
    assert {b for _, b in got} == {"1", "2", "3"}  # N = 8 > the 3 samples drawn
    assert set(m for m, _ in got) == set(bb.SAMPLED_RULES)
    assert got[("self_consistency", "1")].tokens == 45.0  # (50 + 40) / 2
    assert got[("self_consistency", "3")].tokens == (180 + 180) / 2
    assert got[("pass_at_n", "1")].acc == 0.5 and got[("pass_at_n", "2")].acc == 1.0
    assert got[("self_consistency", "3")].acc == 1.0  # 3 twice on q0; q1 tie -> 5 (first)
    assert got[("best_of_n", "3")].acc == 0.0  # 0.9 (7) and 0.8 (6)
    # distinct paths (q0: 2, q1: 3) and distinct step prefixes (q0: 3, q1: 4) per question
    assert got[("best_of_n", "3")].prm_calls == 2.5
    assert got[("best_of_n_prod", "3")].prm_calls == 3.5 and got[("pass_at_n", "3")].prm_calls == 0
    assert got[("weighted_vote", "3")].acc == 0.5  # q0: 3 (0.4 + 0.6) beats 7 (0.9); q1: 6
    assert all(c.seed == 2 and c.questions == 2 for c in cells)
    assert sum(c.wall_seconds for c in cells) == pytest.approx(30.0)


def test_equal_tokens_read_each_curve_as_the_loop_does():
    """MCTS* at 150 tokens against a best-of-N curve at 60, 120, 240: the loop's reading
    (selection.at_tokens, linear in log tokens between 120 and 240), and the ceiling too."""
    from rest_mcts.search.selection import at_tokens

    cells = [bb.Cell(0, "mcts_star", "5", 0.3, 150.0, 10)]
    for n, acc, top in ((1, 0.1, 0.2), (2, 0.2, 0.4), (4, 0.35, 0.6)):
        cells += [bb.Cell(0, "best_of_n", str(n), acc, 60.0 * n, 10),
                  bb.Cell(0, "pass_at_n", str(n), top, 60.0 * n, 10)]
    (comp,) = bb.compare_at_equal_tokens(cells)
    expected = at_tokens([60.0, 120.0, 240.0], [0.1, 0.2, 0.35], 150.0)
    assert expected.inside and expected.value == pytest.approx(0.2 + 0.15 * math.log2(1.25))
    assert comp.baseline_acc["best_of_n"][0] == pytest.approx(expected.value)
    assert comp.ceiling[0] == pytest.approx(0.4 + 0.2 * math.log2(1.25))
    assert comp.best == "best_of_n" and "pass_at_n" not in comp.baseline_acc
    assert "pass@N (ceiling) at these tokens" in bb.comparison_table([comp])


def test_read_cells_prefers_the_sampling_pass_over_an_older_separate_run(tmp_path):
    old = bb.Cell(0, "best_of_n", "4", 0.5, 240.0, 10)
    shared = [bb.Cell(0, "best_of_n", "4", 0.4, 230.0, 10),
              bb.Cell(0, "self_consistency", "4", 0.3, 230.0, 10)]
    (tmp_path / "cells" / "s0").mkdir(parents=True)
    (tmp_path / "cells" / "s0" / "best_of_n-4-a.json").write_text(
        json.dumps({"key": "a", "cell": old.__dict__}))
    (tmp_path / "cells" / "s0" / "sampled-4-b.json").write_text(
        json.dumps({"key": "b", "cells": [c.__dict__ for c in shared]}))
    cells, _ = bb.read_cells(tmp_path)
    assert sorted(cells, key=repr) == sorted(shared, key=repr)
    assert bb.read_cells(tmp_path, {"a"})[0] == [old]

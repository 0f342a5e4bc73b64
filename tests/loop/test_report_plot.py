"""The loop's accuracy.png (rest_mcts.loop.report.plot): human labels from the one table, the
held-out questions in the title, a Wilson interval on each method's accuracy, and series
shifted apart so that equal accuracies do not hide one another."""

from __future__ import annotations

import pytest

from rest_mcts.figures.intervals import wilson
from rest_mcts.loop.report import plot, write_report

from tests.helpers.figures import open_figures  # noqa: F401 - a fixture


@pytest.fixture
def figure(open_figures):
    """The last figure made."""
    return lambda: open_figures()[-1]


def rows(questions: bool = True) -> list[dict]:
    """Two iterations; CoT and MCTS* equal at iteration 0 (they must not hide each other)."""
    base = [{"iteration": 0, "cot/acc": 0.1, "mcts/acc": 0.1, "pass@n/acc": 0.3,
             "prm/val_sibling_acc": 0.55},
            {"iteration": 1, "cot/acc": 0.15, "mcts/acc": 0.225, "pass@n/acc": 0.35,
             "prm/val_sibling_acc": 0.6}]
    return [{**r, "eval/num_questions": 200.0} if questions else r for r in base]


def test_accuracy_png_has_labels_question_counts_and_wilson_bars(tmp_path, figure):
    plot(rows(), tmp_path / "accuracy.png", "loop, seed 0")
    ax = figure().axes[0]
    assert ax.get_ylabel() == "held-out accuracy"
    assert ax.get_xlabel() == "self-training iteration k"
    assert "200 held-out questions per point; bars: 95% Wilson interval" in ax.get_title()
    series = {c.get_label(): c for c in ax.containers}
    assert set(series) == {"CoT", "MCTS*", "pass@N", "PRM sibling ranking acc (validation set)"}
    mcts = series["MCTS*"]
    (bars,) = mcts.lines[2]
    spans = [tuple(seg[:, 1]) for seg in bars.get_segments()]
    expected = [wilson(20, 200), wilson(45, 200)]
    assert spans == [pytest.approx((ci.low, ci.high)) for ci in expected]
    # CoT and MCTS* share iteration 0's value: their x positions differ, around x = 0
    cot_x = series["CoT"].lines[0].get_xdata()[0]
    mcts_x = mcts.lines[0].get_xdata()[0]
    assert cot_x != mcts_x and abs(cot_x) < 0.2 and abs(mcts_x) < 0.2
    prm = series["PRM sibling ranking acc (validation set)"]
    assert all(seg[0, 1] == seg[1, 1] for seg in prm.lines[2][0].get_segments())  # no interval
    assert (tmp_path / "accuracy.png").stat().st_size > 5000


def test_rows_without_question_counts_take_the_configured_number(tmp_path, figure):
    write_report(rows(questions=False), tmp_path, "loop, seed 0", questions=50)
    assert "50 held-out questions per point" in figure().axes[0].get_title()
    plot(rows(questions=False), tmp_path / "none.png", "loop, seed 0")
    assert "held-out questions: not recorded" in figure().axes[0].get_title()

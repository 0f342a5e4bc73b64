"""The figures' shared parts: the label table, the Wilson interval (against a hand
computation), series styles and the sideways dodge."""

from __future__ import annotations

import math

import pytest

from rest_mcts.figures.intervals import wilson, wilson_of_rate
from rest_mcts.figures.labels import label, setting
from rest_mcts.figures.style import dodge, series_style


def test_labels_are_human_and_unknown_keys_fall_back_to_the_key():
    assert label("eval/acc") == "held-out accuracy"
    assert label("eval/policy_tokens_per_question") == "policy tokens per question"
    assert label("eval/tokens_per_question") == "policy tokens per question"  # its other name
    assert label("search.alpha") == "rollout weight α (search.alpha)"
    assert label("T") == "MCTS* iterations T"
    assert label("eval/acc@T=20") == "held-out accuracy at T = 20"
    assert label("some/new_metric") == "some/new_metric"
    assert label("some/new_metric@T=5") == "some/new_metric@T=5"
    assert setting("search.alpha", "0.5") == "α = 0.5" and setting("x.y", 3) == "x.y = 3"


def test_wilson_interval_matches_a_hand_computation():
    """45 of 200, z = 1.959964: p = 0.225, z^2/n = 0.0192073, centre = (0.225 + 0.0096036) /
    1.0192073 = 0.2301825, half = 1.959964 / 1.0192073 * sqrt(0.225 * 0.775 / 200 +
    3.841459 / 160000) = 0.0575588: [0.172624, 0.287741]."""
    ci = wilson(45, 200)
    assert (ci.correct, ci.trials, ci.rate) == (45, 200, 0.225)
    assert ci.low == pytest.approx(0.172624, abs=1e-6)
    assert ci.high == pytest.approx(0.287741, abs=1e-6)
    # none right of 10: [0, z^2 / (n + z^2)] = [0, 3.841459 / 13.841459]
    none = wilson(0, 10)
    assert none.low == 0.0 and none.high == pytest.approx(0.277533, abs=1e-6)
    assert wilson(10, 10).high == pytest.approx(1.0) and wilson(10, 10).low == pytest.approx(
        1 - none.high)
    assert wilson_of_rate(0.225, 200) == ci  # a rate over 200 questions: 45 right


@pytest.mark.parametrize("correct,trials", [(1, 0), (-1, 5), (6, 5)])
def test_wilson_refuses_impossible_counts(correct, trials):
    with pytest.raises(ValueError, match="wilson: "):
        wilson(correct, trials)


def test_series_differ_and_dodge_centres_them_on_the_true_x():
    styles = [series_style(i) for i in range(6)]
    assert len({(s["color"], s["marker"]) for s in styles}) == 6
    assert all(styles[i]["linestyle"] != styles[i + 1]["linestyle"] for i in range(5))
    xs = [1.0, 2.0, 3.0]
    moved = [dodge(xs, i, 3, xs) for i in range(3)]
    assert moved[1] == xs and moved[0][0] < 1.0 < moved[2][0]
    assert moved[2][0] - 1.0 == pytest.approx(1.0 - moved[0][0])
    logged = dodge([5.0, 50.0], 1, 2, [5.0, 50.0], log=True)
    assert logged[1] / 50.0 == pytest.approx(logged[0] / 5.0) and logged[0] > 5.0
    assert not any(math.isnan(x) for x in dodge([2.0], 0, 2, [2.0]))

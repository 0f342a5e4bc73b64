"""The one sampling pass (`search=sampled`) and the sample-selection rules read from it:
self-consistency, PRM best-of-N by the last value and by the product of step values, the
PRM-weighted vote and pass@N on the first N samples; the N curve and reading it at given
tokens (interpolation in log tokens)."""

from __future__ import annotations

import math

import pytest

from rest_mcts.backends.base import Completion
from rest_mcts.runtime.search_run import record_result, summarize
from rest_mcts.search.baselines import best_of_n, sampled, self_consistency, weighted_vote
from rest_mcts.search.configs import (
    BestOfNConfig,
    SampledPassConfig,
    SelfConsistencyConfig,
    WeightedVoteConfig,
    search_config,
)
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.selection import (
    RULES,
    AtTokens,
    SampledPath,
    at_tokens,
    best_of_n_pick,
    best_of_n_prod_pick,
    judge_first,
    judge_solution,
    product_value,
    read_sample_curve,
    row_samples,
    sample_curve,
    sample_grid,
    sample_metrics,
    select_first,
)
from rest_mcts.utils.io import read_jsonl
from rest_mcts.worlds.base import Problem, Question
from rest_mcts.worlds.countdown import CountdownWorld
from tests.search.test_engine import FakePolicy, FakeScorer

WORLD = CountdownWorld()
Q = Question(id="q", text="Make 10 from 2 3 4")
RIGHT = "Step 1: 2 * 3 = 6 (left: 6 4)\nStep 2: 6 + 4 = 10 (left: 10)\n"
RIGHT_2 = "Step 1: 3 * 4 = 12 (left: 12 2)\nStep 2: 12 - 2 = 10 (left: 10)\n"
WRONG_20 = "Step 1: 2 + 3 = 5 (left: 5 4)\nStep 2: 5 * 4 = 20 (left: 20)\n"
WRONG_3 = "Step 1: 4 - 3 = 1 (left: 1 2)\nStep 2: 2 + 1 = 3 (left: 3)\n"
HALF = "Step 1: 2 * 3 = 6 (left: 6 4)\nStep 2: 6 * 9 = 54 (left: 54)\n"
KW = {"max_new_tokens": 64}


def steps(text: str) -> tuple[str, ...]:
    return tuple(text.splitlines(keepends=True))


def scripted(texts: list[str]) -> FakePolicy:
    """Completion i of every prompt is ``texts[i]`` (it costs len(text) + 1 tokens)."""
    return FakePolicy(lambda prompt, params, i: texts[i % len(texts)])


def prefix_values(values: dict[tuple[str, ...], float], default: float = 0.5) -> FakeScorer:
    return FakeScorer(lambda q, s: values.get(tuple(s), default))


def path(answer: str | None, step_values: tuple[float, ...], tokens: int = 10) -> SampledPath:
    """A finished path (answer None: unfinished) with these step values."""
    return SampledPath(text="", steps=tuple(f"s{k}" for k in range(len(step_values))),
                       finished=answer is not None, answer=answer, error="", tokens=tokens,
                       finish_reason="stop", value=step_values[-1] if step_values else None,
                       step_values=step_values)


# ---------------------------------------------------------------------------- the rules
def test_best_of_n_by_the_product_of_step_values_and_by_the_last_value_differ():
    """The paper's PRM+BoN (App. E.3) scores prod_k v_k: a path whose last step looks great
    after a doubtful first step loses to a steady one, which the last value ranks lower."""
    doubtful = path("20", (0.2, 0.9))   # last 0.9, product 0.18
    steady = path("10", (0.7, 0.8))     # last 0.8, product 0.56
    assert product_value(doubtful) == pytest.approx(0.18)
    assert product_value(steady) == pytest.approx(0.56)
    assert best_of_n_pick([doubtful, steady]) is doubtful
    assert best_of_n_prod_pick([doubtful, steady]) is steady
    picks = select_first([doubtful, steady], 2)
    assert picks["best_of_n"] is doubtful and picks["best_of_n_prod"] is steady
    assert judge_first([doubtful, steady], [False, True], 2) == {
        "sc": False, "best_of_n": False, "best_of_n_prod": True, "weighted_vote": False,
        "pass": True}
    # a path without scored steps never wins on an empty product
    assert product_value(path(None, ())) == 0.0
    assert best_of_n_prod_pick([path(None, ()), path(None, (0.1,))]).step_values == (0.1,)


def test_the_rules_read_only_the_first_n_samples():
    paths = [path("20", (0.3,)), path("10", (0.9,)), path("10", (0.8,)), path("20", (0.1,))]
    correct = [False, True, True, False]
    assert judge_first(paths, correct, 1) == {rule: False for rule in (*RULES, "pass")}
    at2 = judge_first(paths, correct, 2)  # SC ties 1:1 -> the answer seen first (20)
    assert at2 == {"sc": False, "best_of_n": True, "best_of_n_prod": True,
                   "weighted_vote": True, "pass": True}
    assert judge_first(paths, correct, 4)["sc"] is False  # 2:2, 20 seen first
    with pytest.raises(ValueError, match=r"N=5 must be in \[1, 4\]"):
        select_first(paths, 5)
    with pytest.raises(ValueError, match="3 verdicts for 4 samples"):
        judge_first(paths, correct[:3], 2)


def test_weighted_vote_sums_last_values_per_answer():
    paths = [path("20", (0.5, 0.1)), path("20", (0.5, 0.1)), path("20", (0.5, 0.1)),
             path("10", (0.5, 0.9))]
    picks = select_first(paths, 4)
    assert picks["sc"].answer == "20" and picks["weighted_vote"].answer == "10"


# ---------------------------------------------------------------------------- one sampling pass
def test_sampled_search_is_one_generate_and_one_score_request_per_question():
    """n solutions in ONE Generate request, every distinct legal step prefix in ONE Score
    request; each sample keeps its text, steps, tokens and per-step values."""
    texts = [RIGHT, WRONG_20, HALF, RIGHT, "junk\n"]
    policy = scripted(texts)
    scorer = prefix_values({steps(RIGHT)[:1]: 0.6, steps(RIGHT): 0.95,
                            steps(WRONG_20)[:1]: 0.3, steps(WRONG_20): 0.2})
    questions = [Question(f"q{i}", Q.text) for i in range(3)]
    engine = SearchEngine(policy, scorer, progress=False)
    results = engine.run_all(
        [(q.id, sampled(q, WORLD, SampledPassConfig(n=5, temperature=0.7), **KW))
         for q in questions])
    (prompts, params), = policy.calls  # one policy call for all three questions (merged)
    assert prompts == [Q.text + "\n"] * 3 and (params.n, params.temperature) == (5, 0.7)
    assert params.stop == ()
    (items,) = scorer.calls  # one scorer call; the prefixes of each question once
    # RIGHT and HALF share their first step: 2 distinct prefixes of RIGHT/HALF, 2 of WRONG_20
    assert len(items) == 3 * 4
    result = results["q0"]
    assert result.costs.policy_calls == 1 and result.costs.prm_calls == 4
    samples = result.tree["samples"]
    assert [s["text"] for s in samples] == texts
    assert samples[0]["step_values"] == [0.6, 0.95] and samples[0]["value"] == 0.95
    assert samples[2]["steps"] == list(steps(HALF)[:1]) and samples[2]["step_values"] == [0.6]
    assert samples[4]["steps"] == [] and samples[4]["value"] is None
    assert [s["tokens"] for s in samples] == [len(t) + 1 for t in texts]
    assert result.answer == "10" and result.value == pytest.approx(0.95)  # BoN, last value
    assert result.info["paths"] == samples and result.info["step_prefixes"] == 4


def test_every_rule_on_the_first_n_equals_its_own_search_at_n():
    """The rules on the first N samples of one pass at n = 6 choose what self-consistency,
    best-of-N and the weighted vote choose when they sample those N themselves."""
    texts = [WRONG_20, RIGHT_2, WRONG_20, HALF, RIGHT, WRONG_3]
    values = {steps(WRONG_20): 0.4, steps(RIGHT_2): 0.3, steps(RIGHT): 0.9,
              steps(WRONG_3): 0.35, steps(HALF)[:1]: 0.97}
    engine = SearchEngine(scripted(texts), prefix_values(values), progress=False)
    shared = engine.run_all([("q", sampled(Q, WORLD, SampledPassConfig(n=6), **KW))])["q"]
    paths = [SampledPath.from_record(s) for s in shared.tree["samples"]]
    own = {"sc": (self_consistency, SelfConsistencyConfig), "best_of_n": (best_of_n, BestOfNConfig),
           "weighted_vote": (weighted_vote, WeightedVoteConfig)}
    for n in range(1, 7):
        picks = select_first(paths, n)
        for rule, (search, config) in own.items():
            engine = SearchEngine(scripted(texts[:n]), prefix_values(values), progress=False)
            alone = engine.run_all([("q", search(Q, WORLD, config(n=n), **KW))])["q"]
            assert (picks[rule].steps, picks[rule].answer) == (alone.steps, alone.answer), (rule, n)


def test_the_runner_judges_each_sample_and_the_curve_reads_the_rows(tmp_path):
    """record_result writes each sample's verdict into the row (no text: the tree has it);
    summarize turns the rows into every rule at N = 1, 2, 4, 5 and the tokens the first N
    cost."""
    from rest_mcts.runtime.search_run import SearchRun

    texts = [WRONG_20, RIGHT, HALF, RIGHT_2, WRONG_20]
    values = {steps(WRONG_20): 0.9, steps(RIGHT): 0.5, steps(RIGHT_2): 0.6,
              steps(WRONG_20)[:1]: 0.9, steps(RIGHT)[:1]: 0.9, steps(RIGHT_2)[:1]: 0.1}
    engine = SearchEngine(scripted(texts), prefix_values(values), progress=False)
    result = engine.run_all([("q", sampled(Q, WORLD, SampledPassConfig(n=5), **KW))])["q"]
    run = SearchRun("test", 1, prefix="eval")
    record_result(WORLD, "sampled", run, Problem(Q, gold="10"), result, tmp_path)
    (row,) = read_jsonl(tmp_path / "results.jsonl")
    assert [s["correct"] for s in row["samples"]] == [False, True, False, True, False]
    assert "text" not in row["samples"][0] and "paths" not in row["info"]
    paths, correct = row_samples(row)
    assert [p.answer for p in paths] == ["20", "10", None, "10", "20"]
    metrics = summarize([row], "eval")
    tokens = [len(t) + 1 for t in texts]
    assert metrics["eval/policy_tokens_per_question@N=2"] == sum(tokens[:2])
    assert metrics["eval/policy_tokens_per_question@N=5"] == sum(tokens) == \
        metrics["eval/policy_tokens_per_question"]
    # N=1: only WRONG_20; N=2: SC tie -> 20, BoN last 0.9 (20) vs product 0.81 (20) vs 0.45
    assert metrics["eval/sc_acc@N=2"] == 0.0 and metrics["eval/pass_acc@N=2"] == 1.0
    assert metrics["eval/best_of_n_acc@N=2"] == 0.0
    # N=4: SC 10 (2 votes to 1); vote 20: 0.9, 10: 0.5 + 0.6 = 1.1; BoN product: 20 (0.81)
    assert metrics["eval/weighted_vote_acc@N=4"] == 1.0 and metrics["eval/sc_acc@N=4"] == 1.0
    assert metrics["eval/best_of_n_prod_acc@N=4"] == 0.0
    assert metrics["eval/sc_acc@N=5"] == 0.0  # 2:2, the answer seen first
    assert metrics["eval/prm_calls_per_question@N=5"] == result.costs.prm_calls == 6
    assert metrics["eval/path_prm_calls_per_question@N=5"] == 4  # HALF's prefix counts too
    assert sorted(p.n for p in read_sample_curve(metrics, "eval")) == [1, 2, 4, 5]
    assert read_sample_curve(metrics, "eval") == sample_curve([(paths, correct)], (1, 2, 4, 5))
    assert sample_metrics([row], "eval", grid=(3, 9)) == sample_metrics([row], "eval", grid=(3,))
    assert sample_metrics([{"id": "x"}], "eval") == {}


def test_sampled_config_yaml_registry_and_judging():
    from rest_mcts.search.registry import needs_scorer

    assert search_config("sampled") == SampledPassConfig(n=16, temperature=1.0)
    assert needs_scorer("sampled")
    judged = judge_solution(Q, WORLD, Completion(RIGHT, 7, "stop"))
    assert SampledPath.from_record(judged.record()) == judged


# ---------------------------------------------------------------------------- grid, interpolation
def test_sample_grid_doubles_up_to_n_max():
    assert sample_grid(1) == (1,)
    assert sample_grid(8) == (1, 2, 4, 8)
    assert sample_grid(12) == (1, 2, 4, 8, 12)
    with pytest.raises(ValueError):
        sample_grid(0)


def test_at_tokens_interpolates_linearly_in_log_tokens_between_the_bracketing_points():
    tokens, acc = [50.0, 100.0, 200.0, 400.0], [0.10, 0.20, 0.40, 0.45]
    # exactly at a grid point
    assert at_tokens(tokens, acc, 200.0) == AtTokens(0.40, 200.0, True)
    # half way in log tokens between 100 and 200: 100 * sqrt(2)
    mid = at_tokens(tokens, acc, 100.0 * math.sqrt(2))
    assert mid.value == pytest.approx(0.30) and mid.inside
    # a quarter of the way between 200 and 400 in log tokens: 200 * 2 ** 0.25
    assert at_tokens(tokens, acc, 200.0 * 2 ** 0.25).value == pytest.approx(0.4125)
    # 150 tokens: t = log(1.5) / log(2) = 0.58496 -> 0.2 + 0.58496 * 0.2
    assert at_tokens(tokens, acc, 150.0).value == pytest.approx(0.316993, abs=1e-6)
    # beyond the largest N: its value at its tokens, flagged; below N = 1 the same
    assert at_tokens(tokens, acc, 1000.0) == AtTokens(0.45, 400.0, False)
    assert at_tokens(tokens, acc, 20.0) == AtTokens(0.10, 50.0, False)
    # order does not matter; equal tokens are one point with the mean value
    assert at_tokens(tokens[::-1], acc[::-1], 150.0).value == pytest.approx(0.316993, abs=1e-6)
    assert at_tokens([10.0, 10.0, 40.0], [0.2, 0.4, 0.5], 20.0).value == pytest.approx(0.4)
    with pytest.raises(ValueError):
        at_tokens([], [], 10.0)

"""Answer extraction, checking by answer type, the rewriter and the LLM judge's parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rest_mcts.answers.check import AnswerChecker, answers_equal, parse_number
from rest_mcts.answers.extract import choice_letter, extract_final_answer, last_boxed
from rest_mcts.answers.judge import LLMJudge, parse_judgement
from rest_mcts.answers.rewrite import rewrite_equivalent
from rest_mcts.backends.base import Completion, GenerationOutput, greedy_texts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_last_boxed_matches_nested_braces_and_takes_the_last():
    assert last_boxed(r"so $x=\boxed{\frac{1}{2}}$ and \boxed{3}") == "3"
    assert last_boxed(r"$\boxed{\frac{a}{b^{2}}}$") == r"\frac{a}{b^{2}}"
    assert last_boxed(r"\boxed 5.") == "5"
    assert last_boxed(r"\boxed{\frac{1}{2}") is None  # truncated
    assert last_boxed("no box") is None


@pytest.mark.parametrize(
    "text, answer",
    [
        (r"Step 3: so it is $\boxed{7}$.", "7"),
        ("Natalia sold 72 clips.\n#### 72", "72"),
        ("Step 4: The answer is: 18.", "18"),
        ("The final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
        ("Step 2: 3 + 4 = 7", None),
        ("The answer is", None),
    ],
)
def test_extract_final_answer(text, answer):
    assert extract_final_answer(text) == answer


def test_choice_letter():
    assert choice_letter("(b)") == "B"
    assert choice_letter("C. 1.5") == "C"
    assert choice_letter("Because") is None


@pytest.mark.parametrize(
    "pred, gold, kind, equal",
    [
        ("0.5", r"\frac{1}{2}", "math", True),
        (r"\dfrac{1}{2}", r"\frac12", "math", True),
        ("1+x^2", "x^2+1", "math", True),
        ("3", "4", "math", False),
        (r"\left(-\infty, \frac{3}{4}\right)", r"(-\infty, 0.75)", "math", True),
        ("1,200", "1200", "gsm8k", True),
        ("$18.00", "18", "gsm8k", True),
        ("18.5", "18", "gsm8k", False),
        (r"2.5 \times 10^{-3}", "0.00251", "numeric", True),
        ("1.1", "1", "numeric", False),
        ("1.005", "1", "numeric", True),
        ("(b)", "B", "choice", True),
        ("C", "B", "choice", False),
        (None, "B", "choice", False),
        ("", "3", "math", False),
    ],
)
def test_answers_equal(pred, gold, kind, equal):
    assert answers_equal(pred, gold, kind) is equal


def test_numeric_tolerance_is_configurable():
    assert not answers_equal("1.05", "1", "numeric", rel_tol=1e-2)
    assert answers_equal("1.05", "1", "numeric", rel_tol=0.1)
    assert parse_number(r"\frac{3}{4}") == 0.75
    assert parse_number("abc") is None


def test_unknown_answer_type_and_bad_tolerance_raise():
    with pytest.raises(ValueError):
        answers_equal("1", "1", "words")
    with pytest.raises(ValueError):
        AnswerChecker("math", rel_tol=0)


@pytest.mark.parametrize(
    "answer, rule, rewritten",
    [
        (r"\frac{1}{2}", "fraction_to_decimal", "0.5"),
        (r"-\frac{3}{8}", "fraction_to_decimal", "-0.375"),
        (r"\frac{1}{3}", "fraction_to_decimal", "1/3"),
        (r"\dfrac{3}{4}", "dfrac_to_frac", r"\frac{3}{4}"),
        (r"\frac{\pi}{2}", "frac_to_dfrac", r"\dfrac{\pi}{2}"),
        ("0.25", "decimal_to_fraction", r"\frac{1}{4}"),
        ("5", "integer_to_decimal", "5.0"),
        (r"\sqrt{2}", "sqrt_to_power", r"2^{\frac{1}{2}}"),
        (r"\left(1,2\right)", "drop_left_right", "(1,2)"),
        (r"2\sqrt2", "unbrace_sqrt", r"2\sqrt{2}"),
    ],
)
def test_rewrites_are_deterministic_and_equivalent(answer, rule, rewritten):
    assert rewrite_equivalent(answer) == (rule, rewritten)
    assert answers_equal(rewritten, answer, "math")


def test_no_rewrite_for_words():
    assert rewrite_equivalent(r"\text{Monday}") is None


class _FakeGenerate:
    """A plain generate callable: prompts -> the same reply for each."""

    def __init__(self, reply: str):
        self.reply, self.prompts = reply, []

    def __call__(self, prompts):
        self.prompts += list(prompts)
        return [self.reply for _ in prompts]


class _FakeBackend:
    def __init__(self, reply: str):
        self.reply, self.prompts, self.params = reply, [], []

    def generate(self, prompts, params):
        self.prompts += list(prompts)
        self.params.append(params)
        return [GenerationOutput((Completion(self.reply, 1, "eos"),), 1) for _ in prompts]


class _FakePrompts:
    def verify_prompt(self, solution, gold):
        return f"VERIFY {solution} || {gold}"


@pytest.mark.parametrize("reply, verdict", [("1", True), (" 0\n", False), ("1.", True),
                                            ("yes", None), ("10", None), ("", None)])
def test_parse_judgement_is_strict(reply, verdict):
    assert parse_judgement(reply) is verdict


def test_judge_is_asked_only_when_rules_say_unequal():
    generate = _FakeGenerate("1")
    checker = AnswerChecker("math", judge=LLMJudge(generate, _FakePrompts()))
    assert checker.equal("0.5", r"\frac12")
    assert generate.prompts == []  # rules decided
    assert checker.equal("one half", r"\frac12", solution_text="Step 1: one half")
    assert generate.prompts == ["VERIFY Step 1: one half || \\frac12"]
    assert not AnswerChecker("math", judge=LLMJudge(_FakeGenerate("maybe"), _FakePrompts())).equal(
        "one half", r"\frac12"
    )


def test_judge_takes_a_callable_not_a_backend():
    with pytest.raises(TypeError, match="greedy_texts"):
        LLMJudge(_FakeBackend("1"), _FakePrompts())


def test_judge_on_a_backend_through_greedy_texts():
    backend = _FakeBackend(" 0\n")
    judge = LLMJudge(greedy_texts(backend, max_new_tokens=3), _FakePrompts())
    assert judge.equal("x", "y") is False and judge.calls == 1
    assert backend.prompts == ["VERIFY x || y"]
    (params,) = backend.params
    assert (params.n, params.greedy, params.max_new_tokens) == (1, True, 3)


def test_experiment_script_on_the_fixture(tmp_path):
    from experiments.check_math_answers import measure, report

    stats = measure(str(FIXTURES / "math_sample.jsonl"))
    rows = [json.loads(line) for line in (FIXTURES / "math_sample.jsonl").open()]
    assert stats["problems"] == len(rows)
    assert stats["self_equal"] == len(rows)
    assert sum(stats["rewritten_equal"].values()) == sum(stats["rewritten"].values()) > 0
    assert stats["next_unequal"] == stats["next_total"]
    assert "gold == rewrite(gold)" in report(stats, "math_sample.jsonl", 1.0)

"""Dataset loading: real fixture rows, normalisation, bad rows, shuffling and sharding."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest

from rest_mcts.config import ConfigError
from rest_mcts.data import DatasetError, DatasetSpec, load_records
from rest_mcts.data.load import read_records
from rest_mcts.data.normalise import normalise_row
from rest_mcts.data.select import select
from rest_mcts.data.steps import format_step, solution_steps, split_sentences, strip_step_prefix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MATH = FIXTURES / "math_sample.jsonl"
GSM8K = FIXTURES / "gsm8k_sample.jsonl"


def _spec(**kw):
    base = dict(name="math", format="math", answer_type="math", path=str(MATH))
    return DatasetSpec(**{**base, **kw})


def test_math_fixture_rows_normalise():
    records = read_records(_spec(), "train")
    assert len(records) == 30
    first = records[0]
    assert first.id == "math-train-algebra-0"
    assert first.gold == "0"
    assert first.answer_type == "math"
    assert all(s.startswith(f"Step {k}: ") and s.endswith("\n")
               for k, s in enumerate(first.reference_steps, start=1))
    assert r"\boxed{0}" in first.reference_steps[-1]
    assert len({r.id for r in records}) == 30


def test_gsm8k_fixture_rows_normalise():
    records = read_records(DatasetSpec(name="gsm8k", format="gsm8k", answer_type="gsm8k",
                                       path=str(GSM8K), shuffle=False), "train")
    assert len(records) == 30
    first = records[0]
    assert first.gold == "72" and first.id == "gsm8k-1"
    assert first.reference_steps == (
        "Step 1: Natalia sold 48/2 = 24 clips in May.\n",
        "Step 2: Natalia sold 48+24 = 72 clips altogether in April and May.\n",
        "Step 3: The answer is 72\n",
    )
    assert all("<<" not in s for r in records for s in r.reference_steps)


def test_limit_shuffle_and_shards_are_deterministic_and_disjoint():
    ids = lambda **kw: [r.id for r in load_records(_spec(**kw), "train", seed=3)]  # noqa: E731
    assert ids(limit=5) == ids(limit=5)
    assert ids(limit=5) == ids(limit=10)[:5]
    assert ids(limit=5) != [r.id for r in load_records(_spec(limit=5), "train", seed=4)]
    assert ids(shuffle=False, limit=3) == [r.id for r in read_records(_spec(), "train")[:3]]
    shards = [set(ids(shard=i, num_shards=3)) for i in range(3)]
    assert sum(len(s) for s in shards) == 30 and len(set.union(*shards)) == 30
    with pytest.raises(ValueError, match="shard"):
        select([1, 2], shard=2, num_shards=2)


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"problem": "What is 1+1?"}', "no gold answer"),
        ('{"solution": "It is $\\\\boxed{2}$."}', "missing field 'problem'"),
        ('{"problem": "  ", "solution": "$\\\\boxed{2}$"}', "empty field 'problem'"),
        ('{"problem": "What is 1+1?", "solution": "$\\\\boxed{2}$"', "invalid JSON"),
        ('[1, 2]', "expected a JSON object"),
    ],
)
def test_bad_row_names_file_and_line(tmp_path, line, message):
    good = json.dumps({"problem": "What is 2+2?", "solution": "$\\boxed{4}$"})
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(DatasetError, match=rf"bad\.jsonl:3: .*{message}") as err:
        read_records(_spec(path=str(path)), "train")
    assert isinstance(err.value, ConfigError)  # run.py prints it as one `error:` line
    assert "\n" not in str(err.value)


def test_rows_without_gold_are_skipped_only_when_asked(tmp_path):
    path = tmp_path / "quirk.jsonl"
    rows = [{"problem": "A?", "solution": "$\\boxed{1}$"}, {"problem": "B?", "solution": "$\\boxed{}$"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DatasetError, match="quirk.jsonl:2"):
        read_records(_spec(path=str(path)), "train")
    assert [r.gold for r in read_records(_spec(path=str(path), skip_no_gold=True), "train")] == ["1"]


def test_repeated_ids_and_missing_files_are_errors(tmp_path):
    path = tmp_path / "dup.jsonl"
    row = json.dumps({"unique_id": "a", "problem": "A?", "solution": "$\\boxed{1}$"})
    path.write_text(row + "\n" + row + "\n")
    with pytest.raises(DatasetError, match="dup.jsonl:2: id 'math-a' repeats"):
        read_records(_spec(path=str(path)), "train")
    with pytest.raises(DatasetError, match="not found"):
        read_records(_spec(path=str(tmp_path / "nope.jsonl")), "train")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        (tmp_path / "x.csv").write_text("a,b\n")
        read_records(_spec(path=str(tmp_path / "x.csv")), "train")


def test_json_list_files_and_fields_format(tmp_path):
    path = tmp_path / "sci.json"
    path.write_text(json.dumps([{"problemid": "p 1", "problem_text": "Speed?", "answer_number": "3.0",
                                 "solution": "v = 3.0 m/s."}]))
    spec = DatasetSpec(name="scibench", format="fields", answer_type="numeric", path=str(path),
                       fields={"id": "problemid", "question": "problem_text", "answer": "answer_number"})
    (record,) = read_records(spec, "test")
    assert record.id == "scibench-p-1" and record.gold == "3.0"
    assert record.reference_steps == ("Step 1: v = 3.0 m/s.\n", "Step 2: The answer is 3.0\n")


def test_choice_format_with_option_fields_and_with_shuffled_options():
    ceval = normalise_row({"id": 7, "question": "1+1=?", "A": "1", "B": "2", "C": "3", "D": "4",
                           "answer": "B"}, "f:1", fmt="choice", name="ceval", answer_type="choice",
                          fields={"choices": ["A", "B", "C", "D"]})
    assert ceval.gold == "B" and ceval.question.endswith("(A) 1\n(B) 2\n(C) 3\n(D) 4")
    row = {"Record ID": "r1", "Question": "Pick the right one", "Correct Answer": "right",
           "Incorrect Answer 1": "w1", "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3"}
    fields = {"id": "Record ID", "question": "Question", "correct": "Correct Answer",
              "incorrect": ["Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]}
    a = normalise_row(row, "g:1", fmt="choice", name="gpqa", answer_type="choice", fields=fields)
    b = normalise_row(row, "g:1", fmt="choice", name="gpqa", answer_type="choice", fields=fields)
    assert a == b  # deterministic shuffle
    assert f"({a.gold}) right" in a.question
    with pytest.raises(DatasetError, match="f:1: answer 'E'"):
        normalise_row({"question": "q", "A": "1", "B": "2", "answer": "E"}, "f:1", fmt="choice",
                      name="c", answer_type="choice", fields={"choices": ["A", "B"]})


def test_hub_without_datasets_package_is_a_one_line_error(monkeypatch):
    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("no datasets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    spec = DatasetSpec(name="gsm8k", format="gsm8k", answer_type="gsm8k", hub_id="openai/gsm8k")
    with pytest.raises(DatasetError, match="needs the `datasets` package"):
        read_records(spec, "train")


def test_step_helpers():
    assert strip_step_prefix("Step 12: x = 1\n") == "x = 1"
    assert format_step(2, "Step 9: a\nb") == "Step 2: a b\n"
    assert split_sentences("So $x = 1.5$ here. Then \\[y = 2.\\] Done!") == [
        "So $x = 1.5$ here.", "Then \\[y = 2.\\] Done!"
    ]
    assert solution_steps("A. B.", gold="3")[-1] == "Step 3: The answer is 3\n"

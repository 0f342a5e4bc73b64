"""Row formats -> :class:`ProblemRecord`, one function per format.

Formats (``data.format``):

* ``math``: MATH / MATH-500 rows: ``problem``, ``solution`` (gold: the ``answer`` field when
  present, else the last ``\\boxed{}`` of the solution);
* ``gsm8k``: ``question``, ``answer`` ending in ``#### <n>`` (calculator annotations
  ``<<...>>`` are dropped from the reference steps);
* ``fields``: any dataset with a question field, an answer field and an optional solution
  field (SciInstruct, SciBench, ...);
* ``choice``: multiple choice, either with one field per option (``A``..``D``, C-Eval) and the
  answer letter, or with a correct field and incorrect fields (GPQA), whose order is
  shuffled deterministically per problem id. Options are appended to the question as
  ``(A) ...`` lines and the gold answer is the letter.

Field names come from ``fields`` (format defaults below, overridable in the data config).
A missing or empty required field raises :class:`DatasetError` naming file and line.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any, Callable, Mapping

from rest_mcts.answers.extract import last_boxed
from rest_mcts.data.records import DatasetError, NoGoldAnswer, ProblemRecord
from rest_mcts.data.steps import solution_steps

LETTERS = "ABCDEFGHIJ"
DEFAULT_FIELDS: dict[str, dict[str, Any]] = {
    "math": {"id": "unique_id", "question": "problem", "solution": "solution", "answer": "answer"},
    "gsm8k": {"id": "id", "question": "question", "answer": "answer"},
    "fields": {"id": "id", "question": "question", "answer": "answer", "solution": "solution"},
    "choice": {
        "id": "id",
        "question": "question",
        "answer": "answer",
        "choices": None,
        "correct": None,
        "incorrect": None,
        "solution": None,
    },
}
_CALCULATOR = re.compile(r"<<[^>]*>>")
_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def make_id(prefix: str, raw: Any, location: str) -> str:
    """A file-name-safe id: ``<prefix>-<raw id>`` or, without one, ``<prefix>-<line>``."""
    if raw is None or str(raw).strip() == "":
        raw = location.rsplit(":", 1)[-1]
    text = _ID_CHARS.sub("-", str(raw).strip()).strip("-")
    text = re.sub(r"\.json$", "", text)
    return f"{prefix}-{text}"


def _text(row: Mapping, key: str | None, location: str, required: bool = True) -> str | None:
    if key is None:
        return None
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            state = "missing field" if key not in row else "empty field"
            raise DatasetError(f"{location}: {state} {key!r}")
        return None
    return str(value).strip()


def _record(location: str, **kwargs) -> ProblemRecord:
    try:
        return ProblemRecord(source=location, **kwargs)
    except ValueError as err:
        raise DatasetError(str(err)) from None


def normalise_math(row: Mapping, location: str, name: str, answer_type: str, fields: Mapping) -> ProblemRecord:
    question = _text(row, fields["question"], location)
    solution = _text(row, fields["solution"], location, required=False)
    gold = _text(row, fields.get("answer"), location, required=False)
    if gold is None and solution is not None:
        gold = last_boxed(solution)
    if not gold:
        raise NoGoldAnswer(
            f"{location}: no gold answer (no {fields.get('answer')!r} field and no non-empty "
            "\\boxed{} in the solution)"
        )
    return _record(
        location,
        id=make_id(name, row.get(fields["id"]), location),
        question=question,
        gold=gold,
        answer_type=answer_type,
        reference_steps=solution_steps(solution, gold) if solution else (),
    )


def normalise_gsm8k(row: Mapping, location: str, name: str, answer_type: str, fields: Mapping) -> ProblemRecord:
    question = _text(row, fields["question"], location)
    answer = _text(row, fields["answer"], location)
    body, hashes, gold = answer.rpartition("####")
    if not hashes or not gold.strip():
        raise NoGoldAnswer(f"{location}: field {fields['answer']!r} has no '#### <answer>' line")
    gold = gold.strip().replace(",", "")
    lines = [_CALCULATOR.sub("", line) for line in body.splitlines() if line.strip()]
    return _record(
        location,
        id=make_id(name, row.get(fields["id"]), location),
        question=question,
        gold=gold,
        answer_type=answer_type,
        reference_steps=solution_steps("\n".join(lines), gold, sentences=False),
    )


def normalise_fields(row: Mapping, location: str, name: str, answer_type: str, fields: Mapping) -> ProblemRecord:
    question = _text(row, fields["question"], location)
    gold = _text(row, fields["answer"], location)
    solution = _text(row, fields.get("solution"), location, required=False)
    return _record(
        location,
        id=make_id(name, row.get(fields.get("id")), location),
        question=question,
        gold=gold,
        answer_type=answer_type,
        reference_steps=solution_steps(solution, gold) if solution else (),
    )


def normalise_choice(row: Mapping, location: str, name: str, answer_type: str, fields: Mapping) -> ProblemRecord:
    question = _text(row, fields["question"], location)
    record_id = make_id(name, row.get(fields.get("id")), location)
    if fields.get("choices"):
        options = [_text(row, key, location) for key in fields["choices"]]
        answer = _text(row, fields["answer"], location)
        letter = answer.strip().strip("()").upper()[:1]
        if letter not in LETTERS[: len(options)]:
            raise DatasetError(f"{location}: answer {answer!r} is not one of the option letters")
    elif fields.get("correct") and fields.get("incorrect"):
        correct = _text(row, fields["correct"], location)
        options = [correct] + [_text(row, key, location) for key in fields["incorrect"]]
        seed = int(hashlib.sha256(record_id.encode()).hexdigest()[:16], 16)
        random.Random(seed).shuffle(options)
        letter = LETTERS[options.index(correct)]
    else:
        raise DatasetError(f"{location}: format 'choice' needs fields.choices, or fields.correct and fields.incorrect")
    text = question + "\n" + "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))
    solution = _text(row, fields.get("solution"), location, required=False)
    return _record(
        location,
        id=record_id,
        question=text,
        gold=letter,
        answer_type=answer_type,
        reference_steps=solution_steps(solution, letter) if solution else (),
    )


NORMALISERS: dict[str, Callable[..., ProblemRecord]] = {
    "math": normalise_math,
    "gsm8k": normalise_gsm8k,
    "fields": normalise_fields,
    "choice": normalise_choice,
}


def normalise_row(
    row: Mapping,
    location: str,
    *,
    fmt: str,
    name: str,
    answer_type: str,
    fields: Mapping | None = None,
) -> ProblemRecord:
    """One row as a :class:`ProblemRecord`.

    Args:
        row: the row's fields.
        location: ``file:line`` (or hub row) for error messages.
        fmt: one of :data:`NORMALISERS`.
        name: the dataset name (prefix of generated ids).
        answer_type: the records' answer type.
        fields: field names overriding the format's defaults.

    Raises:
        DatasetError: a required field is missing or empty (names file and line).
        ValueError: unknown format.
    """
    if fmt not in NORMALISERS:
        raise ValueError(f"data format must be one of {sorted(NORMALISERS)}, got {fmt!r}")
    merged = {**DEFAULT_FIELDS[fmt], **(dict(fields) if fields else {})}
    return NORMALISERS[fmt](row, location, name, answer_type, merged)

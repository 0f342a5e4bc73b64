"""The problem records: :class:`Question` (what search may see), :class:`Problem` (with the
gold answer), :class:`ProblemRecord` (the one row every dataset is normalised to), and the
error for bad rows.

They sit here, at the bottom, so that both ``data`` and ``worlds`` use them without an import
cycle (``rest_mcts.worlds.base`` re-exports ``Question`` and ``Problem``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rest_mcts.answers.check import ANSWER_TYPES
from rest_mcts.utils.io import FileFormatError


@dataclass(frozen=True)
class Question:
    """What a policy, a scorer or a test-time search may see of a problem."""

    id: str
    text: str

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("Question.id must be a non-empty string")
        if not self.text or not self.text.strip():
            raise ValueError(f"Question {self.id!r}: text must be non-empty")


@dataclass(frozen=True)
class Problem:
    """A question together with its gold answer (and an optional reference solution)."""

    question: Question
    gold: str
    reference_steps: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.question, Question):
            raise TypeError("Problem.question must be a Question")
        if self.gold is None or str(self.gold) == "":
            raise ValueError(f"Problem {self.question.id!r}: gold answer must be non-empty")

    @property
    def id(self) -> str:
        return self.question.id


class DatasetError(FileFormatError):
    """A dataset file or row is malformed; the message starts with ``<file>:<line>:``.

    The JSON reader's error (:class:`rest_mcts.utils.io.FileFormatError`, a
    :class:`~rest_mcts.config.ConfigError`), so ``run.py`` reports it in one line
    (``error: ...``, exit status 2) before any search starts.
    """


class NoGoldAnswer(DatasetError):
    """A well-formed row whose gold answer cannot be found (e.g. an empty ``\\boxed{}``);
    skipped with a warning when the data config sets ``skip_no_gold: true``."""


@dataclass(frozen=True)
class ProblemRecord:
    """One normalised problem.

    Attributes:
        id: unique within the dataset; only ``[A-Za-z0-9._-]`` (it names files).
        question: the question text shown to the policy (choices included for multiple choice).
        gold: the gold final answer.
        answer_type: how answers are compared (one of ``rest_mcts.answers.ANSWER_TYPES``).
        reference_steps: a reference solution split into steps (may be empty).
        source: where the row came from (``file:line`` or ``hub_id[split] row i``).
    """

    id: str
    question: str
    gold: str
    answer_type: str
    reference_steps: tuple[str, ...] = field(default=())
    source: str = ""

    def __post_init__(self) -> None:
        where = f"{self.source}: " if self.source else ""
        if not self.id:
            raise ValueError(f"{where}empty id")
        if not self.question or not self.question.strip():
            raise ValueError(f"{where}empty question")
        if self.gold is None or not str(self.gold).strip():
            raise ValueError(f"{where}empty gold answer")
        if self.answer_type not in ANSWER_TYPES:
            raise ValueError(f"{where}answer_type must be one of {ANSWER_TYPES}")

    def to_problem(self) -> Problem:
        """The :class:`Problem` (gold kept out of the Question)."""
        return Problem(
            question=Question(id=self.id, text=self.question),
            gold=self.gold,
            reference_steps=self.reference_steps,
        )

"""Records and the protocol every reasoning world implements.

The gold answer lives only in :class:`Problem`. Search for evaluation receives a
:class:`Question`, which has no field for it, so a test-time search cannot read the gold
answer by construction; only the training-time verifier receives the whole ``Problem``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


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


@dataclass(frozen=True)
class StepCheck:
    """Result of parsing one proposed step against the steps before it.

    Attributes:
        legal: whether the step is well formed and allowed in this state.
        finished: whether the path ends with this step (no further step is possible or
            needed). Only meaningful when ``legal``.
        answer: the final answer the path states when ``finished`` (else ``None``).
        error: why the step is illegal (empty when legal).
    """

    legal: bool
    finished: bool = False
    answer: str | None = None
    error: str = ""


class World(Protocol):
    """A reasoning task: questions, step format, step parsing and answer checking."""

    name: str

    def check_step(self, question: Question, steps: Sequence[str], step: str) -> StepCheck:
        """Parse ``step`` as the next step after ``steps``; never needs the gold answer."""
        ...

    def check_path(self, question: Question, steps: Sequence[str]) -> StepCheck:
        """Check a whole path step by step; the verdict of its last step (or first illegal)."""
        ...

    def is_correct(self, problem: Problem, steps: Sequence[str]) -> bool:
        """Verifier: does this finished path reach the gold answer? (training/eval only)"""
        ...

"""The protocol every reasoning world implements, and the step-check record.

:class:`Question` and :class:`Problem` are defined with the other records in
:mod:`rest_mcts.data.records` (below the worlds, which load datasets) and re-exported here.
The gold answer lives only in :class:`Problem`. Search for evaluation receives a
:class:`Question`, which has no field for it, so a test-time search cannot read the gold
answer by construction; only the training-time verifier receives the whole ``Problem``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from rest_mcts.data.records import Problem, Question

__all__ = ["Problem", "Question", "StepCheck", "World"]


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

"""Countdown's text formats: the question and the step line, written and read.

Exact formats (the generator always writes the canonical form):

* question: ``Make 23 from 6 4 5 1`` (target first, then the numbers in the given order);
* step: ``Step 1: 6 * 4 = 24 (left: 24 5 1)`` -- ``left`` lists the numbers available
  after the step, the result first, then the unused numbers in their current order. The
  parser (:mod:`rest_mcts.worlds.countdown.rules`) accepts ``left`` in any order (compared as
  multisets), tolerates extra spaces between tokens, and strips whitespace (a trailing
  newline) at both ends.
"""

from __future__ import annotations

import functools
import re
from typing import Sequence

from rest_mcts.worlds.base import Question

_QUESTION_RE = re.compile(r"Make\s+(\d+)\s+from\s+(\d+(?:\s+\d+)*)")
_NUM = r"([-+]?[\d.]+)"
_STEP_RE = re.compile(
    rf"Step\s*(\d+)\s*:\s*{_NUM}\s*([^\s\d.]+)\s*{_NUM}\s*=\s*{_NUM}\s*\(\s*left\s*:\s*([^)]*)\)"
)


def format_question(numbers: Sequence[int], target: int) -> str:
    """Question text, e.g. ``Make 23 from 6 4 5 1``.

    Args:
        numbers: the given numbers, in the order to show them.
        target: the number to make.

    Returns:
        The question text (no trailing newline).
    """
    return f"Make {target} from " + " ".join(str(x) for x in numbers)


def format_step(k: int, a: int, op: str, b: int, result: int, left: Sequence[int]) -> str:
    """Canonical step line, e.g. ``Step 1: 6 * 4 = 24 (left: 24 5 1)\\n``.

    Args:
        k: the step number (1-based).
        a: left operand.
        op: one of ``+ - * /``.
        b: right operand.
        result: ``a op b``.
        left: the numbers available after the step (result first, by convention).

    Returns:
        The line, ending in ``"\\n"``.
    """
    return f"Step {k}: {a} {op} {b} = {result} (left: {' '.join(str(x) for x in left)})\n"


def parse_question(question: Question | str) -> tuple[tuple[int, ...], int]:
    """Parse a question into ``(numbers, target)`` (cached).

    Args:
        question: a :class:`Question` or its text.

    Returns:
        The numbers in the given order and the target.

    Raises:
        ValueError: if the text is not ``Make <target> from <n1> <n2> ...`` with at least two
            positive numbers and a positive target.
    """
    text = question.text if isinstance(question, Question) else question
    return _parse_question_text(text)


@functools.lru_cache(maxsize=1 << 16)
def _parse_question_text(text: str) -> tuple[tuple[int, ...], int]:
    m = _QUESTION_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(
            f"malformed countdown question {text!r} (expected 'Make <target> from <n1> <n2> ...')"
        )
    target = int(m.group(1))
    numbers = tuple(int(t) for t in m.group(2).split())
    if len(numbers) < 2:
        raise ValueError(f"countdown question {text!r} needs at least two numbers")
    if target < 1 or min(numbers) < 1:
        raise ValueError(f"countdown question {text!r}: target and numbers must be positive")
    return numbers, target


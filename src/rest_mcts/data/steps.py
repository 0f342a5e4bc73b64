"""Reference solutions as steps, in the project's one step convention.

Convention: a step is ONE line ending in a newline and starts with ``Step k: `` (k from 1);
the last step states the final answer (``\\boxed{...}`` or ``The answer is ...``). Search
proposes steps the same way (a step ends at the first newline).

A reference solution is cut into sentences (a full stop, question or exclamation mark
followed by whitespace, outside ``$...$`` / ``$$...$$`` maths) and line breaks; newlines
inside a step become spaces.
"""

from __future__ import annotations

import re

from rest_mcts.answers.extract import extract_final_answer

STEP_PREFIX = re.compile(r"^\s*Step\s*\d+\s*[:.]\s*", re.IGNORECASE)


def strip_step_prefix(step: str) -> str:
    """The step's text without a leading ``Step k:`` (and without surrounding whitespace)."""
    return STEP_PREFIX.sub("", step, count=1).strip()


def format_step(k: int, text: str) -> str:
    """``Step k: <text>\\n`` with the text on one line (an existing prefix is replaced)."""
    body = " ".join(strip_step_prefix(text).split())
    return f"Step {k}: {body}\n"


_OPEN = ("\\[", "\\(")
_CLOSE = ("\\]", "\\)")


def split_sentences(text: str) -> list[str]:
    """Sentences and lines of ``text``; maths (``$..$``, ``$$..$$``, ``\\[..\\]``,
    ``\\(..\\)``) is never cut."""
    pieces: list[str] = []
    current: list[str] = []
    dollars = False  # inside $...$ or $$...$$
    brackets = 0  # depth of \[ \( blocks
    index = 0
    while index < len(text):
        two = text[index:index + 2]
        if two in _OPEN or two in _CLOSE:
            brackets = brackets + 1 if two in _OPEN else max(0, brackets - 1)
            current.append(two)
            index += 2
            continue
        char = text[index]
        if char == "$":
            double = two == "$$"
            dollars = not dollars
            current.append("$$" if double else "$")
            index += 2 if double else 1
            continue
        current.append(char)
        outside = not dollars and brackets == 0
        ends_line = char == "\n" and outside
        ends_sentence = (
            char in ".?!" and outside and (index + 1 == len(text) or text[index + 1].isspace())
        )
        if ends_line or ends_sentence:
            pieces.append("".join(current))
            current = []
        index += 1
    pieces.append("".join(current))
    return [" ".join(p.split()) for p in pieces if p.strip()]


def solution_steps(
    solution: str, gold: str | None = None, sentences: bool = True
) -> tuple[str, ...]:
    """A reference solution as ``Step k:`` lines. Everything from the first sentence that
    states a final answer on is one last step; a final ``The answer is <gold>`` step is added
    when the solution states no final answer that the extractor finds.

    Args:
        solution: the reference solution text.
        gold: its gold answer.
        sentences: cut into sentences and lines (MATH); False: one step per line (GSM8K,
            where ``$`` is a currency sign, not maths).
    """
    if sentences:
        sentences_ = split_sentences(solution)
    else:
        sentences_ = [" ".join(line.split()) for line in solution.splitlines() if line.strip()]
    pieces = sentences_
    # One final step: from the first piece that states an answer to the end (a solution
    # may box its answer mid-way and add remarks; nothing may follow a finished step).
    first = next((i for i, p in enumerate(pieces) if extract_final_answer(p) is not None), None)
    if first is not None and first < len(pieces) - 1:
        pieces = pieces[:first] + [" ".join(pieces[first:])]
    if gold is not None and (not pieces or extract_final_answer(pieces[-1]) is None):
        pieces.append(f"The answer is {gold}")
    return tuple(format_step(k, s) for k, s in enumerate(pieces, start=1))

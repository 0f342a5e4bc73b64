"""Find the final answer that a solution text states.

Conventions recognised (the last occurrence wins, in this order of preference):

1. ``\\boxed{...}`` or ``\\fbox{...}`` (MATH; braces matched, nested braces allowed);
2. ``#### <answer>`` (GSM8K);
3. ``The answer is <answer>`` / ``The final answer is <answer>`` (MetaMath, the paper's CoT
   prompt), with an optional colon, up to the end of the line, a trailing full stop and
   surrounding ``$`` removed.

For multiple choice (:func:`choice_letter`) the answer is reduced to its letter.
"""

from __future__ import annotations

import re

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_ANSWER_IS = re.compile(
    r"(?:the\s+)?(?:final\s+)?answer\s+is\s*:?\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE
)
_LETTER = re.compile(r"^\(?\s*([A-Ea-e])\s*\)?(?:[.:)]|\s|$)")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces matched.

    ``\\boxed 5`` (no braces) gives ``"5"``. Returns None when there is none or its braces
    are unbalanced (a truncated solution).
    """
    start = max(text.rfind(cmd) for cmd in _BOX_COMMANDS)
    if start < 0:
        return None
    cmd = next(c for c in _BOX_COMMANDS if text.startswith(c, start))
    rest = text[start + len(cmd):]
    if rest.startswith(" ") and not rest.lstrip().startswith("{"):
        token = rest.strip().split(maxsplit=1)
        return token[0].rstrip("$.") if token else None
    rest = rest.lstrip()
    if not rest.startswith("{"):
        return None
    depth = 0
    for index, char in enumerate(rest):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return rest[1:index].strip()
    return None


def _clean(answer: str) -> str:
    answer = answer.strip()
    answer = answer.rstrip(".").strip()
    if len(answer) >= 2 and answer.startswith("$") and answer.endswith("$"):
        answer = answer.strip("$").strip()
    boxed = last_boxed(answer)
    return boxed if boxed is not None else answer


def extract_final_answer(text: str) -> str | None:
    """The final answer stated in ``text`` (see the module docstring), else None.

    Args:
        text: a solution, or its last step.

    Returns:
        The answer string, stripped; None when no convention matches or the answer is empty.
    """
    boxed = last_boxed(text)
    if boxed:
        return boxed
    for pattern in (_HASHES, _ANSWER_IS):
        matches = pattern.findall(text)
        if matches:
            answer = _clean(matches[-1])
            if answer:
                return answer
    return None


def choice_letter(answer: str | None) -> str | None:
    """The option letter an answer names (``"B"``, ``"(b)"``, ``"B. 1.5"`` -> ``"B"``)."""
    if answer is None:
        return None
    match = _LETTER.match(answer.strip())
    return match.group(1).upper() if match else None

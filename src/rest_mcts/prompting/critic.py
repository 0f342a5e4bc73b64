"""Strict parsing of the self-critic's answer (the paper's end-of-inference-or-hint prompt).

The critic must answer exactly one of:

* ``Problem solved`` (case-insensitive, an optional full stop): end of inference;
* ``Analysis: <hint>`` with a non-empty hint: not finished, and the hint for the next step.

Anything else (empty text, both forms, other words around ``Problem solved``, an empty
analysis) is rejected with :class:`CriticParseError`, so a confused critic never ends a path
by accident; the caller decides what a rejected answer means (the search treats it as "not
finished, no hint").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SOLVED = re.compile(r"^problem\s+solved\.?$", re.IGNORECASE)
_ANALYSIS = re.compile(r"^analysis\s*:\s*(.+)$", re.IGNORECASE | re.DOTALL)


class CriticParseError(ValueError):
    """The critic's answer has neither allowed form."""


@dataclass(frozen=True)
class CriticVerdict:
    """The critic's verdict: ``solved`` (end of inference) or a ``hint`` for the next step."""

    solved: bool
    hint: str | None = None


def parse_critic(text: str) -> CriticVerdict:
    """Parse a critic answer; see the module docstring for the two allowed forms.

    Raises:
        CriticParseError: the answer is in neither form.
    """
    answer = text.strip()
    if _SOLVED.match(answer):
        return CriticVerdict(solved=True)
    match = _ANALYSIS.match(answer)
    if match and match.group(1).strip():
        hint = match.group(1).strip()
        if re.search(r"problem\s+solved", hint, re.IGNORECASE) and len(hint.split()) <= 3:
            raise CriticParseError(f"ambiguous critic answer {answer[:80]!r}")
        return CriticVerdict(solved=False, hint=hint)
    raise CriticParseError(
        f"critic answer {answer[:80]!r} is neither 'Problem solved' nor 'Analysis: ...'"
    )

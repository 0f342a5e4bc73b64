"""Is a predicted answer equal to the gold answer? One rule per answer type.

Answer types:

* ``math``: LaTeX/symbolic equivalence by `math-verify` (sympy underneath), e.g.
  ``\\frac{1}{2}`` = ``0.5`` = ``\\dfrac12``; a verbatim match (after trimming) is always equal;
* ``gsm8k``: numbers written GSM8K-style (``1,200``, ``$18``, ``18.00``), equal when they
  differ by at most 1e-6 (GSM8K answers are exact integers);
* ``numeric``: numbers (SciBench-style, also ``2.5 \\times 10^{-3}`` and LaTeX fractions), equal
  within a relative tolerance (default 1e-2, the paper's SciBench setting): ``|p - g| <=
  rel_tol * |g|`` (``|p| <= rel_tol`` when ``g == 0``);
* ``choice``: multiple-choice letters (``B`` = ``(b)`` = ``B. 1.5``).

An empty or missing prediction is never equal.
"""

from __future__ import annotations

import functools
import logging
import math
import re

from rest_mcts.answers.extract import choice_letter

logger = logging.getLogger(__name__)

ANSWER_TYPES: tuple[str, ...] = ("math", "gsm8k", "numeric", "choice")
DEFAULT_REL_TOL = 1e-2

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_SCI = re.compile(
    r"^([-+]?(?:\d+\.?\d*|\.\d+))\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?$"
)


def _strip_number_text(text: str) -> str:
    text = text.strip().strip("$").strip()
    text = text.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    text = text.replace("\\!", "").replace("{,}", "")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # thousands separators
    return text.rstrip(".").strip()


def parse_number(text: str | None) -> float | None:
    """A number written as plain text, GSM8K-style or simple LaTeX; None if not a number.

    Accepts ``1,200``, ``$18.00``, ``-3.5e-2``, ``2.5 \\times 10^{-3}``, ``50\\%`` (-> 50) and,
    through math-verify, LaTeX such as ``\\frac{3}{4}`` or ``\\sqrt{2}``.
    """
    if text is None:
        return None
    clean = _strip_number_text(text)
    if not clean:
        return None
    if _NUMBER.fullmatch(clean):
        return float(clean)
    sci = _SCI.match(clean)
    if sci:
        return float(sci.group(1)) * 10.0 ** int(sci.group(2))
    parsed = _math_parse(clean)
    for item in parsed:
        try:
            value = float(item)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            return value
    return None


@functools.lru_cache(maxsize=1 << 14)
def _math_parse(answer: str) -> tuple:
    """math-verify's parse of one answer (cached: gold answers are parsed again and again)."""
    from math_verify import parse

    wrapped = answer if "\\boxed" in answer else "\\boxed{" + answer + "}"
    try:
        return tuple(parse(wrapped))
    except Exception:  # noqa: BLE001 -- math-verify's parser may raise on odd input
        logger.debug("math-verify could not parse %r", answer)
        return ()


def math_equal(prediction: str, gold: str) -> bool:
    """LaTeX/symbolic equivalence of two MATH-style answers (math-verify)."""
    from math_verify import verify

    if _normalise_text(prediction) == _normalise_text(gold):
        return True
    gold_parsed, pred_parsed = _math_parse(gold), _math_parse(prediction)
    if not gold_parsed or not pred_parsed:
        return False
    try:
        return bool(verify(list(gold_parsed), list(pred_parsed)))
    except Exception:  # noqa: BLE001
        logger.debug("math-verify could not compare %r and %r", prediction, gold)
        return False


def _normalise_text(answer: str) -> str:
    return re.sub(r"\s+", "", answer.strip().strip("$").rstrip("."))


def numbers_close(prediction: float, gold: float, rel_tol: float) -> bool:
    """``|p - g| <= rel_tol * |g|`` (``|p| <= rel_tol`` when ``g == 0``)."""
    if gold == 0:
        return abs(prediction) <= rel_tol
    return abs(prediction - gold) <= rel_tol * abs(gold)


def answers_equal(
    prediction: str | None, gold: str, answer_type: str, rel_tol: float = DEFAULT_REL_TOL
) -> bool:
    """Whether ``prediction`` equals ``gold`` under the rule of ``answer_type``.

    Raises:
        ValueError: on an unknown answer type.
    """
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"answer_type must be one of {ANSWER_TYPES}, got {answer_type!r}")
    if prediction is None or not str(prediction).strip():
        return False
    prediction, gold = str(prediction), str(gold)
    if answer_type == "math":
        return math_equal(prediction, gold)
    if answer_type == "choice":
        letter = choice_letter(prediction)
        return letter is not None and letter == choice_letter(gold)
    p, g = parse_number(prediction), parse_number(gold)
    if p is None or g is None:
        return False
    tolerance = 1e-6 if answer_type == "gsm8k" else rel_tol
    if answer_type == "gsm8k":
        return abs(p - g) <= tolerance
    return numbers_close(p, g, tolerance)


class AnswerChecker:
    """Answer equality for one answer type, with an optional LLM judge as a second opinion.

    Args:
        answer_type: one of :data:`ANSWER_TYPES`.
        rel_tol: relative tolerance of ``numeric`` answers (> 0).
        judge: an object with ``equal(prediction_text, gold) -> bool | None`` (e.g.
            :class:`~rest_mcts.answers.judge.LLMJudge`), asked only when the rule says
            "unequal"; None (default) means rules only.
    """

    def __init__(self, answer_type: str = "math", rel_tol: float = DEFAULT_REL_TOL, judge=None):
        if answer_type not in ANSWER_TYPES:
            raise ValueError(f"answer_type must be one of {ANSWER_TYPES}, got {answer_type!r}")
        if not rel_tol > 0:
            raise ValueError(f"rel_tol must be > 0, got {rel_tol}")
        self.answer_type = answer_type
        self.rel_tol = float(rel_tol)
        self.judge = judge

    def equal(
        self,
        prediction: str | None,
        gold: str,
        answer_type: str | None = None,
        solution_text: str | None = None,
    ) -> bool:
        """Rule check for ``answer_type`` (default: the checker's), then the judge if any.

        Args:
            prediction: the extracted final answer (None: no answer).
            gold: the gold answer.
            answer_type: overrides the checker's type for this pair.
            solution_text: the full solution, shown to the judge (default: ``prediction``).
        """
        kind = answer_type or self.answer_type
        if answers_equal(prediction, gold, kind, self.rel_tol):
            return True
        if self.judge is None or not (solution_text or prediction):
            return False
        return bool(self.judge.equal(solution_text or prediction, gold))

"""Write a MATH-style LaTeX answer differently but equivalently (deterministic).

Used to measure the answer checker: a good checker judges an answer equal to each of its
rewrites. Each rule is a pure function ``str -> str | None`` (None: does not apply); the
first rule that applies and changes the text wins, so the result depends only on the input.

Rules, in order:

* ``dfrac_to_frac``: ``\\dfrac``/``\\tfrac`` -> ``\\frac``;
* ``fraction_to_decimal``: a plain numeric fraction ``\\frac{a}{b}`` (optionally signed) ->
  its decimal when that terminates (``\\frac{1}{2}`` -> ``0.5``), else ``a/b``;
* ``frac_to_dfrac``: any other ``\\frac`` -> ``\\dfrac``;
* ``decimal_to_fraction``: a decimal number -> ``\\frac{p}{q}`` in lowest terms;
* ``integer_to_decimal``: an integer -> ``n.0``;
* ``sqrt_to_power``: a lone ``\\sqrt{n}`` (n a number) -> ``n^{\\frac{1}{2}}``;
* ``drop_left_right``: ``\\left(`` / ``\\right)`` (and brackets) -> plain delimiters;
* ``unbrace_sqrt``: ``\\sqrt2`` -> ``\\sqrt{2}``.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Callable

_INT = re.compile(r"^-?\d+$")
_DECIMAL = re.compile(r"^-?\d*\.\d+$")
_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(\d+)\}$")
_FRAC_SHORT = re.compile(r"^(-?)\\frac(\d)(\d)$")
_SQRT_NUM = re.compile(r"^\\sqrt\{(\d+)\}$")


def dfrac_to_frac(answer: str) -> str | None:
    if "\\dfrac" in answer or "\\tfrac" in answer:
        return answer.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return None


def fraction_to_decimal(answer: str) -> str | None:
    text = answer.replace(" ", "")
    match = _FRAC.match(text) or _FRAC_SHORT.match(text)
    if not match:
        return None
    sign, numerator, denominator = match.group(1), int(match.group(2)), int(match.group(3))
    if denominator == 0:
        return None
    value = Fraction(numerator, denominator) * (-1 if sign else 1)
    reduced = value.denominator
    for prime in (2, 5):
        while reduced % prime == 0:
            reduced //= prime
    if reduced == 1:  # terminating decimal
        digits = 0
        while (value * 10**digits).denominator != 1:
            digits += 1
        return f"{float(value):.{max(digits, 1)}f}"
    return f"{value.numerator}/{value.denominator}"


def frac_to_dfrac(answer: str) -> str | None:
    if "\\frac" in answer:
        return answer.replace("\\frac", "\\dfrac")
    return None


def decimal_to_fraction(answer: str) -> str | None:
    text = answer.strip()
    if not _DECIMAL.match(text):
        return None
    value = Fraction(text)
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def integer_to_decimal(answer: str) -> str | None:
    text = answer.strip()
    return f"{text}.0" if _INT.match(text) else None


def sqrt_to_power(answer: str) -> str | None:
    match = _SQRT_NUM.match(answer.strip())
    return f"{match.group(1)}^{{\\frac{{1}}{{2}}}}" if match else None


def drop_left_right(answer: str) -> str | None:
    if "\\left" not in answer and "\\right" not in answer:
        return None
    out = answer
    for cmd in ("\\left", "\\right"):
        out = re.sub(re.escape(cmd) + r"\s*(?=[()\[\]|.]|\\\{|\\\})", "", out)
    return out if out != answer else None


def unbrace_sqrt(answer: str) -> str | None:
    out = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", answer)
    return out if out != answer else None


RULES: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    ("dfrac_to_frac", dfrac_to_frac),
    ("fraction_to_decimal", fraction_to_decimal),
    ("frac_to_dfrac", frac_to_dfrac),
    ("decimal_to_fraction", decimal_to_fraction),
    ("integer_to_decimal", integer_to_decimal),
    ("sqrt_to_power", sqrt_to_power),
    ("drop_left_right", drop_left_right),
    ("unbrace_sqrt", unbrace_sqrt),
)


def rewrite_equivalent(answer: str) -> tuple[str, str] | None:
    """``(rule name, rewritten answer)`` of the first rule that changes ``answer``; None if
    no rule applies (e.g. a word answer like ``\\text{Monday}``)."""
    for name, rule in RULES:
        out = rule(answer)
        if out is not None and out != answer:
            return name, out
    return None

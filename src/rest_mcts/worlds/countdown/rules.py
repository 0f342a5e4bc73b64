"""Countdown's rules: the legal moves on some numbers, applying one, checking a step line.

Rules (the TV game's): each given number is used AT MOST once (not all need be used) and
every intermediate result is a positive integer, so ``a - b`` needs ``a > b`` and ``a / b``
needs ``b`` to divide ``a``.

A path is *finished* when its last result equals the target (correct), or when only one
number is left (wrong unless that number is the target). A step after a finished path is
illegal. Reaching the target always needs at least one step, even when the target is among
the given numbers.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

from rest_mcts.worlds.base import StepCheck
from rest_mcts.worlds.countdown.format import _STEP_RE

OPS: tuple[str, ...] = ("+", "-", "*", "/")

Move = tuple[int, str, int, int]
"""A move ``(a, op, b, result)``, written ``a op b = result``."""


def legal_moves(numbers: Sequence[int]) -> list[Move]:
    """All distinct legal moves on the available numbers.

    Commutative moves are listed once with the larger operand first (``6 * 4``, never
    ``4 * 6``; the parser accepts both), and equal numbers give no repeated moves.

    Args:
        numbers: the numbers available (any order; repeats allowed).

    Returns:
        Moves ``(a, op, b, result)`` in a fixed order: by operand pair in the order the
        numbers appear, then ``+ - * /``.
    """
    return list(_moves(tuple(numbers)))


@functools.lru_cache(maxsize=1 << 16)
def _moves(state: tuple[int, ...]) -> tuple[Move, ...]:
    moves: list[Move] = []
    seen: set[tuple[int, int]] = set()
    for i, x in enumerate(state):
        for y in state[i + 1 :]:
            a, b = (x, y) if x >= y else (y, x)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            moves.append((a, "+", b, a + b))
            if a > b:
                moves.append((a, "-", b, a - b))
            moves.append((a, "*", b, a * b))
            if a % b == 0:
                moves.append((a, "/", b, a // b))
    return tuple(moves)


def apply_move(numbers: Sequence[int], move: Move) -> tuple[int, ...]:
    """The numbers left after ``move``, in canonical order (result first, then the rest).

    Args:
        numbers: the numbers available.
        move: a legal move on them.

    Returns:
        The canonical ``left`` list.

    Raises:
        ValueError: if an operand is not available.
    """
    rest = _remove_operands(tuple(numbers), move[0], move[2])
    if rest is None:
        raise ValueError(f"move {move} uses a number not in {tuple(numbers)}")
    return (move[3],) + rest


def _remove_operands(state: tuple[int, ...], a: int, b: int) -> tuple[int, ...] | None:
    """``state`` without one ``a`` and one ``b`` (first occurrences), or None if missing."""
    rest = list(state)
    try:
        rest.remove(a)
        rest.remove(b)
    except ValueError:
        return None
    return tuple(rest)


class _Transition(NamedTuple):
    """One parsed step: its verdict and the numbers left after it (``()`` when illegal)."""

    check: StepCheck
    state: tuple[int, ...]
    result: int


class _Walk(NamedTuple):
    """A parsed path: the last check, the numbers left, and the last result (0: none)."""

    check: StepCheck
    state: tuple[int, ...]
    result: int


_EMPTY_PATH = StepCheck(legal=True, finished=False)
_AFTER_FINISH = StepCheck(legal=False, error="step after finished path")


def _illegal(error: str) -> _Transition:
    return _Transition(StepCheck(legal=False, error=error), (), 0)


def _as_number(token: str) -> int | None:
    """A positive integer written plainly (digits only), else None."""
    return int(token) if token.isdigit() and int(token) > 0 else None


def _evaluate(a: int, op: str, b: int) -> tuple[int, str]:
    """``(value, "")`` for a legal ``a op b``, else ``(0, why)``."""
    if op == "+":
        return a + b, ""
    if op == "*":
        return a * b, ""
    if op == "-":
        if a <= b:
            return 0, f"non-positive result ({a} - {b} = {a - b})"
        return a - b, ""
    if a % b:
        return 0, f"non-integer result ({a} / {b} is not exact)"
    return a // b, ""


@functools.lru_cache(maxsize=1 << 18)
def _transition(state: tuple[int, ...], target: int, k: int, line: str) -> _Transition:
    """Parse ``line`` as step ``k`` from the numbers ``state`` (cached: search repeats lines)."""
    m = _STEP_RE.fullmatch(line.strip())
    if m is None:
        return _illegal("malformed step (expected 'Step k: a op b = c (left: ...)')")
    index, a_tok, op, b_tok, r_tok, left_tok = m.groups()
    if int(index) != k:
        return _illegal(f"wrong step number {int(index)} (expected {k})")
    if op not in OPS:
        return _illegal(f"unknown operator {op!r}")
    a, b = _as_number(a_tok), _as_number(b_tok)
    if a is None or b is None:
        return _illegal(f"bad number {a_tok if a is None else b_tok!r}")
    rest = _remove_operands(state, a, b)
    if rest is None:
        return _illegal(f"operand not available ({a} {op} {b} from {' '.join(map(str, state))})")
    value, why = _evaluate(a, op, b)
    if why:
        return _illegal(why)
    if _as_number(r_tok) != value:
        return _illegal(f"wrong arithmetic ({a} {op} {b} = {value}, not {r_tok})")
    left = tuple(_as_number(t) for t in left_tok.replace(",", " ").split())
    if None in left or sorted(left) != sorted((value,) + rest):
        return _illegal(f"wrong left list (expected {' '.join(map(str, (value,) + rest))})")
    finished = value == target or len(left) == 1
    check = StepCheck(legal=True, finished=finished, answer=str(value) if finished else None)
    return _Transition(check, left, value)  # type: ignore[arg-type]  # no None in left


def _walk(numbers: tuple[int, ...], target: int, steps: Sequence[str]) -> _Walk:
    """Parse a path; stops at the first illegal step (its check is returned)."""
    check, state, result = _EMPTY_PATH, numbers, 0
    for k, line in enumerate(steps, start=1):
        if check.finished:
            return _Walk(_AFTER_FINISH, (), 0)
        check, state, result = _transition(state, target, k, line)
        if not check.legal:
            return _Walk(check, (), 0)
    return _Walk(check, state, result)

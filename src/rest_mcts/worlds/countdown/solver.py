"""Countdown's exact solver: fewest steps to a target (one table per multiset of numbers),
shortest or all solutions, and the moves that keep a target reachable (the oracle's and the
trace generators' ground truth)."""

from __future__ import annotations

import bisect
import functools
import itertools
from typing import Iterator, Sequence

from rest_mcts.worlds.countdown.format import format_step
from rest_mcts.worlds.countdown.rules import Move, _moves, apply_move

@functools.lru_cache(maxsize=1 << 16)
def _reach(state: tuple[int, ...]) -> dict[int, int]:
    """Map value -> fewest steps whose last result is that value, from a SORTED state.

    This one table per multiset answers the distance to every target at once. The returned
    dict is shared by the cache: never mutate it.
    """
    best: dict[int, int] = {}
    deeper = len(state) > 2
    for a, _op, b, r in _moves(state):
        best[r] = 1
        if not deeper:
            continue
        rest = list(state)
        rest.remove(a)
        rest.remove(b)
        bisect.insort(rest, r)
        for v, d in _reach(tuple(rest)).items():
            if best.get(v, d + 2) > d + 1:
                best[v] = d + 1
    return best


def fewest_steps(numbers: Sequence[int], target: int) -> int | None:
    """Fewest steps from ``numbers`` to a step whose result is ``target`` (None: unreachable).

    Args:
        numbers: the numbers available (at least one step is always needed).
        target: the number to make.

    Returns:
        The minimal number of steps, or None when the target cannot be made.
    """
    if len(numbers) < 2:
        return None
    return _reach(tuple(sorted(numbers))).get(target)


def solve(numbers: Sequence[int], target: int) -> list[str] | None:
    """A shortest solution as canonical step lines, or None when there is none.

    Deterministic: the first shortest solution in :func:`legal_moves` order (it equals
    ``solutions(numbers, target, 1)[0]``).

    Args:
        numbers: the given numbers, in question order.
        target: the number to make.

    Returns:
        Step lines ending in ``"\\n"``, or None if the target is unreachable.
    """
    found = solutions(numbers, target, max_count=1)
    return found[0] if found else None


def solutions(
    numbers: Sequence[int], target: int, max_count: int | None = None, *, shortest: bool = True
) -> list[list[str]]:
    """Distinct correct solution paths, in :func:`legal_moves` order.

    Paths are distinct as canonical texts: commutative operands are written larger first and
    equal numbers are not told apart, but the same steps in another order are a different
    path.

    Args:
        numbers: the given numbers, in question order.
        target: the number to make.
        max_count: stop after this many (None: all).
        shortest: only the shortest solutions (True) or every correct finished path (False).

    Returns:
        A list of solutions, each a list of step lines ending in ``"\\n"``; empty if none.
    """
    need = fewest_steps(numbers, target)
    if need is None:
        return []
    found = _iter_solutions(tuple(numbers), target, 1, need if shortest else None)
    return list(itertools.islice(found, max_count))


def _iter_solutions(
    state: tuple[int, ...], target: int, k: int, need: int | None
) -> Iterator[list[str]]:
    """Solutions from ``state`` as step lines from step ``k``; ``need``: exact length or None."""
    for move in _moves(state):
        new = apply_move(state, move)
        line = format_step(k, move[0], move[1], move[2], move[3], new)
        if move[3] == target:
            if need is None or need == 1:
                yield [line]
            continue
        further = fewest_steps(new, target)
        if further is None or (need is not None and further != need - 1):
            continue
        for tail in _iter_solutions(new, target, k + 1, None if need is None else need - 1):
            yield [line] + tail


def _solving_moves(state: tuple[int, ...], target: int, need: int | None) -> list[Move]:
    """Moves that keep the target reachable (in exactly ``need`` steps if given)."""
    good = []
    for move in _moves(state):
        if move[3] == target:
            if need is None or need == 1:
                good.append(move)
            continue
        further = fewest_steps(apply_move(state, move), target)
        if further is not None and (need is None or further == need - 1):
            good.append(move)
    return good

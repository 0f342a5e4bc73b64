"""Countdown's question generator: the disjoint question pools (:func:`split_of`) and the
seeded draw of distinct solvable instances within a world's difficulty knobs (the draw that
``CountdownWorld.generate`` documents)."""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import random
from typing import Iterator, Protocol, Sequence

from rest_mcts.worlds.countdown.solver import _reach

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test", "bootstrap", "d_v0")
"""The disjoint question pools (:func:`split_of`): ``train`` (the self-training searches),
``val``, ``test``, ``bootstrap`` (policy_0's traces) and ``d_v0`` (PRM_0's trees)."""
POOLS: dict[str, str] = {"bootstrap": "bootstrap", "d_v0": "d_v0", "search": "train",
                         "val": "val", "eval": "test"}
"""Which split each use of questions draws from (``Context.pool``): no two uses of one run
share a question (the val split serves only validation)."""

_ENUM_MAX_INSTANCES = 1_000_000  # the generator's exhaustive fallback enumerates at most this
_ENUM_MAX_NUMBERS = 4
_MAX_REJECT_STREAK = 50_000  # the sampler gives up after this many rejections in a row


class Knobs(Protocol):
    """What the generator reads of a ``CountdownWorld`` (its ``repr`` names it in errors)."""

    num_numbers: int
    min_number: int
    max_number: int
    min_target: int
    max_target: int
    min_steps: int
    max_steps: int | None


def split_of(numbers: Sequence[int], target: int) -> str:
    """The split (question pool) a canonical instance belongs to, by a stable hash.

    The first 8 bytes of sha256(``"<sorted numbers>-><target>"``) as an integer h: ``test``
    when h % 10 == 0 (10%), ``val`` when h % 10 == 1 (10%); the rest by (h // 10) % 8:
    ``d_v0`` for 0 (10% of all), ``bootstrap`` for 1-3 (30%), ``train`` for 4-7 (40%). An
    instance lies in exactly one pool, whatever the seed or the other knobs, so the pools
    of a run are disjoint by construction.

    Args:
        numbers: the numbers (order does not matter).
        target: the target.

    Returns:
        One of :data:`SPLITS`.
    """
    key = " ".join(str(x) for x in sorted(numbers)) + f"->{target}"
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    if h % 10 in (0, 1):
        return "test" if h % 10 == 0 else "val"
    rest = (h // 10) % 8
    return "d_v0" if rest == 0 else "bootstrap" if rest <= 3 else "train"


def _require_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def draw_instances(
    knobs: Knobs, n: int, seed: int, split: str
) -> list[tuple[tuple[int, ...], int]]:
    """The ``(numbers, target)`` of ``n`` distinct problems of ``split``, numbers in the order
    to show them (``CountdownWorld.generate`` describes the draw).

    Raises:
        ValueError: on a bad ``split`` or ``n``, or if not enough distinct problems exist.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    _require_int("n", n, 0)
    rng = random.Random(f"countdown|{seed}|{split}")
    keys: list[tuple[tuple[int, ...], int]] = []
    seen: set[tuple[tuple[int, ...], int]] = set()
    max_attempts = 10_000 + 100 * n
    attempts = streak = 0
    while len(keys) < n and attempts < max_attempts and streak < _MAX_REJECT_STREAK:
        attempts += 1
        streak += 1
        numbers = tuple(rng.randint(knobs.min_number, knobs.max_number)
                        for _ in range(knobs.num_numbers))
        target = rng.randint(knobs.min_target, knobs.max_target)
        canon = (tuple(sorted(numbers)), target)
        if canon in seen or not _accept(knobs, canon[0], target, split):
            continue
        seen.add(canon)
        keys.append((numbers, target))
        streak = 0
    if len(keys) < n:
        keys += _fill_exhaustively(knobs, n - len(keys), split, seen, rng, attempts)
    logger.info("countdown: generated %d %s problems in %d draws (%r)",
                n, split, attempts, knobs)
    return keys


def count_instances(knobs: Knobs, split: str) -> int:
    """Exact number of distinct problems the generator can produce for ``split`` (see
    ``CountdownWorld.count_problems``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not _enumerable(knobs):
        raise ValueError(f"{knobs!r}: instance space too large to enumerate")
    return sum(1 for _ in _enumerate(knobs, split))


def _accept(knobs: Knobs, sorted_numbers: tuple[int, ...], target: int, split: str) -> bool:
    """Does this canonical instance belong to ``split`` and meet the difficulty knobs?"""
    if split_of(sorted_numbers, target) != split:
        return False
    steps = _reach(sorted_numbers).get(target)
    if steps is None or steps < knobs.min_steps:
        return False
    return knobs.max_steps is None or steps <= knobs.max_steps


def _space_size(knobs: Knobs) -> int:
    width = knobs.max_number - knobs.min_number + 1
    multisets = math.comb(width + knobs.num_numbers - 1, knobs.num_numbers)
    return multisets * (knobs.max_target - knobs.min_target + 1)


def _enumerable(knobs: Knobs) -> bool:
    return (knobs.num_numbers <= _ENUM_MAX_NUMBERS
            and _space_size(knobs) <= _ENUM_MAX_INSTANCES)


def _enumerate(knobs: Knobs, split: str) -> Iterator[tuple[tuple[int, ...], int]]:
    """Every accepted canonical instance of ``split``, in sorted order."""
    values = range(knobs.min_number, knobs.max_number + 1)
    for nums in itertools.combinations_with_replacement(values, knobs.num_numbers):
        for target in range(knobs.min_target, knobs.max_target + 1):
            if _accept(knobs, nums, target, split):
                yield nums, target


def _fill_exhaustively(
    knobs: Knobs,
    missing: int,
    split: str,
    seen: set[tuple[tuple[int, ...], int]],
    rng: random.Random,
    attempts: int,
) -> list[tuple[tuple[int, ...], int]]:
    """``missing`` more instances drawn from the enumerated pool, or raise ValueError."""
    if not _enumerable(knobs):
        raise ValueError(
            f"{knobs!r}: found only {len(seen)} distinct {split} problems in {attempts} "
            f"draws, {missing} short; widen the number/target ranges or relax min_steps"
        )
    pool = [key for key in _enumerate(knobs, split) if key not in seen]
    if len(pool) < missing:
        raise ValueError(
            f"{knobs!r}: only {len(seen) + len(pool)} distinct {split} problems exist, "
            f"{len(seen) + missing} requested"
        )
    logger.debug("countdown: sampler stalled after %d draws; filling %d from a pool of %d",
                 attempts, missing, len(pool))
    rng.shuffle(pool)
    filled = []
    for nums, target in pool[:missing]:
        shown = list(nums)
        rng.shuffle(shown)
        filled.append((tuple(shown), target))
    return filled

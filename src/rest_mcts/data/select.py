"""Deterministic shuffling, sharding and limiting of a record list."""

from __future__ import annotations

import random
from typing import Sequence, TypeVar

T = TypeVar("T")


def select(
    items: Sequence[T],
    *,
    shuffle: bool = True,
    seed: int = 0,
    shard: int = 0,
    num_shards: int = 1,
    limit: int | None = None,
) -> list[T]:
    """Shuffle (seeded), keep shard ``shard`` of ``num_shards`` (every n-th item from the
    shard's index, so shards are disjoint and cover everything), then the first ``limit``.

    The same arguments always give the same list; a larger ``limit`` extends a smaller one.

    Raises:
        ValueError: ``num_shards < 1``, ``shard`` outside ``[0, num_shards)`` or ``limit < 0``.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, {num_shards}), got {shard}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    order = list(items)
    if shuffle:
        random.Random(f"data|{seed}").shuffle(order)
    order = order[shard::num_shards]
    return order if limit is None else order[:limit]

"""A value scorer that returns exact quality values from a world's oracle.

For worlds with an exact distance-to-solution oracle (Countdown's ``distance``), this scorer
gives the quality value v_k that a perfect value model would learn (paper, Section 3.1). It
is for analysis and for testing the search, never for reported method results: the oracle
knows which steps lead to the answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

from rest_mcts.backends.registry import Capabilities, register_scorer
from rest_mcts.search.value import oracle_path_values
from rest_mcts.worlds.base import Question

logger = logging.getLogger(__name__)


@register_scorer("oracle", Capabilities(needs_world=True))
class OracleScorer:
    """Exact quality values from a world's oracle (implements ``ValueScorer``).

    Attributes:
        world: the world; must have ``distance(question, steps) -> int | None``.
        stats: running totals: ``calls``, ``items`` and ``seconds``.
    """

    def __init__(self, world: Any) -> None:
        """Wrap ``world``'s oracle.

        Args:
            world: a world with an exact ``distance`` oracle (e.g. ``CountdownWorld``).

        Raises:
            TypeError: if the world has no callable ``distance`` method.
        """
        if not callable(getattr(world, "distance", None)):
            raise TypeError(
                f"OracleScorer needs a world with an exact distance(question, steps) oracle; "
                f"{type(world).__name__} has none"
            )
        self.world = world
        self.stats: dict[str, float] = {"calls": 0, "items": 0, "seconds": 0.0}

    def _value(self, question_text: str, steps: Sequence[str]) -> float:
        """v of the whole partial solution (v_0 = 0 for the empty one)."""
        if not steps:
            return 0.0
        question = Question(id="oracle", text=question_text)
        if not self.world.check_path(question, list(steps)).legal:
            return 0.0  # as in D_V: an illegal step is not a partial solution worth anything
        return oracle_path_values(self.world, question, list(steps))[-1]

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """Values in [0, 1] for each (question text, steps so far) pair, in order."""
        if not items:
            return []
        start = time.perf_counter()
        values = [self._value(question, steps) for question, steps in items]
        seconds = time.perf_counter() - start
        self.stats["calls"] += 1
        self.stats["items"] += len(items)
        self.stats["seconds"] += seconds
        logger.debug("oracle scored %d items in %.3fs", len(items), seconds)
        return values

"""Binomial confidence intervals on accuracies.

:func:`wilson` is the Wilson score interval (Wilson 1927; Brown, Cai and DasGupta 2001 for
why it beats the normal approximation at small counts and near 0 or 1):

    centre = (p + z^2 / 2n) / (1 + z^2 / n),
    half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2),   p = k / n.

A sweep pools the correct answers of a setting's seeds (k = sum over seeds, n = questions x
seeds). Seeds that answer the same questions are not independent draws of questions, so the
pooled interval measures the question-sampling error of the pooled accuracy, not the spread
between seeds (the mean ± std over seeds shows that, drawn beside it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the two-sided 95% normal quantile


@dataclass(frozen=True)
class Interval:
    """``correct`` of ``trials`` right; the Wilson interval [low, high] at ``level``."""

    correct: int
    trials: int
    low: float
    high: float
    level: float = 0.95

    @property
    def rate(self) -> float:
        return self.correct / self.trials


def wilson(correct: int, trials: int, z: float = Z95) -> Interval:
    """The Wilson score interval of ``correct`` successes in ``trials`` (module docstring).

    Raises:
        ValueError: ``trials`` < 1, or ``correct`` outside 0..``trials``.
    """
    if trials < 1:
        raise ValueError(f"wilson: trials must be at least 1, got {trials}")
    if not 0 <= correct <= trials:
        raise ValueError(f"wilson: correct must be in 0..{trials}, got {correct}")
    p, n = correct / trials, trials
    scale = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(correct, trials, max(0.0, centre - half), min(1.0, centre + half))


def wilson_of_rate(rate: float, trials: int, z: float = Z95) -> Interval:
    """:func:`wilson` for an accuracy ``rate`` over ``trials`` questions (the count is
    ``round(rate * trials)``: what a mean of whole answers over ``trials`` gives back)."""
    return wilson(min(trials, max(0, round(rate * trials))), trials, z)

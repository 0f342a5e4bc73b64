"""The gates a world and its base models must pass before methods are compared on it.

A search method can only beat sampling when the policy proposes steps better than chance
(otherwise a tree of b children holds no good step) and the PRM ranks siblings (otherwise
the tree's choices are noise). Measured at iteration 0 of the loop:

* **policy step skill**: at depths 1 and 2, the share of sampled steps (at the search
  temperature) that keep the target reachable must be at least ``STEP_SKILL_RATIO`` times
  the share a uniformly random legal move achieves (``policy/step_skill_ratio@d``,
  :func:`rest_mcts.search.evaluation.step_skill`);
* **PRM sibling ranking**: at depths 1 and 2, PRM_0 must order at least ``SIBLING_ACC`` of
  the pairs of sibling steps whose exact values differ as the exact values do
  (``prm/val_sibling_acc@d``, :func:`rest_mcts.training.prm_metrics.sibling_accuracy_by_depth`).

A world without an exact oracle has neither metric; its gates are "not measured".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

STEP_SKILL_RATIO = 2.0
SIBLING_ACC = 0.8
DEPTHS = (1, 2)


@dataclass(frozen=True)
class Gate:
    """One gate: its metric (a row key), threshold, measured value (None: not measured)."""

    name: str
    key: str
    threshold: float
    value: float | None

    @property
    def measured(self) -> bool:
        return self.value is not None and not math.isnan(self.value)

    @property
    def passed(self) -> bool:
        return self.measured and self.value >= self.threshold  # type: ignore[operator]

    def line(self) -> str:
        """``PASS``/``FAIL``/``not measured``, the metric, its value and threshold."""
        if not self.measured:
            return f"not measured: {self.name} ({self.key} missing)"
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict}: {self.name} = {self.value:.3f} (gate >= {self.threshold:g})"


def gates(row: Mapping[str, Any]) -> list[Gate]:
    """The gates of one results row (iteration 0's: the base policy and PRM_0)."""
    out = []
    for d in DEPTHS:
        key = f"policy/step_skill_ratio@{d}"
        out.append(Gate(f"policy step skill at depth {d} over a random legal move's", key,
                        STEP_SKILL_RATIO, _number(row.get(key))))
    for d in DEPTHS:
        key = f"prm/val_sibling_acc@{d}"
        out.append(Gate(f"PRM sibling ranking accuracy at depth {d}", key, SIBLING_ACC,
                        _number(row.get(key))))
    return out


def summary(row: Mapping[str, Any]) -> list[str]:
    """One line per gate, then a plain verdict: all passed, or which failed and what follows
    (comparisons of search methods on this world say little)."""
    checked = gates(row)
    lines = [g.line() for g in checked]
    failed = _failed(checked)
    if failed:
        lines.append(f"{len(failed)} of {len(checked)} gates FAILED: the base models give "
                     "search little to work with; method comparisons on this world say little")
    elif all(g.measured for g in checked):
        lines.append("all gates passed")
    return lines


def any_failed(row: Mapping[str, Any]) -> bool:
    """Did a measured gate fail?"""
    return bool(_failed(gates(row)))


def _failed(checked: list[Gate]) -> list[Gate]:
    return [g for g in checked if g.measured and not g.passed]


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None

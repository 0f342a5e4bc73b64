"""Metrics of a PRM (value model) against D_V targets and against the exact quality values.

Pure functions, no model and no torch: the PRM's trainer (validation epochs) and the loop's
held-out PRM evaluation both call :func:`value_metrics`.

* Against D_V targets: ``val/mse`` (the training loss, paper Eq. 37) and ``val/acc@0.1``,
  the paper's accuracy (Eq. 38: the share of samples with |clip(V, 0, 1) - v| <= 0.1).
* Against the exact quality value v* of a world's oracle (Countdown's ``distance``, through
  :class:`rest_mcts.search.oracle_scorer.OracleScorer`): ``val/oracle_mse``,
  ``val/oracle_mae``, ``val/oracle_acc@0.1`` (Eq. 38 with v* as target),
  ``val/oracle_spearman`` (rank correlation, :func:`spearman`) and ``val/sibling_acc``
  (:func:`sibling_accuracy`, over ``val/sibling_pairs`` pairs): how often the PRM orders two
  children of the same parent as v* does, which is what the search uses the PRM for.

An earlier ``val/oracle_acc`` counted a prediction right when "v > 0.5" matched reachability.
That is wrong by construction: on a clean K-step path v*_k = k/K, so in the default Countdown
world (K = 2) a correct first step has v* = 0.5 and a perfect PRM scored 0 on it. It is gone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:  # rows only need .question, .steps, .target (prm_data imports Lightning)
    from rest_mcts.training.prm_data import ValueRow

# oracle(question, steps) -> the exact quality value v* of that partial solution
Oracle = Callable[[str, Sequence[str]], float]

TIE = 1e-9  # exact values closer than this are equal (no sibling pair)


def clamp(preds: Sequence[float]) -> list[float]:
    """Predictions clipped to [0, 1], as the search reads them (and as Eq. 38 clips V)."""
    return [min(1.0, max(0.0, float(p))) for p in preds]


def mse(preds: Sequence[float], truth: Sequence[float]) -> float:
    """Mean squared error (paper Eq. 37, the PRM's loss); 0 for no samples."""
    return sum((p - t) ** 2 for p, t in zip(preds, truth)) / max(1, len(truth))


def mae(preds: Sequence[float], truth: Sequence[float]) -> float:
    """Mean absolute error; 0 for no samples."""
    return sum(abs(p - t) for p, t in zip(preds, truth)) / max(1, len(truth))


def accuracy_within(preds: Sequence[float], truth: Sequence[float], tol: float = 0.1) -> float:
    """The paper's PRM accuracy (Eq. 38): share of samples with |prediction - target| <= tol
    (a hair of float slack, so 0.6 vs 0.5 counts as within 0.1); 0 for no samples."""
    return sum(abs(p - t) <= tol + 1e-12 for p, t in zip(preds, truth)) / max(1, len(truth))


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of ``values``, ties given the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the tie-averaged ranks.

    Returns NaN when it is undefined (fewer than two samples, or either side constant)."""
    if len(xs) != len(ys):
        raise ValueError(f"spearman: {len(xs)} predictions for {len(ys)} targets")
    if len(xs) < 2:
        return math.nan
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return math.nan
    return cov / math.sqrt(vx * vy)


def sibling_accuracy(
    rows: Sequence[ValueRow], preds: Sequence[float], truth: Sequence[float]
) -> tuple[float, int]:
    """Sibling ranking accuracy: over pairs of children of the same parent (same question,
    same steps before the last) whose exact values differ, the share the PRM orders as the
    exact values do; a tie in prediction counts half. Rows with the same question and steps
    count once (the first one).

    This is the PRM's job in MCTS* (choosing among a node's children): a constant PRM scores
    0.5, a perfect one 1, a reversed one 0.

    Returns:
        (accuracy, number of pairs); accuracy is NaN when there is no pair.
    """
    by_depth = sibling_accuracy_by_depth(rows, preds, truth)
    pairs = sum(n for _, n in by_depth.values())
    right = sum(acc * n for acc, n in by_depth.values() if n)
    return (right / pairs if pairs else math.nan), pairs


def sibling_accuracy_by_depth(
    rows: Sequence[ValueRow], preds: Sequence[float], truth: Sequence[float]
) -> dict[int, tuple[float, int]]:
    """:func:`sibling_accuracy` per depth of the children (their number of steps): depth 1
    ranks the first steps of a question, depth 2 the second steps under one first step, and
    so on. Returns ``{depth: (accuracy, pairs)}`` for every depth with siblings."""
    groups: dict[tuple[str, tuple[str, ...]], dict[str, tuple[float, float]]] = defaultdict(dict)
    for row, p, t in zip(rows, preds, truth):
        if not row.steps:
            continue
        children = groups[(row.question, tuple(row.steps[:-1]))]
        children.setdefault(row.steps[-1], (p, t))
    tally: dict[int, list[float]] = defaultdict(lambda: [0.0, 0])
    for (_, parent), children in groups.items():
        right, pairs = _ordered_pairs(list(children.values()))
        tally[len(parent) + 1][0] += right
        tally[len(parent) + 1][1] += pairs
    return {d: (right / pairs, int(pairs)) for d, (right, pairs) in sorted(tally.items()) if pairs}


def _ordered_pairs(items: Sequence[tuple[float, float]]) -> tuple[float, int]:
    """(pairs ordered as the truth, ties in prediction half; pairs whose truths differ)."""
    right, pairs = 0.0, 0
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            (p1, t1), (p2, t2) = items[i], items[j]
            if abs(t1 - t2) <= TIE:
                continue
            pairs += 1
            if p1 == p2:
                right += 0.5
            elif (p1 > p2) == (t1 > t2):
                right += 1.0
    return right, pairs


def value_metrics(
    preds: Sequence[float], rows: Sequence[ValueRow], oracle: Oracle | None = None
) -> dict[str, float]:
    """The PRM's metrics on ``rows`` (predictions clamped to [0, 1] first, as at search).

    Always ``val/mse`` and ``val/acc@0.1`` against the rows' D_V targets; with an oracle
    (exact quality values) also ``val/oracle_mse``, ``val/oracle_mae``, ``val/oracle_acc@0.1``,
    ``val/oracle_spearman``, ``val/sibling_acc`` and ``val/sibling_pairs``, and per depth d of
    the ranked children ``val/sibling_acc@d`` and ``val/sibling_pairs@d`` (see the module
    docstring)."""
    if len(preds) != len(rows):
        raise ValueError(f"value_metrics: {len(preds)} predictions for {len(rows)} rows")
    clamped = clamp(preds)
    targets = [r.target for r in rows]
    out = {"val/mse": mse(clamped, targets), "val/acc@0.1": accuracy_within(clamped, targets)}
    if oracle is not None:
        exact = [float(oracle(r.question, r.steps)) for r in rows]
        sibling, pairs = sibling_accuracy(rows, clamped, exact)
        out.update({
            "val/oracle_mse": mse(clamped, exact),
            "val/oracle_mae": mae(clamped, exact),
            "val/oracle_acc@0.1": accuracy_within(clamped, exact),
            "val/oracle_spearman": spearman(clamped, exact),
            "val/sibling_acc": sibling,
            "val/sibling_pairs": float(pairs),
        })
        for depth, (acc, n) in sibling_accuracy_by_depth(rows, clamped, exact).items():
            out[f"val/sibling_acc@{depth}"] = acc
            out[f"val/sibling_pairs@{depth}"] = float(n)
    return out

"""Series that stay visible where they overlap: each its own colour, marker and line style
(:func:`series_style`), shifted a little sideways (:func:`dodge`), lines half transparent.

Every plot opens matplotlib through :func:`pyplot` (the Agg backend: no display needed).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

# Colour-blind safe (Okabe and Ito 2008, less its pale yellow; then Tol's muted scheme), then
# markers and dashes that differ in print: eleven series before a colour comes back.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
          "#882255", "#44AA99", "#999933", "#AA4499")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (3, 1, 1, 1, 1, 1)))
LINE_ALPHA = 0.85
# how far apart neighbouring series sit, as a share of the x axis' span (or decades)
DODGE_SHARE = 0.012


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def series_style(index: int) -> dict[str, Any]:
    """Colour, marker and line style of the ``index``-th series (no two neighbours alike)."""
    return {"color": COLORS[index % len(COLORS)], "marker": MARKERS[index % len(MARKERS)],
            "linestyle": LINESTYLES[index % len(LINESTYLES)]}


def dodge(xs: Sequence[float], index: int, count: int, span: Sequence[float],
          log: bool = False) -> list[float]:
    """``xs`` of series ``index`` of ``count`` moved sideways so the series sit side by side
    around the true x: by :data:`DODGE_SHARE` of the axis' ``span`` (its min and max x) per
    step, multiplicatively on a log axis."""
    offset = (index - (count - 1) / 2) * DODGE_SHARE
    lo, hi = min(span), max(span)
    if log:
        decades = math.log10(hi / lo) if hi > lo > 0 else 1.0
        return [x * 10 ** (offset * decades) for x in xs]
    width = hi - lo if hi > lo else 1.0
    return [x + offset * width for x in xs]

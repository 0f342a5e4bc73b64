"""Read back the figures a plot made: matplotlib's close made a no-op for one test."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest


@pytest.fixture
def open_figures(monkeypatch) -> Iterator[Callable[[], list]]:
    """The figures made during the test, kept open (pyplot's close is a no-op) so that their
    labels, titles and artists can be read; all closed afterwards."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    monkeypatch.setattr(plt, "close", lambda *args, **kwargs: None)
    yield lambda: [plt.figure(n) for n in plt.get_fignums()]
    monkeypatch.undo()
    plt.close("all")

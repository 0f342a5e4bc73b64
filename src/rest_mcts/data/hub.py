"""Rows from the Hugging Face hub through the ``datasets`` library (imported lazily).

``datasets`` is an optional dependency (``pip install datasets``); it is needed only when a
dataset is loaded by hub id instead of a local ``data.path``.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from rest_mcts.data.files import Row
from rest_mcts.data.records import DatasetError


def read_hub_rows(
    hub_id: str, split: str, configs: Sequence[str | None] = (None,), revision: str | None = None
) -> Iterator[Row]:
    """Yield ``(location, row)`` for every row of ``hub_id``'s ``split`` (each config in turn).

    Args:
        hub_id: dataset id on the hub, e.g. ``openai/gsm8k``.
        split: the split name, e.g. ``train`` or ``test``.
        configs: dataset configurations (subsets) to read, in order; ``None`` is the default.
        revision: the dataset's revision (branch, tag or commit, ``data.revision``); None:
            not passed (``main``).

    Raises:
        DatasetError: ``datasets`` is not installed, or loading fails (no network, bad id).
    """
    try:
        import datasets
    except ImportError:
        raise DatasetError(
            f"loading {hub_id} from the hub needs the `datasets` package "
            "(pip install datasets), or give a local file with data.path=..."
        ) from None
    pinned = {"revision": str(revision)} if revision else {}
    for config in configs:
        name = f"{hub_id}:{config}" if config else hub_id
        try:
            table = datasets.load_dataset(hub_id, config, split=split, **pinned)
        except Exception as err:  # noqa: BLE001 -- network, auth, unknown id: one line
            raise DatasetError(f"{name}[{split}]: could not load from the hub ({err})") from None
        for index, row in enumerate(table):
            yield f"{name}[{split}] row {index}", dict(row)

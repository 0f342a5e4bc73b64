"""Rows of a local dataset file, each with a location for error messages.

Formats by suffix: ``.jsonl`` (one JSON object per line; blank lines skipped; location
``file:line``), ``.json`` (a list of objects, or ``{"data": [...]}``; location ``file:item``)
and ``.parquet`` (needs ``pyarrow``; location ``file:row``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from rest_mcts.data.records import DatasetError
from rest_mcts.utils.io import jsonl_objects, read_json

Row = tuple[str, dict]
"""``(location, row)``: where the row is (``path:line``) and its fields."""


def read_rows(path: str | Path) -> Iterator[Row]:
    """Yield ``(location, row)`` for every row of a local dataset file.

    Raises:
        DatasetError: the file is missing, has an unknown suffix, is not UTF-8 or not
            JSON, or a row is not a JSON object (the message names the file and line).
    """
    file = Path(path)
    if not file.is_file():
        raise DatasetError(f"{path}: dataset file not found")
    suffix = file.suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl(file)
    elif suffix == ".json":
        yield from _json(file)
    elif suffix == ".parquet":
        yield from _parquet(file)
    else:
        raise DatasetError(f"{path}: unknown dataset format {suffix!r} (use .jsonl, .json or .parquet)")


def _jsonl(file: Path) -> Iterator[Row]:
    return jsonl_objects(file, DatasetError)


def _json(file: Path) -> Iterator[Row]:
    data = read_json(file, error=DatasetError)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DatasetError(f"{file}: expected a JSON list of objects")
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise DatasetError(f"{file}:item {index}: expected a JSON object")
        yield f"{file}:item {index}", row


def _parquet(file: Path) -> Iterator[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(f"{file}: reading parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(file)
    except Exception as err:  # noqa: BLE001 -- pyarrow's errors: not a parquet file, torn
        raise DatasetError(f"{file}: not a readable parquet file ({type(err).__name__}: "
                           f"{' '.join(str(err).split())})") from None
    for index, row in enumerate(table.to_pylist()):
        yield f"{file}:row {index + 1}", row

"""Load one dataset config into normalised records: read, normalise, check ids, select."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from rest_mcts.data.files import Row, read_rows
from rest_mcts.data.hub import read_hub_rows
from rest_mcts.data.normalise import NORMALISERS, normalise_row
from rest_mcts.data.records import DatasetError, NoGoldAnswer, ProblemRecord
from rest_mcts.data.select import select

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from and how its rows read (the ``data.*`` options).

    Attributes:
        name: dataset name (prefix of ids).
        format: row format, one of ``math``, ``gsm8k``, ``fields``, ``choice``.
        answer_type: answer type of its problems.
        path: a local ``.jsonl``/``.json``/``.parquet`` file; when set, the hub is not used.
        hub_id: dataset id on the Hugging Face hub (used when ``path`` is unset).
        hub_configs: hub subsets to read in turn (e.g. the C-Eval-Hard subjects).
        revision: the hub revision (branch, tag or commit) of ``hub_id``; None: ``main``.
        split: the split to load; None means the split the stage asks for.
        fields: field names overriding the format's defaults.
        shuffle: shuffle the records (seeded by the run's seed) before sharding.
        shard: which shard to keep (0-based).
        num_shards: how many shards the dataset is cut into.
        limit: keep at most this many records (after sharding); None: all.
        skip_no_gold: skip (with a warning naming file and line) well-formed rows whose gold
            answer cannot be found, instead of stopping; malformed rows always stop the run.
    """

    name: str
    format: str
    answer_type: str
    path: str | None = None
    hub_id: str | None = None
    hub_configs: tuple[str | None, ...] = (None,)
    revision: str | None = None
    split: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    shuffle: bool = True
    shard: int = 0
    num_shards: int = 1
    limit: int | None = None
    skip_no_gold: bool = False

    def __post_init__(self) -> None:
        if self.format not in NORMALISERS:
            raise ValueError(f"format must be one of {sorted(NORMALISERS)}, got {self.format!r}")
        if not self.path and not self.hub_id:
            raise ValueError(f"dataset {self.name!r}: set data.path (a local file) or data.hub_id")
        if self.num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {self.num_shards}")
        if not 0 <= self.shard < self.num_shards:
            raise ValueError(f"shard must be in [0, {self.num_shards}), got {self.shard}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        object.__setattr__(self, "hub_configs", tuple(self.hub_configs or (None,)))


def _rows(spec: DatasetSpec, split: str) -> Iterator[Row]:
    if spec.path:
        path = Path(spec.path).expanduser()
        logger.info("%s: reading %s (local file; the split %r is what the file holds)",
                    spec.name, path, spec.split or split)
        return read_rows(path)
    return read_hub_rows(spec.hub_id, spec.split or split, spec.hub_configs,
                         revision=spec.revision)


def read_records(spec: DatasetSpec, split: str) -> list[ProblemRecord]:
    """Every record of the dataset split, in file order; ids must be unique.

    Raises:
        DatasetError: a bad row (the message names the file and line) or a repeated id.
    """
    records: list[ProblemRecord] = []
    seen: dict[str, str] = {}
    for location, row in _rows(spec, split):
        try:
            record = normalise_row(
                row, location, fmt=spec.format, name=spec.name, answer_type=spec.answer_type,
                fields=spec.fields,
            )
        except NoGoldAnswer as err:
            if not spec.skip_no_gold:
                raise
            logger.warning("skipped: %s", err)
            continue
        if record.id in seen:
            raise DatasetError(f"{location}: id {record.id!r} repeats {seen[record.id]}")
        seen[record.id] = location
        records.append(record)
    if not records:
        raise DatasetError(f"dataset {spec.name!r} ({spec.path or spec.hub_id}) has no rows")
    return records


def load_records(spec: DatasetSpec, split: str, seed: int = 0) -> list[ProblemRecord]:
    """The records a run uses: read and normalise, then shuffle (``seed``), shard and limit."""
    records = read_records(spec, split)
    chosen = select(
        records, shuffle=spec.shuffle, seed=seed, shard=spec.shard,
        num_shards=spec.num_shards, limit=spec.limit,
    )
    logger.info("%s: %d of %d records (shard %d/%d, limit %s)", spec.name, len(chosen),
                len(records), spec.shard, spec.num_shards, spec.limit)
    return chosen

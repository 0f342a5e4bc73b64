"""Join the folders of a sharded search (``data.shard`` of ``data.num_shards``, one job each)
into one ``results.jsonl``, its trees and one metrics dict, as one unsharded run would have
written them.

Each shard's ``shard.json`` lists the questions it owes (:func:`rest_mcts.runtime.search_run.
claim_shard`). The merge keeps the first answer of a question answered more than once, and
reports, one line each, duplicated questions, missing questions (owed by a shard but without
a result), missing shards and rows a shard did not owe. Metrics are recomputed from the
merged rows (:func:`rest_mcts.runtime.search_run.summarize`), never averaged over shards.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rest_mcts.config import ConfigError
from rest_mcts.runtime.search_run import SHARD_FILE, summarize
from rest_mcts.utils.io import read_json, read_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)


@dataclass
class MergeReport:
    """What a merge found; each list item is one line for the log and ``merge.json``."""

    dirs: list[str]
    duplicated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    missing_shards: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return self.missing_shards + self.duplicated + self.missing + self.unexpected


def shard_dirs(dirs: list[str | Path] = (), sweep_dir: str | Path | None = None) -> list[Path]:
    """The shard folders: ``dirs`` as given, then every job folder of a multirun folder
    ``sweep_dir`` (its subfolders holding ``shard.json``, sorted by name)."""
    found = [Path(d) for d in dirs]
    if sweep_dir is not None:
        sweep = Path(sweep_dir)
        if not sweep.is_dir():
            raise ConfigError(f"stage.sweep_dir={sweep} is not a folder")
        found += sorted(p.parent for p in sweep.glob(f"*/{SHARD_FILE}"))
    if not found:
        raise ConfigError(
            "nothing to merge: give stage.dirs=[...] or stage.sweep_dir=<multirun folder>")
    for d in found:
        if not (d / SHARD_FILE).exists():
            raise ConfigError(f"{d}: no {SHARD_FILE} (not a stage=search|eval run folder)")
    return found


def merge_shards(dirs: list[Path], out: str | Path, copy_trees: bool = True
                 ) -> tuple[dict[str, float], MergeReport]:
    """Merge shard folders ``dirs`` into ``out`` (``results.jsonl``, ``trees/``,
    ``merge.json``). Returns the recomputed ``<prefix>/*`` metrics (plus
    ``<prefix>/duplicated_questions`` and ``<prefix>/missing_questions``) and the report."""
    out = Path(out)
    claims = [read_json(d / SHARD_FILE, dict) for d in dirs]
    prefixes = {c["prefix"] for c in claims}
    if len(prefixes) != 1:
        raise ConfigError(f"shards of different stages cannot merge: {', '.join(sorted(prefixes))}")
    counts = {c["num_shards"] for c in claims}
    if len(counts) != 1:
        raise ConfigError(f"shards of different data.num_shards cannot merge: {sorted(counts)}")
    prefix, num_shards = prefixes.pop(), counts.pop()
    report = MergeReport(dirs=[str(d) for d in dirs])
    have = {c["shard"] for c in claims}
    report.missing_shards = [f"shard {i} of {num_shards}: no folder"
                             for i in range(num_shards) if i not in have]

    # Question order of one unsharded run: shard i's j-th question is question j*n + i.
    order: dict[str, int] = {}
    for claim in claims:
        for j, qid in enumerate(claim["ids"]):
            order.setdefault(qid, j * num_shards + claim["shard"])
    kept: dict[str, tuple[dict, Path]] = {}
    seen: dict[str, list[str]] = {}
    for d, claim in zip(dirs, claims):
        owed = set(claim["ids"])
        for row in read_jsonl(d / "results.jsonl", required=("id",)):
            qid = row["id"]
            if qid not in owed:
                report.unexpected.append(f"question {qid} in {d}: not one of its shard's "
                                         "questions (ignored)")
                continue
            seen.setdefault(qid, []).append(str(d))
            kept.setdefault(qid, (row, d))
    report.duplicated = [f"question {qid}: answered {len(where)} times ({', '.join(where)}); "
                         "kept the first" for qid, where in seen.items() if len(where) > 1]
    for d, claim in zip(dirs, claims):
        report.missing += [f"question {qid} (shard {claim['shard']} of {num_shards}, {d}): "
                           "no result" for qid in claim["ids"] if qid not in kept]

    ids = sorted(kept, key=order.__getitem__)
    rows = [kept[qid][0] for qid in ids]
    write_jsonl(out / "results.jsonl", rows)
    if copy_trees:
        for qid in ids:
            tree = kept[qid][1] / "trees" / f"{qid}.json"
            if tree.exists():
                (out / "trees").mkdir(parents=True, exist_ok=True)
                shutil.copy2(tree, out / "trees" / tree.name)
    for line in report.lines():
        log.warning("%s", line)
    write_json(out / "merge.json", vars(report))
    metrics = summarize(rows, prefix=prefix)
    metrics[f"{prefix}/duplicated_questions"] = float(len(report.duplicated))
    metrics[f"{prefix}/missing_questions"] = float(len(report.missing))
    log.info("merged %d shard folders: %d questions, %d duplicated, %d missing, acc %.3f",
             len(dirs), len(rows), len(report.duplicated), len(report.missing),
             metrics[f"{prefix}/acc"])
    return metrics, report

"""What ``stage=view`` was given (:func:`write_views`), and the pages of a folder of search
runs: a loop's (``stage=loop``), a multirun's (``-m``).

A target is a tree JSON, a search run's folder (:mod:`rest_mcts.view.pages`), or a folder of
runs; anything else is one line (:class:`~rest_mcts.view.pages.TreeFileError`).

A loop folder holds one run folder per step that searched (``iter_k/search``,
``iter_k/eval_<method>``, ``iter_0/d_v0/bfs``, ...); a multirun folder (``multirun.yaml``)
one folder per job (``<n>/``, a search run itself for ``stage=search|eval``). A run folder is
one holding ``trees/*.json`` (:func:`rest_mcts.view.pages.is_run_folder`); they are found up
to :data:`DEPTH` levels below the target, never inside a run folder or a ``view/`` folder.

Each run's pages go to ``<out>/<its path under the target>/`` (its own ``index.html`` links
back), and ``<out>/index.html`` lists the runs, grouped by their first folder (the loop's
iteration, the multirun's job, with its overrides), each with its method, questions, correct
answers and accuracy (from its ``results.jsonl``). A run whose tree files hold sampled paths
(CoT, the sampling pass: no tree) is listed without pages; a multirun job with no trees (a
loop job, a failed one) with the accuracy of its ``metrics.json``, if any.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml

from rest_mcts.utils.io import FileFormatError, read_json
from rest_mcts.view.html import render_folders_html
from rest_mcts.view.pages import (
    TREES,
    TreeFileError,
    is_run_folder,
    read_results,
    write_run,
    write_tree,
)

log = logging.getLogger(__name__)

DEPTH = 4  # levels below the target searched for run folders (iter_0/d_v0/bfs is 3)
MULTIRUN = "multirun.yaml"
SKIP = {"view", TREES, ".hydra", "wandb", "checkpoints"}
ACCURACY_KEYS = ("eval/acc", "search/acc", "loop/mcts/acc", "loop/cot/acc", "eval/greedy_acc")


def natural_key(path: Path) -> list[Any]:
    """Sort key comparing numbers as numbers (``iter_2`` before ``iter_10``, job 2 before 10)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def find_runs(root: Path, depth: int = DEPTH) -> list[Path]:
    """Run folders at most ``depth`` levels below ``root``, in natural order."""
    found: list[Path] = []
    todo = [(root, 0)]
    while todo:
        folder, level = todo.pop()
        if level and is_run_folder(folder):
            found.append(folder)
            continue
        if level < depth:
            with os.scandir(folder) as entries:
                todo += [(Path(e.path), level + 1) for e in entries
                         if e.is_dir() and e.name not in SKIP and not e.name.startswith(".")]
    return sorted(found, key=natural_key)


def job_label(job: Path) -> str:
    """A multirun job's overrides (``.hydra/overrides.yaml``) as ``key=value ...``; "" when
    unreadable."""
    try:
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return ""
    return " ".join(map(str, overrides)) if isinstance(overrides, list) else ""


def metrics_accuracy(folder: Path) -> float | None:
    """The accuracy in ``folder/metrics.json`` (the first of :data:`ACCURACY_KEYS`, else any
    key ending in ``acc``); None without one."""
    try:
        metrics = read_json(folder / "metrics.json", dict)
    except (OSError, FileFormatError):
        return None
    keys = [k for k in ACCURACY_KEYS if k in metrics] or sorted(k for k in metrics
                                                                if k.endswith("acc"))
    value = metrics[keys[0]] if keys else None
    return float(value) if isinstance(value, (int, float)) else None


def holds_samples(run: Path) -> bool:
    """Are the run's tree files sampled paths (CoT, the sampling pass), not trees?"""
    first = min((run / TREES).glob("*.json"), key=natural_key)
    try:
        record = read_json(first, error=TreeFileError)
    except (OSError, FileFormatError):
        return False  # a broken file is refused with its name when its page is written
    return isinstance(record, dict) and "samples" in record and "nodes" not in record


def run_row(run: Path, rel: Path) -> dict[str, Any]:
    """A run's row of the folder index: method, questions, correct, accuracy, trees."""
    rows = list(read_results(run).values())
    correct = sum(1 for r in rows if r.get("correct") is True)
    return {"name": rel.as_posix(), "method": rows[0].get("method") if rows else None,
            "questions": len(rows), "correct": correct,
            "acc": correct / len(rows) if rows else None,
            "trees": sum(1 for _ in (run / TREES).glob("*.json"))}


def group_of(target: Path, rel: Path, multirun: bool) -> str:
    """The group a run is listed under: its first folder under the target (a job: with its
    overrides); "" for a run right below a loop folder."""
    if not multirun and len(rel.parts) == 1:
        return ""
    first = rel.parts[0]
    if not multirun:
        return first
    number = first.split("_", 1)[0]  # Hydra's job folders start with the job's number
    return f"job {number}: {job_label(target / first) or first}"


def job_rows(target: Path, runs: list[Path]) -> list[dict[str, Any]]:
    """Rows for the multirun's jobs that hold no run folder (a loop job, a failed job)."""
    with_runs = {run.relative_to(target).parts[0] for run in runs}
    jobs = sorted((p for p in target.iterdir() if (p / ".hydra").is_dir()
                   and p.name not in with_runs), key=natural_key)
    return [{"group": group_of(target, Path(job.name), True), "name": job.name,
             "acc": metrics_accuracy(job),
             "note": "no trees in this job's folder" + (
                 "" if (job / "metrics.json").is_file() else " (no metrics.json: failed?)")}
            for job in jobs]


def write_folder_views(target: Path, out: Path) -> list[Path]:
    """The pages of every run under ``target`` (a loop's or a multirun's folder) into
    ``out`` and an ``index.html`` over them (first in the list).

    Raises:
        TreeFileError: no run folder below ``target`` (and no multirun job), or a tree that
            is not a tree JSON (naming its file).
    """
    multirun = (target / MULTIRUN).is_file()
    runs = [r for r in find_runs(target) if out not in (r, *r.parents)]
    if not runs and not multirun:
        raise TreeFileError(
            f"{target}: no trees/*.json in this folder or below it: expected a tree JSON, a "
            f"search run's folder (stage=search|eval), a loop folder or a multirun folder")
    rows, written = [], []
    for run in runs:
        rel = run.relative_to(target)
        row = {"group": group_of(target, rel, multirun), **run_row(run, rel)}
        if holds_samples(run):
            row["note"] = "sampled paths, no tree to draw"
        else:
            up = "/".join([".."] * len(rel.parts)) + "/index.html"
            written += write_run(run, out / rel, back_href=up)
            row["href"] = f"{rel.as_posix()}/index.html"
        rows.append(row)
    if multirun:
        rows += job_rows(target, runs)
    rows.sort(key=lambda r: natural_key(Path(r["name"])))
    kind = "multirun" if multirun else "loop" if any(target.glob("iter_*")) else "folder"
    index = out / "index.html"
    out.mkdir(parents=True, exist_ok=True)
    index.write_text(render_folders_html(rows, title=f"search runs of {kind} {target.name}"))
    log.info("wrote %d runs' pages (%d pages) and %s", sum("href" in r for r in rows),
             len(written), index)
    return [index, *written]


def write_views(target: Path, out: Path | None = None) -> list[Path]:
    """Write the page(s) for ``target``: a tree JSON, a search run's folder, or a folder of
    runs (a loop's, a multirun's: :func:`write_folder_views`).

    Returns:
        The pages written; for a folder its ``index.html`` comes first.

    Raises:
        TreeFileError: the target is missing, holds no trees, or a tree is not a tree JSON.
    """
    target = Path(target)
    if target.is_file() and target.suffix != ".json":
        raise TreeFileError(f"{target}: not a tree JSON (a .json file), a search run's folder, "
                            f"a loop folder or a multirun folder")
    if target.is_file() or target.suffix == ".json":
        return [write_tree(target, out)]
    if not target.is_dir():
        raise TreeFileError(f"{target}: no such tree file or folder")
    run_dir = target.parent if target.name == TREES else target
    if is_run_folder(run_dir):
        return write_run(run_dir, out or run_dir / "view")
    return write_folder_views(target, out or target / "view")

"""Search a split with one method on the batching engine: trees, results.jsonl, metrics.

Search sees only ``Question``s. This runner holds the ``Problem``s and judges each result
after the search returns (evaluation), and for training-data search labels the finished
leaves of each tree with the verifier (:func:`rest_mcts.search.verify.verify_tree`), the only
place where search output meets the gold answer.

Output folder: ``shard.json`` (the questions this run owes: ``data.shard`` of
``data.num_shards``), ``trees/<id>.json``, ``results.jsonl`` (one line per question, appended whole
and fsynced after its tree file is written). Running again into the same folder skips the
questions already in results.jsonl, so a killed run completes its set with every question once;
a question found more than once (two runs that once wrote one folder at the same time)
counts once, its first row (:func:`unique_rows`).
Where the questions are searched (this process, or a pool of Ray actors) is ``ctx.executor``
(:mod:`rest_mcts.runtime.executors`); results are judged and written here alone, under every one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from rest_mcts.config import ConfigError, check_value
from rest_mcts.runtime.context import Context
from rest_mcts.search.requests import SearchResult
from rest_mcts.search.selection import judge_samples, sample_metrics
from rest_mcts.search.t_curve import curve_metrics, judge_curve
from rest_mcts.tracking.names import UNTRAINED_PRM
from rest_mcts.utils.io import append_jsonl, read_json, read_jsonl, repair_jsonl, write_json
from rest_mcts.worlds.base import Problem

log = logging.getLogger(__name__)

# The questions a run owes (its shard's ids, in order): what `stage=merge` checks against.
SHARD_FILE = "shard.json"


@dataclass(frozen=True)
class SearchRun:
    """Which questions a search covers and how (``stage=search|eval`` settings).

    Attributes:
        split: the world's split (``train``, ``val``, ``test``).
        num_problems: questions of that split (fewer when the split holds fewer).
        label_trees: verify finished leaves against the gold answer (training data).
        save_trees: write ``trees/<id>.json``.
        concurrency: questions searched side by side (their model calls are batched).
        cache_values: score each (question, partial solution) once per question.
        prefix: metric name prefix (``search`` or ``eval``).
        shard: which of ``num_shards`` disjoint parts of the questions this run searches
            (``data.shard``; :func:`shard_problems`).
        num_shards: how many jobs share the questions (``data.num_shards``).
    """

    split: str
    num_problems: int
    label_trees: bool = False
    save_trees: bool = True
    concurrency: int = 64
    cache_values: bool = True
    prefix: str = "search"
    shard: int = 0
    num_shards: int = 1

    def __post_init__(self) -> None:
        check_value("stage.num_problems", self.num_problems, 1, integer=True)
        check_value("stage.concurrency", self.concurrency, 1, integer=True)
        check_value("data.num_shards", self.num_shards, 1, integer=True)
        check_value("data.shard", self.shard, 0, self.num_shards - 1, integer=True,
                    what=f"one of data.num_shards={self.num_shards} shards")


def shard_problems(problems: list[Problem], shard: int, num_shards: int) -> list[Problem]:
    """Shard ``shard`` of ``num_shards``: every ``num_shards``-th problem from ``shard``, in
    the split's order. The shards are disjoint and together cover ``problems``; a question's
    search depends only on the run seed and the question (its sampling seeds,
    :mod:`rest_mcts.search.engine`), so merged shards answer exactly as one unsharded run."""
    return list(problems[shard::num_shards])


def run_search(
    ctx: Context,
    out_dir: str | Path,
    search: Any,
    run: SearchRun,
    *,
    policy_path: str | Path,
    prm_path: str | Path | None,
    logger: Any = False,
) -> dict[str, float]:
    """Search ``run.num_problems`` questions of ``run.split`` with the method ``search`` (a
    typed search config) into ``out_dir``; resumable. The questions are searched by
    ``ctx.executor`` (this process, or Ray actors: :mod:`rest_mcts.runtime.executors`); this
    process alone judges and writes the results. Returns ``<prefix>/*`` metrics."""
    from rest_mcts.runtime.executors import LocalExecutor

    world = ctx.world
    ctx.search_fn(search)  # a bad method is one line here, before any model or actor starts
    todo_all = shard_problems(ctx.problems(run.split, run.num_problems, at_most=True),
                              run.shard, run.num_shards)
    out = Path(out_dir)
    claim_shard(out, run, [p.id for p in todo_all])
    results_path = out / "results.jsonl"
    if repair_jsonl(results_path):
        log.warning("%s: dropped a torn last line (killed writer)", results_path)
    done = {row["id"] for row in unique_rows(results_path)}
    todo = [p for p in todo_all if p.id not in done]
    if done:
        log.info("resuming: %d of %d questions already done", len(done), len(todo_all))

    executor = ctx.executor or LocalExecutor()
    stats: dict[str, float] = {}
    by_id = {p.id: p for p in todo}
    results = executor.search(ctx, search, run, [(p.id, p.question) for p in todo],
                              policy_path=policy_path, prm_path=prm_path, stats=stats)
    for qid, result in results:  # pop: no question is ever recorded twice
        record_result(world, search.name, run, by_id.pop(qid), result, out)

    wanted = {p.id for p in todo_all}
    rows = [r for r in unique_rows(results_path, warn=False) if r["id"] in wanted]
    metrics = summarize(rows, prefix=run.prefix)
    metrics["engine/overhead_share"] = stats.get("overhead_share", 0.0)
    # 1: the values came from an untrained head (sweeps and reports mark such runs)
    metrics[UNTRAINED_PRM] = float(not prm_path and ctx.scores_with_untrained_head(search))
    metrics.update({k: v for k, v in stats.items() if k.startswith("executor/")})
    log.info("%s on %d %s questions: acc %.3f, %.0f policy tokens/question", search.name,
             len(rows), run.split, metrics[f"{run.prefix}/acc"],
             metrics[f"{run.prefix}/policy_tokens_per_question"])
    return metrics


def unique_rows(path: Path, warn: bool = True) -> list[dict]:
    """The rows of ``results.jsonl``, each question once (its first row); with ``warn``, one
    warning line naming the file and how many duplicate rows were dropped."""
    rows: dict[str, dict] = {}
    total = 0
    for row in read_jsonl(path, required=("id",)):
        total += 1
        rows.setdefault(row["id"], row)
    if warn and total > len(rows):
        log.warning("%s: dropped %d duplicate rows (questions answered more than once; kept "
                    "the first)", path, total - len(rows))
    return list(rows.values())


def claim_shard(out: Path, run: SearchRun, ids: list[str]) -> None:
    """Write ``shard.json`` (the questions this run owes); a folder that already holds
    another shard is refused in one line (shards never share a folder)."""
    claim = {"split": run.split, "prefix": run.prefix, "shard": run.shard,
             "num_shards": run.num_shards, "ids": ids}
    path = out / SHARD_FILE
    if path.exists():
        old = read_json(path, dict)
        if (old.get("shard"), old.get("num_shards")) != (run.shard, run.num_shards):
            raise ConfigError(
                f"{out} holds shard {old.get('shard')} of {old.get('num_shards')}, not data.shard="
                f"{run.shard} of data.num_shards={run.num_shards}: give each shard its own folder")
    write_json(path, claim)


def record_result(
    world: Any, method: str, run: SearchRun, problem: Problem, result: SearchResult, out: Path
) -> None:
    """Judge one finished search against its Problem; write its tree, then its result line.
    A T curve (MCTS*'s ``info["t_curve"]``) is judged the same way into the row's ``t_curve``,
    and the samples of the sampled pass (``info["paths"]``) into the row's ``samples``
    (:func:`rest_mcts.search.selection.judge_samples`)."""
    correct = bool(result.finished and world.is_correct(problem, list(result.steps)))
    info = dict(result.info)
    curve = info.pop("t_curve", None)
    paths = info.pop("paths", None)
    row = {
        "id": problem.id,
        "question": problem.question.text,
        "method": method,
        "prediction": result.answer,
        "steps": list(result.steps),
        "finished": result.finished,
        "value": result.value,
        "gold": problem.gold,
        "correct": correct,
        "costs": result.costs.to_dict(),
        "info": info,
    }
    if curve:
        row["t_curve"] = judge_curve(curve, lambda steps: world.is_correct(problem, steps))
    if paths:
        row["samples"] = judge_samples(paths, lambda steps: world.is_correct(problem, steps))
    if run.save_trees and result.tree is not None:
        tree_record = result.tree
        if run.label_trees and isinstance(tree_record, dict) and "nodes" in tree_record:
            tree_record = label_tree(tree_record, problem, world)
            row["correct_leaves"] = sum(1 for n in tree_record["nodes"] if n.get("correct"))
        write_json(out / "trees" / f"{problem.id}.json", tree_record)
    append_jsonl(out / "results.jsonl", [row])


def label_tree(tree_record: dict, problem: Problem, world: Any) -> dict:
    """Training data only: verify every finished leaf of a search tree against the gold."""
    from rest_mcts.search.tree import Tree
    from rest_mcts.search.verify import verify_tree

    tree = Tree.from_dict(tree_record)
    verify_tree(tree, problem, world)
    return {**tree_record, **tree.to_dict()}  # extra keys (MCTS*'s trace) kept


def summarize(rows: Iterable[dict], prefix: str) -> dict[str, float]:
    """Accuracy and mean costs over result rows, the T curve's points where rows carry one
    (:func:`rest_mcts.search.t_curve.curve_metrics`) and the sample-selection rules at each N
    where rows carry samples (:func:`rest_mcts.search.selection.sample_metrics`)."""
    rows = list(rows)
    n = max(1, len(rows))

    def mean(key: str) -> float:
        return sum(r["costs"].get(key, 0) for r in rows) / n

    return {
        f"{prefix}/num_questions": float(len(rows)),
        f"{prefix}/acc": sum(r["correct"] for r in rows) / n,
        f"{prefix}/finished_rate": sum(r["finished"] for r in rows) / n,
        f"{prefix}/policy_tokens_per_question": mean("policy_tokens"),
        f"{prefix}/prompt_tokens_per_question": mean("prompt_tokens"),
        f"{prefix}/prm_calls_per_question": mean("prm_calls"),
        f"{prefix}/policy_calls_per_question": mean("policy_calls"),
        f"{prefix}/wall_seconds_per_question": mean("wall_seconds"),
        **curve_metrics(rows, prefix),
        **sample_metrics(rows, prefix),
    }

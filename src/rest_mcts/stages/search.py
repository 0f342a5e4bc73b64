"""stage=search and stage=eval: run a search method over many questions on the engine.

Search sees only `Question`s. The stage holds the `Problem`s and judges each result after
the search returns (evaluation), and for training-data search labels the finished leaves of
each tree with the verifier (`search.verify.verify_tree`), the only place where search
output meets the gold answer.

Output folder (`paths.output_dir`, i.e. Hydra's run dir): `trees/<id>.json`,
`results.jsonl` (one line per question, appended whole and fsynced after its tree file is
written) and `metrics.json`. Running again with the same `hydra.run.dir` skips the questions
already in results.jsonl, so a killed run completes its set with every question once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from omegaconf import DictConfig

from rest_mcts.config import ConfigError
from rest_mcts.search.requests import SearchResult
from rest_mcts.stages.common import (
    build_policy_backend,
    build_scorer,
    build_world,
    problems,
    resolve_policy_path,
)
from rest_mcts.training.loggers import build_logger, log_and_finish
from rest_mcts.utils.io import append_jsonl, read_jsonl, repair_jsonl, write_json
from rest_mcts.worlds.base import Problem

log = logging.getLogger(__name__)


def search(cfg: DictConfig) -> dict[str, float]:
    """stage=search: search a split (default: train) and write trees and results."""
    return run_search_stage(cfg)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """stage=eval: accuracy of `cfg.search` on a held-out split."""
    return run_search_stage(cfg)


def run_search_stage(cfg: DictConfig) -> dict[str, float]:
    from rest_mcts.search.engine import SearchEngine
    from rest_mcts.search.registry import make_search, needs_scorer

    world = build_world(cfg)
    try:
        search_fn = make_search(cfg.search, world, max_solution_tokens=cfg.data.max_solution_tokens)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from err
    todo_all = problems(cfg, world, cfg.stage.split, cfg.stage.num_problems, at_most=True)
    out = Path(cfg.paths.output_dir)
    results_path = out / "results.jsonl"
    if repair_jsonl(results_path):
        log.warning("%s: dropped a torn last line (killed writer)", results_path)
    done = {row["id"] for row in read_jsonl(results_path)}
    todo = [p for p in todo_all if p.id not in done]
    if done:
        log.info("resuming: %d of %d questions already done", len(done), len(todo_all))

    policy_path = resolve_policy_path(cfg)
    policy = build_policy_backend(cfg, policy_path)
    scorer = build_scorer(cfg, policy_path, world) if needs_scorer(cfg.search.name) else None
    engine = SearchEngine(
        policy, scorer, concurrency=cfg.stage.concurrency, seed=cfg.seed,
        cache_values=cfg.stage.get("cache_values", True),
    )

    by_id = {p.id: p for p in todo}
    jobs = ((p.id, search_fn(p.question)) for p in todo)
    for qid, result in engine.run(jobs, total=len(todo)):
        record_result(cfg, world, by_id[qid], result, out, results_path)

    wanted = {p.id for p in todo_all}
    rows = [r for r in read_jsonl(results_path) if r["id"] in wanted]
    prefix = cfg.stage.name
    metrics = summarize(rows, prefix=prefix)
    metrics["engine/overhead_share"] = engine.stats.get("overhead_share", 0.0)
    log.info(
        "%s on %d %s questions: acc %.3f, %.0f policy tokens/question",
        cfg.search.name, len(rows), cfg.stage.split,
        metrics[f"{prefix}/acc"], metrics[f"{prefix}/policy_tokens_per_question"],
    )
    log_and_finish(build_logger(cfg.get("logger"), out), metrics)
    return metrics


def record_result(
    cfg: DictConfig, world, problem: Problem, result: SearchResult, out: Path, results_path: Path
) -> None:
    """Judge one finished search against its Problem; write its tree, then its result line."""
    correct = bool(result.finished and world.is_correct(problem, list(result.steps)))
    row = {
        "id": problem.id,
        "question": problem.question.text,
        "method": cfg.search.name,
        "prediction": result.answer,
        "steps": list(result.steps),
        "finished": result.finished,
        "value": result.value,
        "gold": problem.gold,
        "correct": correct,
        "costs": result.costs.to_dict(),
        "info": result.info,
    }
    if cfg.stage.save_trees and result.tree is not None:
        tree_record = result.tree
        if cfg.stage.label_trees and isinstance(tree_record, dict) and "nodes" in tree_record:
            tree_record = label_tree(tree_record, problem, world)
            row["correct_leaves"] = sum(1 for n in tree_record["nodes"] if n.get("correct"))
        write_json(out / "trees" / f"{problem.id}.json", tree_record)
    append_jsonl(results_path, [row])


def label_tree(tree_record: dict, problem: Problem, world) -> dict:
    """Training data only: verify every finished leaf of a search tree against the gold."""
    from rest_mcts.search.tree import Tree
    from rest_mcts.search.verify import verify_tree

    tree = Tree.from_dict(tree_record)
    verify_tree(tree, problem, world)
    return tree.to_dict()


def summarize(rows: Iterable[dict], prefix: str) -> dict[str, float]:
    """Accuracy and mean costs over result rows."""
    rows = list(rows)
    n = max(1, len(rows))
    mean = lambda key: sum(r["costs"].get(key, 0) for r in rows) / n  # noqa: E731
    return {
        f"{prefix}/num_questions": float(len(rows)),
        f"{prefix}/acc": sum(r["correct"] for r in rows) / n,
        f"{prefix}/finished_rate": sum(r["finished"] for r in rows) / n,
        f"{prefix}/policy_tokens_per_question": mean("policy_tokens"),
        f"{prefix}/prm_calls_per_question": mean("prm_calls"),
        f"{prefix}/policy_calls_per_question": mean("policy_calls"),
        f"{prefix}/wall_seconds_per_question": mean("wall_seconds"),
    }


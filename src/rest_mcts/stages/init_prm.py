"""stage=init_prm: the initial PRM data D_V0 and PRM_0 (Algorithm 1, line 1 of the paper).

Two ways, as in the paper (``stage.method``):

* ``bfs`` -- tree sampling: a full breadth-first tree of ``branch`` children per node is
  sampled from the base policy for each training question (``search=bfs`` with a beam that
  keeps every node), its finished leaves are verified against the gold answer, and every
  node of a tree with a correct leaf gets its quality value v_k as target
  (:func:`rest_mcts.stages.extract.extract_data`).
* ``reference`` -- reference solutions: every prefix of a correct solution is a positive
  sample with its quality value (a correct chain of K steps: v_k = k / K), and one step
  written by a weaker model after each prefix is a negative (r = 1: v drops by
  ``(1 - v_{k-1}) / (m_{k-1} + 1)``, clamped at 0, Eq. (1)-(2)). The weaker model is any
  policy the configured backend serves (``stage.weak_model``, default the base policy),
  sampled at ``stage.weak_temperature``.

Then PRM_0 is trained on D_V0 from the policy backbone with a fresh regression head.

    python run.py stage=init_prm                         # bfs on stage.num_problems questions
    python run.py stage=init_prm stage.method=reference
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from rest_mcts.config import ConfigError
from rest_mcts.stages.common import build_policy_backend, build_world, problems
from rest_mcts.stages.subrun import run_search_in, search_config
from rest_mcts.utils.io import append_jsonl, write_json
from rest_mcts.worlds.base import Problem

log = logging.getLogger(__name__)

METHODS = ("bfs", "reference")


def bfs_tree_config(cfg: DictConfig, init: DictConfig) -> DictConfig:
    """``search=bfs`` whose beam keeps every node: a full tree of ``init.branch`` children per
    node down to ``init.max_depth`` steps (branch ** max_depth leaves at most)."""
    full_beam = int(init.branch) ** int(init.max_depth)
    return search_config(cfg, "bfs", {
        "branch": int(init.branch), "beam_width": full_beam, "max_depth": int(init.max_depth),
        "temperature": float(init.temperature),
    })


def sample_bfs_trees(
    cfg: DictConfig, init: DictConfig, out_dir: str | Path, split: str, num_problems: int,
    policy_path: str | Path,
) -> Path:
    """Verified full BFS trees of the base policy into ``out_dir/trees`` (resumable)."""
    run_search_in(
        cfg, out_dir, search=bfs_tree_config(cfg, init), split=split, num_problems=num_problems,
        policy_path=policy_path, prm_path=None, label_trees=True,
    )
    return Path(out_dir) / "trees"


def reference_rows(
    problem_list: Sequence[Problem], world, weak_backend, *, temperature: float,
    max_step_tokens: int, seed: int,
) -> list[dict]:
    """D_V0 from reference solutions: positives along each solution, one weak step after
    every prefix as a negative. Problems without a reference solution (and no solver) are
    skipped."""
    from rest_mcts.backends.base import SamplingParams
    from rest_mcts.prompts import first_line, policy_prompt, prompt_format
    from rest_mcts.search.value import quality_value

    chains: list[tuple[Problem, list[str]]] = []
    for problem in problem_list:
        steps = list(problem.reference_steps) or list(_solve(world, problem, seed) or [])
        if steps:
            chains.append((problem, steps))
    rows: list[dict] = []
    prompts: list[str] = []
    negatives: list[tuple[Problem, list[str], float, int]] = []
    fmt = prompt_format(world)
    for problem, steps in chains:
        k_total = len(steps)
        value = 0.0
        for k in range(k_total + 1):
            prefix = steps[:k]
            if k:
                value = quality_value(value, k_total - k, 0)
                rows.append(_row(problem, prefix, value, "reference"))
            if k < k_total:  # a weak step after this prefix: distance stays k_total - k
                prompts.append(policy_prompt(problem.question.text, prefix, fmt))
                negatives.append((problem, prefix, value, k_total - k))
    params = SamplingParams(
        n=1, temperature=temperature, max_new_tokens=max_step_tokens, stop=("\n",), seed=seed
    )
    outputs = weak_backend.generate(prompts, params) if prompts else []
    for (problem, prefix, value, distance), output in zip(negatives, outputs):
        step = first_line(output.completions[0].text)
        reference_next = _reference_next(chains, problem, len(prefix))
        if not step.strip() or step == reference_next:
            continue  # the weak model wrote the reference step itself: not a negative
        rows.append(_row(problem, prefix + [step], quality_value(value, distance, 1), "weak"))
    return rows


def _reference_next(chains, problem: Problem, k: int) -> str | None:
    for owner, steps in chains:
        if owner.id == problem.id:
            return steps[k] if k < len(steps) else None
    return None


def _solve(world, problem: Problem, seed: int) -> list[str] | None:
    """A shortest correct solution from the world's solver, when it has one."""
    import random

    solver = getattr(world, "correct_trace", None)
    if solver is None:
        return None
    return solver(problem, random.Random(f"{seed}|{problem.id}"), shortest=True)


def _row(problem: Problem, steps: list[str], target: float, source: str) -> dict:
    return {"question": problem.question.text, "steps": list(steps), "target": target,
            "question_id": problem.id, "source": source}


def build_d_v0(
    cfg: DictConfig, init: DictConfig, out_dir: str | Path, policy_path: str | Path
) -> dict[str, float]:
    """Write D_V0 to ``out_dir/d_v.jsonl`` by ``init.method``; returns counts."""
    from rest_mcts.stages.extract import extract_data

    out = Path(out_dir)
    if init.method not in METHODS:
        raise ConfigError(f"stage.method='{init.method}' is not one of {list(METHODS)}")
    if init.method == "bfs":
        trees = sample_bfs_trees(cfg, init, out / "bfs", "train", init.num_problems, policy_path)
        counts = extract_data(trees, out)
        return {k.replace("extract/", "d_v0/"): v for k, v in counts.items()}
    world = build_world(cfg)
    chosen = problems(cfg, world, "train", init.num_problems, at_most=True)
    weak = build_policy_backend(cfg, init.weak_model or policy_path)
    rows = reference_rows(
        chosen, world, weak, temperature=init.weak_temperature,
        max_step_tokens=int(init.max_step_tokens), seed=cfg.seed,
    )
    tmp = out / ".d_v.jsonl.tmp"
    tmp.unlink(missing_ok=True)
    append_jsonl(tmp, rows)
    tmp.touch()
    tmp.replace(out / "d_v.jsonl")
    counts = {
        "d_v0/d_v_rows": float(len(rows)),
        "d_v0/positives": float(sum(r["source"] == "reference" for r in rows)),
        "d_v0/negatives": float(sum(r["source"] == "weak" for r in rows)),
    }
    write_json(out / "counts.json", counts)
    return counts


def init_prm(cfg: DictConfig) -> dict[str, float]:
    """stage=init_prm: D_V0 into the run folder, then PRM_0 into ``<run>/prm``."""
    from rest_mcts.stages.common import resolve_policy_path
    from rest_mcts.stages.train_prm import train_prm_model
    from rest_mcts.training.loggers import build_logger, log_and_finish

    out = Path(cfg.paths.output_dir)
    policy_path = resolve_policy_path(cfg)
    metrics = build_d_v0(cfg, cfg.stage, out, policy_path)
    logger = build_logger(cfg.get("logger"), out)
    metrics.update(train_prm_model(cfg, [out / "d_v.jsonl"], out / "prm", policy_path,
                                   logger=logger, val_share=cfg.stage.val_share))
    log_and_finish(logger, metrics)
    return metrics

"""The initial PRM data D_V0 (Algorithm 1, line 1 of the paper), by either of its recipes.

* ``bfs`` -- tree sampling: a full breadth-first tree of ``branch`` children per node is
  sampled from the base policy for each training question (``search=bfs`` with a beam that
  keeps every node), its finished leaves are verified against the gold answer, and the
  nodes of a tree with a correct leaf (those on root-to-finished-leaf paths, or every legal
  one: ``d_v_nodes``) get their quality value v_k as target
  (:func:`rest_mcts.loop.data.d_v_rows`).
* ``reference`` -- reference solutions: every prefix of a correct solution is a positive
  sample with its quality value (a correct chain of K steps: v_k = k / K), and one step
  written by a weaker model after each prefix is a negative (r = 1: v drops by
  ``(1 - v_{k-1}) / (m_{k-1} + 1)``, clamped at 0, Eq. (1)-(2)). The weaker model is any
  policy the configured backend serves (``weak_model``, default the base policy), sampled at
  ``weak_temperature``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rest_mcts.backends.registry import close_backend
from rest_mcts.config import ConfigError, Knobs, knob
from rest_mcts.runtime.context import Context
from rest_mcts.loop.data import d_v_rows, extract_data, load_trees
from rest_mcts.runtime.search_run import SearchRun, run_search
from rest_mcts.utils.io import write_json, write_jsonl
from rest_mcts.worlds.base import Problem

log = logging.getLogger(__name__)

METHODS = ("bfs", "reference")


@dataclass(frozen=True)
class InitPRMSettings(Knobs):
    """How D_V0 is made (``stage.init_prm`` in the loop, ``stage.*`` in ``stage=init_prm``).

    Attributes:
        method: ``bfs`` (tree sampling) or ``reference`` (reference solutions + weak negatives).
        num_problems: training questions.
        branch: children per node of the BFS trees.
        max_depth: steps per BFS path (``branch ** max_depth`` leaves at most).
        temperature: sampling temperature of the BFS trees.
        max_step_tokens: token cap of one weak step (reference).
        weak_model: the weaker policy writing negatives (None: the base policy).
        weak_temperature: its sampling temperature.
        concurrency: questions searched side by side.
        cache_values: value memo per question (BFS asks no values; kept for symmetry).
        option: config prefix of these settings, for messages.
    """

    method: str = knob("bfs", choices=tuple(METHODS),
                       message="{key}='{value}' is not one of {allowed}")
    num_problems: int = knob(1000, low=1, integer=True)
    branch: int = knob(3, low=1, integer=True)
    max_depth: int = knob(3, low=1, integer=True)
    temperature: float = knob(1.0, low=0)
    max_step_tokens: int = knob(48, low=1, integer=True)
    weak_model: str | None = None
    weak_temperature: float = knob(1.5, low=0)
    concurrency: int = knob(64, low=1, integer=True)
    cache_values: bool = True
    option: str = "stage"

    def knob_prefix_of(self) -> str:
        return self.option

    def bfs_search(self):
        """``search=bfs`` whose beam keeps every node: a full tree of ``branch`` children per
        node down to ``max_depth`` steps, sampled without a PRM (no value is asked for:
        targets come from verifying the leaves)."""
        from rest_mcts.search.configs import search_config

        return search_config("bfs", branch=self.branch, beam_width=self.branch ** self.max_depth,
                             max_depth=self.max_depth, temperature=self.temperature,
                             score=False)


def sample_bfs_trees(
    ctx: Context, init: InitPRMSettings, out_dir: str | Path, split: str, num_problems: int,
    policy_path: str | Path,
) -> Path:
    """Verified full BFS trees of the base policy into ``out_dir/trees`` (resumable)."""
    run = SearchRun(split=split, num_problems=int(num_problems), label_trees=True,
                    concurrency=init.concurrency, cache_values=init.cache_values)
    run_search(ctx, out_dir, init.bfs_search(), run, policy_path=policy_path, prm_path=None)
    return Path(out_dir) / "trees"


def prm_eval_set(
    ctx: Context, init: InitPRMSettings, folder: Path, num_problems: int, policy_path: str
) -> dict:
    """The fixed PRM validation set: full BFS trees of the base policy on val questions,
    every legal node a row (trees without a correct leaf give target 0): it measures the PRM
    on every step the policy writes, whatever ``d_v_nodes`` the training data uses."""
    trees_dir = sample_bfs_trees(ctx, init, folder, "val", num_problems, policy_path)
    rows = d_v_rows(load_trees(trees_dir), require_correct_leaf=False, nodes="all")
    write_jsonl(folder / "d_v.jsonl", rows)
    return {"file": str(folder / "d_v.jsonl"), "rows": len(rows)}


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
    reference = {problem.id: steps for problem, steps in chains}
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
        if not step.strip() or step == reference[problem.id][len(prefix)]:
            continue  # the weak model wrote the reference step itself: not a negative
        rows.append(_row(problem, prefix + [step], quality_value(value, distance, 1), "weak"))
    return rows


def _solve(world, problem: Problem, seed: int) -> list[str] | None:
    """A shortest correct solution from the world's solver, when it has one."""
    solver = getattr(world, "correct_trace", None)
    if solver is None:
        return None
    return solver(problem, random.Random(f"{seed}|{problem.id}"), shortest=True)


def _row(problem: Problem, steps: list[str], target: float, source: str) -> dict:
    return {"question": problem.question.text, "steps": list(steps), "target": target,
            "question_id": problem.id, "source": source}


def require_rows(init: InitPRMSettings, rows: float) -> None:
    """Stop in one line, before PRM_0 is trained on nothing, when D_V0 came out empty.

    Raises:
        ConfigError: no row, naming the options that make some.
    """
    if rows:
        return
    o = init.option
    if init.method == "bfs":
        raise ConfigError(
            f"D_V0 is empty: none of the {init.num_problems} BFS trees has a correct leaf within "
            f"{o}.max_depth={init.max_depth} steps (raise {o}.max_depth or {o}.num_problems, "
            f"or set {o}.method=reference)")
    raise ConfigError(
        f"D_V0 is empty: none of the {init.num_problems} questions has a reference solution "
        f"({o}.method=reference needs them; set {o}.method=bfs)")


def build_d_v0(
    ctx: Context, init: InitPRMSettings, out_dir: str | Path, policy_path: str | Path,
    d_v_nodes: str = "paths",
) -> dict[str, float]:
    """Write D_V0 to ``out_dir/d_v.jsonl`` by ``init.method``; returns ``d_v0/*`` counts.
    ``d_v_nodes`` (``paths`` | ``all``) picks the BFS trees' nodes, as for every D_V_k."""
    out = Path(out_dir)
    if init.method == "bfs":
        trees = sample_bfs_trees(ctx, init, out / "bfs", ctx.pool("d_v0"), init.num_problems,
                                 policy_path)
        counts = extract_data(trees, out, d_v_nodes=d_v_nodes)
        require_rows(init, counts["extract/d_v_rows"])
        return {k.replace("extract/", "d_v0/"): v for k, v in counts.items()}
    chosen = ctx.problems(ctx.pool("d_v0"), init.num_problems, at_most=True)
    weak = ctx.build_policy(init.weak_model or policy_path)
    try:
        rows = reference_rows(chosen, ctx.world, weak, temperature=init.weak_temperature,
                              max_step_tokens=init.max_step_tokens, seed=ctx.seed)
    finally:
        close_backend(weak)
    write_jsonl(out / "d_v.jsonl", rows)
    require_rows(init, len(rows))
    counts = {
        "d_v0/d_v_rows": float(len(rows)),
        "d_v0/positives": float(sum(r["source"] == "reference" for r in rows)),
        "d_v0/negatives": float(sum(r["source"] == "weak" for r in rows)),
    }
    write_json(out / "counts.json", counts)
    return counts

"""Held-out evaluation of the models of one iteration.

* :func:`evaluate_policy_at` -- the policy alone: greedy (CoT) accuracy, step legality, pass@N.
* :func:`evaluate_iteration` -- the loop's row: every method of ``stage.eval_methods``
  (:data:`EVAL_METHODS`) at equal policy tokens per question next to MCTS*, and the PRM on a
  fixed validation set.
* :func:`prm_validation` -- the PRM against D_V targets and, with the world's oracle, the
  exact quality values (error, rank correlation, sibling ranking accuracy).

Equal tokens. MCTS* (the configured ``search``) and greedy CoT run first; the sampling
methods -- self-consistency, best-of-N with PRM_k and the PRM-weighted vote -- then share ONE
N, :func:`matched_n`: ceil(MCTS* policy tokens per question / CoT tokens per question),
capped by ``stage.sc_max_n``, so each spends about MCTS*'s tokens (a sampled solution is about
as long as the greedy one). BFS with PRM_k gets a beam sized from the same N
(:func:`bfs_at`). MCTS* with widening is the configured search with ``widen=true``; it spends
what it spends. Every method's tokens per question are in the table, so "equal" can be checked.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rest_mcts.backends.registry import close_backend
from rest_mcts.config import ConfigError, check_value
from rest_mcts.loop.context import Context
from rest_mcts.loop.search_run import SearchRun, run_search
from rest_mcts.loop.steps import StepRunner
from rest_mcts.loop.train import value_oracle

log = logging.getLogger(__name__)

# name (step ``iter_k/eval_<name>``, ``stage.eval_methods``): (column prefix, table header).
# The prefixes cot, sc and mcts are the columns of older tables.
EVAL_METHODS: dict[str, tuple[str, str]] = {
    "cot": ("cot", "CoT"),
    "self_consistency": ("sc", "SC"),
    "best_of_n": ("best_of_n", "BoN (PRM)"),
    "weighted_vote": ("weighted_vote", "vote (PRM)"),
    "bfs": ("bfs", "BFS (PRM)"),
    "mcts_star": ("mcts", "MCTS*"),
    "mcts_star_widen": ("mcts_widen", "MCTS* widen"),
}
# Sampling methods: n solutions each, one N shared by the three (matched_n).
SAMPLED = ("self_consistency", "best_of_n", "weighted_vote")
# Methods whose budget is matched to MCTS*'s tokens: they need cot and mcts_star evaluated.
MATCHED = (*SAMPLED, "bfs")


@dataclass(frozen=True)
class PolicyEval:
    """The policy's own evaluation in the loop (``stage.policy_eval``): greedy accuracy and
    pass@``samples`` at ``temperature`` on ``num_problems`` held-out questions -- more than the
    search methods get, because the policy's gain is a few points and 200 questions give a
    standard error of about 2.5 points."""

    num_problems: int = 1000
    samples: int = 8
    temperature: float = 1.0
    option: str = field(default="stage.policy_eval", repr=False)

    def __post_init__(self) -> None:
        check_value(f"{self.option}.num_problems", self.num_problems, 1, integer=True)
        check_value(f"{self.option}.samples", self.samples, 1, integer=True)
        check_value(f"{self.option}.temperature", self.temperature, 0)


def check_eval_methods(option: str, methods: Any) -> tuple[str, ...]:
    """``stage.eval_methods`` as a tuple of names from :data:`EVAL_METHODS` (in table order);
    raises ConfigError (one line naming ``option`` and the allowed names) for anything else,
    an empty list, or a matched method without the ``cot`` and ``mcts_star`` runs its budget
    comes from."""
    allowed = list(EVAL_METHODS)
    if isinstance(methods, str) or not isinstance(methods, (list, tuple)) or not methods:
        raise ConfigError(f"{option}={methods!r} must be a non-empty list of {allowed}")
    unknown = [m for m in methods if m not in EVAL_METHODS]
    if unknown:
        raise ConfigError(f"{option}: {', '.join(map(str, unknown))} not one of {allowed}")
    matched = [m for m in methods if m in MATCHED]
    missing = [m for m in ("cot", "mcts_star") if m not in methods]
    if matched and missing:
        raise ConfigError(f"{option}: {', '.join(matched)} need(s) {' and '.join(missing)} "
                          "too (their budget matches MCTS* tokens over CoT tokens)")
    return tuple(m for m in allowed if m in methods)


def matched_n(mcts_tokens: float, cot_tokens: float, cap: int) -> int:
    """N samples for about MCTS*'s policy tokens per question: ceil(mcts_tokens /
    cot_tokens) (a CoT below one token counts as one), at least 1 and at most ``cap``."""
    n = max(1, math.ceil(mcts_tokens / max(1.0, cot_tokens)))
    return min(n, int(cap))


def bfs_at(mcts: Any, n: int) -> Any:
    """BFS with PRM_k at about the tokens of N sampled solutions, on MCTS*'s step settings.

    BFS generates ``branch`` steps under each of at most ``beam_width`` frontier nodes per
    depth, so a full-length search costs about ``beam_width * branch`` solutions' worth of
    steps (the first depth, with only the root, costs less). We keep MCTS*'s branch b (the
    paper's 3; BFS's default is 3 too) and set ``beam_width = ceil(N / b)``, so
    ``beam_width * b`` is N or just above: the tokens land in the range of the sampling
    methods'. It is an estimate made before the run, not a measured match (the frontier
    shrinks when paths finish or turn illegal, and a cut-short search spends less); the
    table shows BFS's real tokens per question. Depth cap, step token cap and temperature
    are MCTS*'s, so BFS searches the same step space.
    """
    from rest_mcts.search.configs import search_config

    return search_config("bfs", branch=mcts.branch, beam_width=max(1, math.ceil(n / mcts.branch)),
                         max_depth=mcts.max_depth, temperature=mcts.temperature,
                         max_step_tokens=mcts.max_step_tokens)


STEP_SKILL_PROBLEMS = 200  # questions whose states measure the step skill per depth


def evaluate_policy_at(
    ctx: Context, model_path: str | Path, *, num_problems: int, samples: int,
    temperature: float, split: str = "test", step_temperature: float = 0.7,
) -> dict[str, float]:
    """Greedy accuracy, step legality and pass@N of the policy at ``model_path``, and (worlds
    with an oracle) its step skill per depth at ``step_temperature`` (the search's) against a
    random legal move, on the first :data:`STEP_SKILL_PROBLEMS` questions
    (:func:`rest_mcts.search.evaluation.step_skill`)."""
    from rest_mcts.search.evaluation import evaluate_policy, step_skill

    test = ctx.problems(split, num_problems, at_most=True)
    policy = ctx.build_policy(model_path)
    try:
        metrics = evaluate_policy(
            policy, ctx.world, test, samples=samples, temperature=temperature,
            max_new_tokens=ctx.max_solution_tokens, seed=ctx.seed,
        )
        metrics.update(step_skill(policy, ctx.world, test[:STEP_SKILL_PROBLEMS], samples=8,
                                  temperature=step_temperature, seed=ctx.seed))
        return metrics
    finally:
        close_backend(policy)


def prm_validation(ctx: Context, prm: str, data_file: str) -> dict[str, float]:
    """The PRM at ``prm`` on D_V rows: ``val/mse``, ``val/acc@0.1`` and, with the world's
    oracle, ``val/oracle_mse``, ``val/oracle_mae``, ``val/oracle_acc@0.1``,
    ``val/oracle_spearman``, ``val/sibling_acc`` and ``val/sibling_pairs``
    (:func:`rest_mcts.training.prm_metrics.value_metrics`)."""
    from rest_mcts.training.prm_metrics import value_metrics
    from rest_mcts.training.prm_data import read_value_rows

    rows = read_value_rows(data_file)
    scorer = ctx.build_scorer(prm, None)
    try:
        preds = scorer.score([(r.question, tuple(r.steps)) for r in rows])
    finally:
        close_backend(scorer)
    return value_metrics(preds, rows, value_oracle(ctx.world))


def evaluate_iteration(
    ctx: Context, runner: StepRunner, k: int, *, policy: str, prm: str, mcts: Any,
    eval_run: SearchRun, prm_eval_file: str, sc_max_n: int, extra: dict[str, Any],
    methods: tuple[str, ...] = tuple(EVAL_METHODS), policy_eval: PolicyEval | None = None,
) -> dict[str, Any]:
    """Held-out evaluation of iteration k, each method its own resumable step
    ``iter_k/eval_<name>``, then the PRM metrics (``iter_k/eval_prm``).

    ``methods`` (names of :data:`EVAL_METHODS`, checked by :func:`check_eval_methods`) run in
    this order: CoT, MCTS* (``mcts``, the configured typed MCTS* config) with PRM_k, the
    sampling methods at the shared N (:func:`matched_n`), BFS at :func:`bfs_at`, MCTS* with
    ``widen=true`` (when ``mcts`` already widens, that is the same search: its numbers are
    reused, nothing runs twice). With ``policy_eval``, the policy alone first
    (``iter_k/eval_policy``: greedy accuracy and pass@N on its own, larger question set).

    Returns:
        The iteration's row of the results table: ``<prefix>/acc`` and ``<prefix>/tokens``
        (policy tokens per question) per method, ``<prefix>/prm_calls`` for the PRM-guided
        ones, ``sc/n`` (the shared N), ``bfs/beam_width``, ``policy/greedy_acc``,
        ``policy/pass@N`` and ``policy/legal_step_rate``, ``prm/*`` and ``extra``.
    """
    from rest_mcts.search.configs import search_config
    from rest_mcts.search.registry import config_needs_scorer

    it = f"iter_{k}"
    inputs = {"policy": policy, "prm": prm}
    row: dict[str, Any] = {"iteration": k}

    def run_eval(name: str, search: Any) -> dict[str, Any]:
        prm_path = prm if config_needs_scorer(search) else None
        metrics = runner.run(
            f"{it}/eval_{name}",
            lambda d: run_search(ctx, d, search, eval_run, policy_path=policy, prm_path=prm_path),
            produced_by=f"eval: {name} ({search.to_dict()}) on the {eval_run.split} split",
            inputs=inputs,
        )
        record(name, metrics, prm_path is not None)
        return metrics

    def record(name: str, metrics: dict[str, Any], prm_calls: bool) -> None:
        prefix = EVAL_METHODS[name][0]
        row[f"{prefix}/acc"] = metrics["eval/acc"]
        row[f"{prefix}/tokens"] = metrics["eval/policy_tokens_per_question"]
        if prm_calls:
            row[f"{prefix}/prm_calls"] = metrics["eval/prm_calls_per_question"]

    if policy_eval is not None:
        pe = policy_eval
        metrics = runner.run(
            f"{it}/eval_policy",
            lambda d: evaluate_policy_at(ctx, policy, num_problems=pe.num_problems,
                                         samples=pe.samples, temperature=pe.temperature,
                                         split=eval_run.split,
                                         step_temperature=mcts.temperature),
            produced_by=f"the policy alone: greedy and pass@{pe.samples} (temperature "
                        f"{pe.temperature}) on {pe.num_problems} {eval_run.split} questions",
            inputs={"policy": policy},
        )
        row["policy/greedy_acc"] = metrics["eval/greedy_acc"]
        row["policy/pass@k"] = metrics[f"eval/pass@{pe.samples}"]
        row["policy/legal_step_rate"] = metrics["eval/legal_step_rate"]
        row.update({f"policy/{key[len('eval/'):]}": v for key, v in metrics.items()
                    if key.startswith("eval/step_")})  # step skill per depth, its baseline
    done: dict[str, dict[str, Any]] = {}
    if "cot" in methods:
        done["cot"] = run_eval("cot", search_config("cot"))
    if "mcts_star" in methods:
        done["mcts_star"] = run_eval("mcts_star", mcts)
    if any(m in methods for m in MATCHED):
        n = matched_n(done["mcts_star"]["eval/policy_tokens_per_question"],
                      done["cot"]["eval/policy_tokens_per_question"], sc_max_n)
        row["sc/n"] = n
        for name in SAMPLED:
            if name in methods:
                run_eval(name, search_config(name, n=n, temperature=mcts.temperature))
        if "bfs" in methods:
            bfs = bfs_at(mcts, n)
            row["bfs/beam_width"] = bfs.beam_width
            run_eval("bfs", bfs)
    if "mcts_star_widen" in methods:
        widen = dataclasses.replace(mcts, widen=True)
        if widen == mcts and "mcts_star" in done:
            log.info("the configured MCTS* already widens: mcts_star_widen = mcts_star")
            record("mcts_star_widen", done["mcts_star"], True)
        else:
            run_eval("mcts_star_widen", widen)
    prm_metrics = runner.run(
        f"{it}/eval_prm", lambda d: prm_validation(ctx, prm, prm_eval_file),
        produced_by="PRM on the fixed validation set", inputs={"prm": prm, "data": prm_eval_file},
    )
    row.update({f"prm/{key.replace('/', '_')}": v for key, v in prm_metrics.items()})
    row.update({key: v for key, v in extra.items() if v is not None})
    log.info("iteration %d (N=%s): %s; PRM sibling acc %s", k, row.get("sc/n"), ", ".join(
        f"{EVAL_METHODS[m][1]} {row[EVAL_METHODS[m][0] + '/acc']:.3f}" for m in methods
        if EVAL_METHODS[m][0] + "/acc" in row), row.get("prm/val_sibling_acc"))
    return row

"""Held-out evaluation of the models of one iteration.

* :func:`evaluate_policy_at` -- the policy alone: greedy (CoT) accuracy, step legality, pass@N.
* :func:`evaluate_iteration` -- the loop's row: every method of ``stage.eval_methods``
  (:data:`EVAL_METHODS`) next to MCTS* at its policy tokens per question, and the PRM on a
  fixed validation set.
* :func:`prm_validation` -- the PRM against D_V targets and, with the world's oracle, the
  exact quality values (error, rank correlation, sibling ranking accuracy).

Equal tokens. MCTS* (the configured ``search``) and greedy CoT run first. The sample-selection
rules -- self-consistency, PRM best-of-N by the last step value and by the product of the step
values, the PRM-weighted vote, and pass@N as the ceiling -- then read ONE sampling pass
(``search=sampled``, step ``iter_k/eval_sampled``): n_max solutions per question
(:func:`sampled_n_max`: twice MCTS* tokens over CoT tokens, capped by ``stage.sc_max_n``),
every step prefix valued by PRM_k. Each rule is evaluated at N = 1, 2, 4, ... n_max on the
first N samples, and its accuracy is read at MCTS*'s policy tokens per question by linear
interpolation in log tokens between the two bracketing N (:func:`rules_at_tokens`), never by
rounding N up; when MCTS* spent more than n_max samples' tokens (or less than one sample's),
the row says so (``sampled/bracketed`` 0) and holds the end's accuracy at the end's tokens.
BFS with PRM_k gets a beam sized from N = ceil(MCTS* tokens / CoT tokens) (:func:`matched_n`,
:func:`bfs_at`). MCTS* lean (no rollout, no bonus for unvisited children) and MCTS* with
widening are the configured search with those settings; they spend what they spend. Every
method's tokens per question are in the table, so "equal" can be checked.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rest_mcts.backends.registry import close_backend
from rest_mcts.config import ConfigError, Knobs, knob
from rest_mcts.runtime.context import Context
from rest_mcts.runtime.search_run import SearchRun, run_search
from rest_mcts.loop.steps import StepRunner
from rest_mcts.loop.train import value_oracle

log = logging.getLogger(__name__)

# name (``stage.eval_methods``; step ``iter_k/eval_<name>``, except the sampled rules, which
# share ``iter_k/eval_sampled``): (column prefix, table header). The prefixes cot, sc and mcts
# are the columns of older tables.
EVAL_METHODS: dict[str, tuple[str, str]] = {
    "cot": ("cot", "CoT"),
    "self_consistency": ("sc", "SC"),
    "best_of_n": ("best_of_n", "BoN (PRM last)"),
    "best_of_n_prod": ("best_of_n_prod", "BoN (PRM prod)"),
    "weighted_vote": ("weighted_vote", "vote (PRM)"),
    "pass_at_n": ("pass@n", "pass@N"),
    "bfs": ("bfs", "BFS (PRM)"),
    "mcts_star": ("mcts", "MCTS*"),
    "mcts_star_lean": ("mcts_lean", "MCTS* lean"),
    "mcts_star_widen": ("mcts_widen", "MCTS* widen"),
}
# The sample-selection rules read from the one sampling pass (rest_mcts.search.selection):
# name -> rule. Any of them listed runs the pass, which gives all of them.
SAMPLED: dict[str, str] = {
    "self_consistency": "sc",
    "best_of_n": "best_of_n",
    "best_of_n_prod": "best_of_n_prod",
    "weighted_vote": "weighted_vote",
    "pass_at_n": "pass",
}
# The PRM calls a rule needs (selection.GridPoint field): the value of each whole path, or of
# every step prefix (the product); self-consistency and pass@N need none.
RULE_PRM_CALLS = {"best_of_n": "path_prm_calls", "weighted_vote": "path_prm_calls",
                  "best_of_n_prod": "prm_calls"}
# Methods whose budget is matched to MCTS*'s tokens: they need cot and mcts_star evaluated.
MATCHED = (*SAMPLED, "bfs")
# n_max of the sampling pass: this many times MCTS*'s tokens in CoT solutions, so that the
# rules' curve brackets MCTS*'s tokens even when a sample runs longer than the greedy CoT.
SAMPLED_HEADROOM = 2.0


@dataclass(frozen=True)
class PolicyEval(Knobs):
    """The policy's own evaluation in the loop (``stage.policy_eval``): greedy accuracy and
    pass@``samples`` at ``temperature`` on ``num_problems`` held-out questions -- more than the
    search methods get, because the policy's gain is a few points and 200 questions give a
    standard error of about 2.5 points."""

    num_problems: int = knob(500, low=1, integer=True)
    samples: int = knob(8, low=1, integer=True)
    temperature: float = knob(1.0, low=0)
    option: str = field(default="stage.policy_eval", repr=False)

    def knob_prefix_of(self) -> str:
        return self.option


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


def sampled_n_max(mcts_tokens: float, cot_tokens: float, cap: int,
                  headroom: float = SAMPLED_HEADROOM) -> int:
    """n of the one sampling pass: ceil(headroom * mcts_tokens / cot_tokens) (a CoT below
    one token counts as one), at least 1 and at most ``cap``. With the default headroom 2 the
    pass spends about twice MCTS*'s tokens, so its N curve normally brackets them."""
    n = max(1, math.ceil(headroom * mcts_tokens / max(1.0, cot_tokens)))
    return min(n, int(cap))


def rules_at_tokens(metrics: dict[str, Any], target: float) -> dict[str, Any]:
    """The row keys of the sample-selection rules at ``target`` policy tokens per question
    (MCTS*'s), from the metrics of the sampling pass (its N curve,
    :func:`rest_mcts.search.selection.read_sample_curve`), each read with
    :func:`rest_mcts.search.selection.at_tokens` (linear in log tokens between the bracketing
    N; outside the curve the end's value at the end's tokens).

    Returns:
        Per rule (column prefix P of :data:`SAMPLED`): ``P/acc``, ``P/tokens`` (where it was
        read: ``target`` when bracketed), ``P/prompt_tokens`` (the pass's prompt tokens per
        question: one prompt serves every N) and, for the PRM rules, ``P/prm_calls``; and
        ``sampled/n_max``, ``sampled/target_tokens``, ``sampled/n_at_tokens`` (N read the
        same way, log N against log tokens: exact when tokens grow in proportion to N) and
        ``sampled/bracketed`` (1.0 when the curve brackets ``target``, else
        0.0). ``{}`` when the metrics hold no curve.
    """
    from rest_mcts.search.selection import at_tokens, read_sample_curve

    points = read_sample_curve(metrics, "eval")
    if not points:
        return {}
    tokens = [p.tokens for p in points]
    where = at_tokens(tokens, [math.log(p.n) for p in points], target)
    row: dict[str, Any] = {"sampled/n_max": points[-1].n, "sampled/target_tokens": target,
                           "sampled/n_at_tokens": math.exp(where.value),
                           "sampled/bracketed": float(where.inside)}
    prompt = metrics.get("eval/prompt_tokens_per_question")
    for name, rule in SAMPLED.items():
        prefix = EVAL_METHODS[name][0]
        at = at_tokens(tokens, [p.acc[rule] for p in points], target)
        row[f"{prefix}/acc"], row[f"{prefix}/tokens"] = at.value, at.tokens
        if prompt is not None:
            row[f"{prefix}/prompt_tokens"] = prompt
        if name in RULE_PRM_CALLS:
            calls = [getattr(p, RULE_PRM_CALLS[name]) for p in points]
            row[f"{prefix}/prm_calls"] = at_tokens(tokens, calls, target).value
    return row


def lean_search(mcts: Any) -> Any:
    """MCTS* lean: the configured MCTS* without the greedy MC rollout (``rollout_steps=0``)
    and without the authors' bonus for unvisited children (``unvisited_bonus=0.0``)."""
    return dataclasses.replace(mcts, rollout_steps=0, unvisited_bonus=0.0)


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


def eval_step_names(k: int, methods: tuple[str, ...], mcts: Any,
                    policy_eval: bool, prm: bool = True) -> list[str]:
    """The steps :func:`evaluate_iteration` runs for iteration k, in its order (for the
    loop's "step i of n" progress line); ``prm``: whether there is a PRM to evaluate."""
    it = f"iter_{k}"
    names = [f"{it}/eval_policy"] if policy_eval else []
    names += [f"{it}/eval_{m}" for m in ("cot", "mcts_star") if m in methods]
    if any(m in methods for m in SAMPLED):
        names.append(f"{it}/eval_sampled")
    if "bfs" in methods:
        names.append(f"{it}/eval_bfs")
    for name, variant in (("mcts_star_lean", lean_search(mcts)),
                          ("mcts_star_widen", dataclasses.replace(mcts, widen=True))):
        if name in methods and not (variant == mcts and "mcts_star" in methods):
            names.append(f"{it}/eval_{name}")
    return names + ([f"{it}/eval_prm"] if prm else [])


def evaluate_iteration(
    ctx: Context, runner: StepRunner, k: int, *, policy: str, prm: str | None, mcts: Any,
    eval_run: SearchRun, prm_eval_file: str | None, sc_max_n: int, extra: dict[str, Any],
    methods: tuple[str, ...] = tuple(EVAL_METHODS), policy_eval: PolicyEval | None = None,
) -> dict[str, Any]:
    """Held-out evaluation of iteration k, each method its own resumable step
    ``iter_k/eval_<name>`` (the sample-selection rules share ``iter_k/eval_sampled``), then
    the PRM metrics (``iter_k/eval_prm``).

    ``methods`` (names of :data:`EVAL_METHODS`, checked by :func:`check_eval_methods`) run in
    this order: CoT, MCTS* (``mcts``, the configured typed MCTS* config) with PRM_k, the one
    sampling pass (``search=sampled``, n = :func:`sampled_n_max`) whose rules are read at
    MCTS*'s tokens (:func:`rules_at_tokens`), BFS at :func:`bfs_at`, MCTS* lean
    (:func:`lean_search`) and MCTS* with ``widen=true`` (when either equals ``mcts``, its
    numbers are reused, nothing runs twice). With ``policy_eval``, the policy alone first
    (``iter_k/eval_policy``: greedy accuracy and pass@N on its own, larger question set).
    Without a PRM (``prm`` None: the baselines of :mod:`rest_mcts.loop.baselines`) only
    methods that need none may be listed, and there is no ``iter_k/eval_prm``.

    Returns:
        The iteration's row of the results table: ``<prefix>/acc``, ``<prefix>/tokens``
        (policy tokens per question) and ``<prefix>/prompt_tokens`` per method,
        ``<prefix>/prm_calls`` for the PRM-guided ones, the ``sampled/*`` keys of
        :func:`rules_at_tokens`, ``eval/num_questions`` (the held-out questions),
        ``bfs/beam_width``, ``policy/greedy_acc``, ``policy/pass@N`` and
        ``policy/legal_step_rate``, ``prm/*`` and ``extra``.
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
        if name not in EVAL_METHODS:  # the sampling pass: its rules go in by rules_at_tokens
            return
        prefix = EVAL_METHODS[name][0]
        if metrics.get("eval/num_questions"):  # what each accuracy's interval stands on
            row.setdefault("eval/num_questions", metrics["eval/num_questions"])
        row[f"{prefix}/acc"] = metrics["eval/acc"]
        row[f"{prefix}/tokens"] = metrics["eval/policy_tokens_per_question"]
        if "eval/prompt_tokens_per_question" in metrics:  # absent from older folders
            row[f"{prefix}/prompt_tokens"] = metrics["eval/prompt_tokens_per_question"]
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
        mcts_tokens = done["mcts_star"]["eval/policy_tokens_per_question"]
        cot_tokens = done["cot"]["eval/policy_tokens_per_question"]
        if any(m in methods for m in SAMPLED):
            n_max = sampled_n_max(mcts_tokens, cot_tokens, sc_max_n)
            metrics = run_eval("sampled", search_config("sampled", n=n_max,
                                                        temperature=mcts.temperature))
            row.update(rules_at_tokens(metrics, mcts_tokens))
        if "bfs" in methods:
            bfs = bfs_at(mcts, matched_n(mcts_tokens, cot_tokens, sc_max_n))
            row["bfs/beam_width"] = bfs.beam_width
            run_eval("bfs", bfs)
    for name, variant in (("mcts_star_lean", lean_search(mcts)),
                          ("mcts_star_widen", dataclasses.replace(mcts, widen=True))):
        if name not in methods:
            continue
        if variant == mcts and "mcts_star" in done:
            log.info("the configured MCTS* is already %s: its numbers are reused", name)
            record(name, done["mcts_star"], True)
        else:
            run_eval(name, variant)
    if prm is not None:
        prm_metrics = runner.run(
            f"{it}/eval_prm", lambda d: prm_validation(ctx, prm, prm_eval_file),
            produced_by="PRM on the fixed validation set",
            inputs={"prm": prm, "data": prm_eval_file},
        )
        row.update({f"prm/{key.replace('/', '_')}": v for key, v in prm_metrics.items()})
    row.update({key: v for key, v in extra.items() if v is not None})
    sibling = row.get("prm/val_sibling_acc")
    log.info("iteration %d (n_max=%s): %s; PRM sibling acc %s", k, row.get("sampled/n_max"),
             ", ".join(
        f"{EVAL_METHODS[m][1]} {row[EVAL_METHODS[m][0] + '/acc']:.3f}" for m in methods
        if EVAL_METHODS[m][0] + "/acc" in row), "-" if sibling is None else f"{sibling:.3f}")
    return row

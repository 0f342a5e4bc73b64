"""The self-training baselines of the paper's Table 2 as variants of the loop
(``stage=loop stage.method=rest_em|dpo``), on the loop's steps, folders, manifests, resume
and report.

    iteration 0: policy_0 = the base policy; evaluated (no PRM is trained or used)
    for k = 1..K:
        sample: whole solutions of policy_{k-1} per training question until the policy tokens
                per question that ReST-MCTS* spent at iteration k are spent (``stage.budget``,
                :mod:`rest_mcts.search.budget_sampling`); each judged against the gold answer
        rest_em (Singh et al. 2023): D_G_k = the verified-correct samples; policy_k = SFT as
                the loop's policy step (``stage.policy_data``, ``stage.policy_init``, ``stage.sft``)
        dpo (Rafailov et al. 2023): pairs_k = (correct, wrong) samples of one question, judged
                by ``stage.pair_judge``; policy_k = DPO from policy_{k-1} against policy_{k-1}
                frozen as the reference (``stage.dpo.beta``; ``stage.sft``'s lr, epochs, batch)
    every iteration: the policy alone (``stage.policy_eval``) and CoT on the held-out questions

The paper's Self-Rewarding baseline lets the model judge its own samples; a 0.5M-parameter
policy cannot judge, so the pairs come from the verifier by default (docs/loop.md).
Each row records ``data/train_tokens_per_question``: the policy tokens per training question
the iteration spent on its training data, next to its target ``data/budget_tokens``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rest_mcts.backends.registry import close_backend
from rest_mcts.config import ConfigError
from rest_mcts.loop.algorithm import LoopSettings, _last_ckpt, _train_policy, track_iteration
from rest_mcts.loop.baseline_data import dpo_pairs, llm_verdicts, rest_em_rows, sample_rows
from rest_mcts.loop.evaluate import eval_step_names, evaluate_iteration
from rest_mcts.loop.steps import StepRunner
from rest_mcts.loop.train import train_policy_dpo
from rest_mcts.runtime.context import Context
from rest_mcts.tracking import LOOP_SPLITS
from rest_mcts.utils.io import read_jsonl, write_jsonl

log = logging.getLogger(__name__)

# the held-out methods of a baseline: those that need no PRM
BASELINE_EVAL = ("cot",)


def check_baseline(ctx: Context, s: LoopSettings) -> None:
    """One-line errors before any work: a budget, a policy the backend reloads, and an LLM
    judge only on a text world."""
    ctx.require_model_policy(f"stage.method={s.method}")
    s.budget.check(s.method, s.train_problems)
    if s.pair_judge == "llm" and getattr(ctx.world, "prompt_format", None) is None:
        raise ConfigError("stage.pair_judge=llm needs a text world (data=gsm8k, data=math, ...): "
                          f"data={ctx.data_name} has no prompt format for the judge")


def baseline_plan(s: LoopSettings, mcts: Any) -> list[str]:
    """Every step :func:`run_baseline_loop` runs, in its order."""
    methods = eval_methods(s)

    def evals(k: int) -> list[str]:
        return eval_step_names(k, methods, mcts, s.policy_eval is not None, prm=False)

    data = "extract" if s.method == "rest_em" else "pairs"
    plan = ["iter_0/policy", *evals(0)]
    for k in range(1, s.iterations + 1):
        plan += [f"iter_{k}/{step}" for step in ("sample", data, "policy")] + evals(k)
    return plan


def eval_methods(s: LoopSettings) -> tuple[str, ...]:
    """The configured held-out methods that need no PRM (CoT)."""
    return tuple(m for m in s.eval_methods if m in BASELINE_EVAL)


def run_baseline_loop(
    ctx: Context, settings: LoopSettings, mcts: Any, root: Path, base: str, tracker: Any = None
) -> list[dict[str, Any]]:
    """Run (or resume) the ``settings.method`` baseline in ``root`` from the base policy
    ``base``; ``mcts`` gives the sampling temperature (``search.temperature``, as MCTS*'s
    steps) and the policy evaluation's step temperature. Returns one row per iteration."""
    s = settings
    logger = tracker.lightning_logger() if tracker is not None else False
    if tracker is not None:
        tracker.step_metric("loop/iter", LOOP_SPLITS)
    check_baseline(ctx, s)
    runner = StepRunner(root, plan=baseline_plan(s, mcts))
    eval_run = s.search_run(s.eval_split, s.eval_problems, label_trees=False)
    methods = eval_methods(s)
    runner.run("iter_0/policy", lambda d: {"model": base},
               produced_by="bootstrap: the base policy (iteration 0)")
    policy = base

    def evaluate(k: int, extra: dict[str, Any], artifacts: dict[str, tuple[str, str]]):
        row = evaluate_iteration(ctx, runner, k, policy=policy, prm=None, mcts=mcts,
                                 eval_run=eval_run, prm_eval_file=None, sc_max_n=s.sc_max_n,
                                 extra=extra, methods=methods, policy_eval=s.policy_eval)
        track_iteration(tracker, runner, k, row, artifacts)
        return row

    rows = [evaluate(0, {}, {"policy": (base, "model")})]
    data_files: list[str] = []
    for k in range(1, s.iterations + 1):
        it = f"iter_{k}"
        target = s.budget.target(k)
        sampled = runner.run(
            f"{it}/sample",
            lambda d: sample_step(ctx, d, policy, s.train_problems, target, mcts.temperature, k),
            produced_by=f"samples of policy_{k - 1} on the training questions to {target:.0f} "
                        "policy tokens per question",
            inputs={"policy": policy, "budget": s.budget.match or s.budget.tokens_per_question},
        )
        if s.method == "rest_em":
            data = runner.run(
                f"{it}/extract", lambda d: rest_em_step(sampled["samples"], d),
                produced_by="ReST-EM: D_G = the verified-correct samples",
                inputs={"samples": sampled["samples"]},
            )
            data_files.append(data["d_g"])
            files = data_files if s.policy_data == "cumulative" else data_files[-1:]
            start = policy if s.policy_init == "previous" else base
            policy = runner.run(
                f"{it}/policy", lambda d: _train_policy(ctx, s, d, files, start, logger),
                produced_by=f"train_policy (policy_{k}, SFT on D_G, init={s.policy_init})",
                inputs={"data": files, "init": start},
            )["model"]
            counts = {"data/d_g_traces": data.get("extract/d_g_traces")}
        else:
            data = runner.run(
                f"{it}/pairs", lambda d: pairs_step(ctx, s, sampled["samples"], d, policy),
                produced_by=f"DPO pairs (correct vs wrong of one question, judge="
                            f"{s.pair_judge})",
                inputs={"samples": sampled["samples"], "judge": s.pair_judge},
            )
            start = policy
            policy = runner.run(
                f"{it}/policy", lambda d: dpo_step(ctx, s, d, data, start, logger),
                produced_by=f"train_policy_dpo (policy_{k}, DPO from policy_{k - 1}, reference "
                            f"policy_{k - 1}, beta={s.dpo.beta})",
                inputs={"data": data["pairs"], "init": start, "reference": start},
            )["model"]
            counts = {"data/dpo_pairs": data.get("pairs/pairs")}
        rows.append(evaluate(k, {
            **counts,
            "data/train_tokens_per_question": sampled["sample/policy_tokens_per_question"],
            "data/budget_tokens": sampled["sample/target_tokens"],
            "search/train_acc": sampled["sample/acc"],
        }, {"policy": (policy, "model")}))
    return rows


def sample_step(ctx: Context, folder: Path, policy: str, num_problems: int, target: float,
                temperature: float, k: int) -> dict[str, Any]:
    """Sample the training questions to ``target`` policy tokens each; write
    ``samples.jsonl``; return its path and the measured costs."""
    from rest_mcts.backends.base import derive_seed
    from rest_mcts.search.budget_sampling import sample_to_budget

    problems = ctx.problems(ctx.pool("search"), num_problems)
    backend = ctx.build_policy(policy)
    try:
        samples = sample_to_budget(backend, ctx.world, problems, tokens_per_question=target,
                                   temperature=temperature,
                                   max_new_tokens=ctx.max_solution_tokens,
                                   seed=derive_seed(ctx.seed, "baseline_samples", k))
    finally:
        close_backend(backend)
    rows = sample_rows(samples)
    write_jsonl(folder / "samples.jsonl", rows)
    n = max(1, len(samples))
    metrics = {
        "samples": str(folder / "samples.jsonl"),
        "sample/questions": float(len(samples)),
        "sample/samples_per_question": len(rows) / n,
        "sample/policy_tokens_per_question": sum(q.tokens for q in samples) / n,
        "sample/target_tokens": float(target),
        "sample/acc": sum(any(x.correct for x in q.samples) for q in samples) / n,
        "sample/sample_acc": sum(r["correct"] for r in rows) / max(1, len(rows)),
    }
    log.info("sampled %d questions: %.1f samples and %.0f policy tokens per question "
             "(target %.0f), %.1f%% of samples correct", len(samples),
             metrics["sample/samples_per_question"], metrics["sample/policy_tokens_per_question"],
             target, 100 * metrics["sample/sample_acc"])
    return metrics


def rest_em_step(samples_file: str, folder: Path) -> dict[str, Any]:
    """ReST-EM's E-step: ``d_g.jsonl`` of the verified-correct samples."""
    rows = rest_em_rows(read_jsonl(samples_file))
    write_jsonl(folder / "d_g.jsonl", rows)
    return {"d_g": str(folder / "d_g.jsonl"), "extract/d_g_traces": float(len(rows)),
            "extract/questions": float(len({r["question_id"] for r in rows}))}


def pairs_step(ctx: Context, s: LoopSettings, samples_file: str, folder: Path,
               policy: str) -> dict[str, Any]:
    """DPO pairs (``pairs.jsonl``) of the samples, judged by ``stage.pair_judge``."""
    from rest_mcts.prompts import prompt_format

    rows = read_jsonl(samples_file)
    if s.pair_judge == "verifier":
        verdicts = [bool(r["correct"]) for r in rows]
    else:
        verdicts = _llm_judge(ctx, rows, policy)
    pairs = dpo_pairs(rows, verdicts, pairs_per_question=s.dpo.pairs_per_question,
                      fmt=prompt_format(ctx.world))
    write_jsonl(folder / "pairs.jsonl", pairs)
    agree = sum(v == bool(r["correct"]) for v, r in zip(verdicts, rows)) / max(1, len(rows))
    return {"pairs": str(folder / "pairs.jsonl"), "pairs/pairs": float(len(pairs)),
            "pairs/questions": float(len({p["question_id"] for p in pairs})),
            "pairs/judge_agrees_with_verifier": agree}


def _llm_judge(ctx: Context, rows: list[dict[str, Any]], policy: str) -> list[bool]:
    """The current policy judging its own samples (self-rewarding) with the verification
    prompt of :class:`rest_mcts.answers.judge.LLMJudge`."""
    from rest_mcts.answers.judge import LLMJudge
    from rest_mcts.backends.base import greedy_texts

    backend = ctx.build_policy(policy)
    try:
        judge = LLMJudge(greedy_texts(backend, max_new_tokens=4), ctx.world.prompt_format)
        return llm_verdicts(rows, judge)
    finally:
        close_backend(backend)


def dpo_step(ctx: Context, s: LoopSettings, folder: Path, data: dict[str, Any], start: str,
             logger: Any = False) -> dict[str, Any]:
    if not read_jsonl(data["pairs"]):
        log.warning("no DPO pairs (no question has both a correct and a wrong sample): "
                    "policy unchanged")
        return {"model": start, "train/steps": 0.0}
    metrics = train_policy_dpo(
        ctx, [data["pairs"]], folder / "model", start, beta=s.dpo.beta, settings=s.sft,
        ckpt_dir=folder / "checkpoints", ckpt_path=_last_ckpt(folder), val_share=s.val_share,
        logger=logger)
    return {"model": str(folder / "model"), **metrics}

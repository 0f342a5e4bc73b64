"""Held-out evaluation of the models of one iteration.

* :func:`evaluate_policy_at` -- the policy alone: greedy (CoT) accuracy, step legality, pass@N.
* :func:`evaluate_iteration` -- the loop's row: CoT, MCTS* with PRM_k, self-consistency with as
  many policy tokens per question as MCTS* spent, and the PRM on a fixed validation set.
* :func:`prm_validation` -- the PRM against D_V targets and, with the world's oracle, the
  exact quality values (error, rank correlation, sibling ranking accuracy).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from rest_mcts.loop.context import Context
from rest_mcts.loop.search_run import SearchRun, run_search
from rest_mcts.loop.steps import StepRunner
from rest_mcts.loop.train import value_oracle

log = logging.getLogger(__name__)


def evaluate_policy_at(
    ctx: Context, model_path: str | Path, *, num_problems: int, samples: int,
    temperature: float, split: str = "test",
) -> dict[str, float]:
    """Greedy accuracy, step legality and pass@N of the policy at ``model_path``."""
    from rest_mcts.search.evaluation import evaluate_policy

    test = ctx.problems(split, num_problems, at_most=True)
    return evaluate_policy(
        ctx.build_policy(model_path), ctx.world, test, samples=samples, temperature=temperature,
        max_new_tokens=ctx.max_solution_tokens, seed=ctx.seed,
    )


def prm_validation(ctx: Context, prm: str, data_file: str) -> dict[str, float]:
    """The PRM at ``prm`` on D_V rows: ``val/mse``, ``val/acc@0.1`` and, with the world's
    oracle, ``val/oracle_mse``, ``val/oracle_mae``, ``val/oracle_acc@0.1``,
    ``val/oracle_spearman``, ``val/sibling_acc`` and ``val/sibling_pairs``
    (:func:`rest_mcts.training.prm_metrics.value_metrics`)."""
    from rest_mcts.training.prm_metrics import value_metrics
    from rest_mcts.training.prm_data import read_value_rows

    rows = read_value_rows(data_file)
    scorer = ctx.build_scorer(prm, None)
    preds = scorer.score([(r.question, tuple(r.steps)) for r in rows])
    return value_metrics(preds, rows, value_oracle(ctx.world))


def evaluate_iteration(
    ctx: Context, runner: StepRunner, k: int, *, policy: str, prm: str, mcts: Any,
    eval_run: SearchRun, prm_eval_file: str, sc_max_n: int, extra: dict[str, Any],
) -> dict[str, Any]:
    """Held-out evaluation of iteration k, each part its own resumable step: CoT, MCTS*
    (``mcts``, a typed MCTS* config) with PRM_k, self-consistency at MCTS*'s tokens, PRM metrics.

    Returns:
        The iteration's row of the results table.
    """
    from rest_mcts.search.configs import search_config

    it = f"iter_{k}"
    inputs = {"policy": policy, "prm": prm}

    def run_eval(name: str, search: Any, prm_path: str | None) -> dict[str, Any]:
        return runner.run(
            f"{it}/eval_{name}",
            lambda d: run_search(ctx, d, search, eval_run, policy_path=policy, prm_path=prm_path),
            produced_by=f"eval: {search.name} on the {eval_run.split} split", inputs=inputs,
        )

    cot = run_eval("cot", search_config("cot"), None)
    mcts_metrics = run_eval("mcts_star", mcts, prm)
    per_sample = max(1.0, cot["eval/policy_tokens_per_question"])
    n = max(1, math.ceil(mcts_metrics["eval/policy_tokens_per_question"] / per_sample))
    n = min(n, int(sc_max_n))
    sc = run_eval("self_consistency",
                  search_config("self_consistency", n=n, temperature=mcts.temperature), None)
    prm_metrics = runner.run(
        f"{it}/eval_prm", lambda d: prm_validation(ctx, prm, prm_eval_file),
        produced_by="PRM on the fixed validation set", inputs={"prm": prm, "data": prm_eval_file},
    )
    row = {
        "iteration": k,
        "cot/acc": cot["eval/acc"], "cot/tokens": cot["eval/policy_tokens_per_question"],
        "sc/acc": sc["eval/acc"], "sc/n": n, "sc/tokens": sc["eval/policy_tokens_per_question"],
        "mcts/acc": mcts_metrics["eval/acc"],
        "mcts/tokens": mcts_metrics["eval/policy_tokens_per_question"],
        "mcts/prm_calls": mcts_metrics["eval/prm_calls_per_question"],
        **{f"prm/{key.replace('/', '_')}": v for key, v in prm_metrics.items()},
        **{key: v for key, v in extra.items() if v is not None},
    }
    log.info("iteration %d: CoT %.3f, SC@%d %.3f, MCTS* %.3f, PRM sibling acc %s",
             k, row["cot/acc"], n, row["sc/acc"], row["mcts/acc"], row.get("prm/val_sibling_acc"))
    return row

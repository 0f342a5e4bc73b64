"""ReST-MCTS* self-training, Algorithm 1 of the paper, as one resumable job.

    iteration 0: policy_0 = the base policy (bootstrapped and cached if needed)
                 D_V0 = BFS tree sampling or reference solutions; PRM_0 trained on it
    for k = 1..K:
        MCTS* on the training questions with policy_{k-1}, PRM_{k-1} -> verified trees
        D_V_k (PRM targets) and D_G_k (correct traces) from those trees
        PRM_k    trained on D_V0 + new data (``prm_data``), from PRM_{k-1} or afresh
        policy_k SFT on D_G (``policy_data``), from the base policy or policy_{k-1}
    every iteration: held-out evaluation (``eval_methods``: CoT, MCTS*, then from one
                 sampling pass self-consistency, best-of-N (last value, product) and the
                 weighted vote with PRM_k and pass@N, read at MCTS*'s policy tokens per
                 question; BFS with PRM_k, MCTS* lean, MCTS* with widening; the PRM on a
                 fixed validation set)

Every artefact lives under ``<root>/iter_k/<step>/`` with a ``manifest.json`` naming what
produced it (:class:`rest_mcts.loop.steps.StepRunner`); a job killed at any point and started
again resumes at the first unfinished step.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rest_mcts.config import ConfigError, Knobs, knob
from rest_mcts.loop import gates
from rest_mcts.loop.baseline_data import PAIR_JUDGES, DPOSettings
from rest_mcts.loop.budget import BudgetSettings
from rest_mcts.runtime.context import Context
from rest_mcts.loop.d_v0 import InitPRMSettings, build_d_v0, prm_eval_set
from rest_mcts.loop.data import D_V_NODES, extract_data, mix
from rest_mcts.loop.evaluate import (
    EVAL_METHODS,
    PolicyEval,
    check_eval_methods,
    eval_step_names,
    evaluate_iteration,
)
from rest_mcts.runtime.search_run import SearchRun, run_search
from rest_mcts.loop.steps import StepRunner
from rest_mcts.loop.train import train_policy_sft, train_prm_model
from rest_mcts.tracking import LOOP_SPLITS, sample_rows
from rest_mcts.training.settings import TrainSettings
from rest_mcts.utils.io import read_jsonl

log = logging.getLogger(__name__)

PRM_DATA = ("cumulative", "init_and_current", "current")
MODEL_INIT = ("base", "previous")
POLICY_DATA = ("cumulative", "current")
# stage.method: ReST-MCTS* (Algorithm 1) or a self-training baseline on budget-matched samples
# (rest_mcts.loop.baselines)
METHODS = ("rest_mcts", "rest_em", "dpo")
_NOT_ONE_OF = "{key}={value} is not one of {allowed}"  # a bad choice of stage.*


@dataclass(frozen=True)
class LoopSettings(Knobs):
    """The settings of Algorithm 1 (``stage=loop``).

    Attributes:
        iterations: K, self-training iterations after iteration 0.
        train_problems: training questions searched by MCTS* per iteration.
        eval_split: held-out split of the evaluation.
        eval_problems: held-out questions for CoT / self-consistency / MCTS*.
        prm_eval_problems: val questions whose BFS trees form the fixed PRM validation set.
        concurrency: questions searched side by side (batched model calls).
        cache_values: score each (question, partial solution) once per question.
        val_share: share of questions held out inside each training step.
        prm_data: PRM_k's data: cumulative | init_and_current | current.
        prm_init: PRM_k starts from: previous (PRM_{k-1}) | base (policy backbone, fresh head).
        policy_data: policy_k's SFT data: cumulative (all D_G_j) | current (D_G_k).
        policy_init: policy_k starts from: base (policy_0, as in ReST-EM) | previous.
        d_g_min_value: keep only correct traces whose PRM value reaches this (None: all).
        d_v_nodes: which nodes of a verified tree give D_V rows (D_V0 by BFS and every D_V_k):
            paths (only nodes on a root-to-finished-leaf path, as the authors' code; a child
            never explored has no finished leaf below and would get r = 1 even when it is
            right) | all (every legal node). The fixed PRM validation set keeps every node.
        train_early_stop: the MCTS* on the training questions stops at a node valued >= l
            (True) or runs all T iterations (False, as the authors' data generation); the
            evaluation MCTS* always keeps the stop rule.
        sc_max_n: cap on n_max, the samples per question of the one sampling pass that the
            sample-selection rules read (about twice MCTS* tokens over CoT tokens), and on
            BFS's N (MCTS* tokens over CoT tokens; its beam is ceil(N / b)).
        eval_methods: the held-out evaluation's methods, names of
            :data:`rest_mcts.loop.evaluate.EVAL_METHODS` (default: all); the sampled rules
            (self_consistency, best_of_n, best_of_n_prod, weighted_vote, pass_at_n) and bfs
            need cot and mcts_star (their budget).
        prm_init_epochs: epochs of PRM_0 on D_V0.
        prm_epochs: epochs of PRM_k on the iteration's data mix.
        init_prm: how D_V0 is made.
        policy_eval: the policy's own greedy / pass@N evaluation each iteration (None: off).
        sft: policy fine-tuning settings (``policy.*`` with ``stage.sft.*`` over it).
        method: rest_mcts (Algorithm 1) | rest_em | dpo (the baselines of
            :mod:`rest_mcts.loop.baselines`: no PRM, training data sampled to ``budget``).
        pair_judge: who judges the DPO baseline's samples: verifier (the gold answer) | llm
            (the LLM judge of :mod:`rest_mcts.answers.judge`, text worlds).
        budget: the baselines' policy tokens per training question per iteration.
        dpo: the DPO baseline's beta and pairs per question.
    """

    init_prm: InitPRMSettings
    sft: TrainSettings
    policy_eval: PolicyEval | None = PolicyEval()
    iterations: int = knob(2, low=0, integer=True)
    train_problems: int = knob(1600, low=1, integer=True)
    eval_split: str = "test"
    eval_problems: int = knob(200, low=1, integer=True)
    prm_eval_problems: int = knob(300, low=1, integer=True)
    concurrency: int = knob(64, low=1, integer=True)
    cache_values: bool = True
    val_share: float = knob(0.1, low=0, high=1)
    prm_data: str = knob("cumulative", choices=PRM_DATA, message=_NOT_ONE_OF)
    prm_init: str = knob("previous", choices=MODEL_INIT, message=_NOT_ONE_OF)
    policy_data: str = knob("cumulative", choices=POLICY_DATA, message=_NOT_ONE_OF)
    policy_init: str = knob("base", choices=MODEL_INIT, message=_NOT_ONE_OF)
    d_g_min_value: float | None = knob(None, low=0, high=1, optional=True)
    d_v_nodes: str = knob("paths", choices=D_V_NODES, message=_NOT_ONE_OF)
    train_early_stop: bool = knob(False, flag=True, message="{key}={value!r} is not a boolean")
    sc_max_n: int = knob(128, low=1, integer=True)
    eval_methods: tuple[str, ...] = tuple(EVAL_METHODS)
    prm_init_epochs: int = knob(6, low=1, integer=True, name="prm_train.init_epochs")
    prm_epochs: int = knob(2, low=1, integer=True, name="prm_train.epochs")
    method: str = knob("rest_mcts", choices=METHODS, message=_NOT_ONE_OF)
    pair_judge: str = knob("verifier", choices=PAIR_JUDGES, message=_NOT_ONE_OF)
    budget: BudgetSettings = BudgetSettings()
    dpo: DPOSettings = DPOSettings()
    option: str = field(default="stage", repr=False)

    def knob_prefix_of(self) -> str:
        return self.option

    def __post_init__(self) -> None:
        super().__post_init__()  # the knobs
        object.__setattr__(self, "eval_methods",
                           check_eval_methods(f"{self.option}.eval_methods", self.eval_methods))

    def search_run(self, split: str, num_problems: int, *, label_trees: bool) -> SearchRun:
        prefix = "search" if label_trees else "eval"
        return SearchRun(split=split, num_problems=num_problems, label_trees=label_trees,
                         concurrency=self.concurrency, cache_values=self.cache_values,
                         prefix=prefix)


def check_inputs(ctx: Context, mcts: Any) -> None:
    """One-line errors before any work: the loop trains a neural PRM and a policy that its
    backend loads, and searches with MCTS*."""
    ctx.require_trainable_scorer("the loop")
    ctx.require_model_policy("the loop")
    if mcts.name != "mcts_star":
        raise ConfigError(f"search={mcts.name}: the loop searches with MCTS* (search=mcts_star); "
                          "other methods are evaluated alongside it")


def run_loop(
    ctx: Context, settings: LoopSettings, mcts: Any, root: Path, base: str, tracker: Any = None
) -> list[dict[str, Any]]:
    """Run (or resume) Algorithm 1 in ``root`` from the base policy ``base`` with MCTS*
    (``mcts``, a typed MCTS* config); returns the results table, one row per iteration.

    ``tracker`` (a :class:`rest_mcts.tracking.StageRun`, or None) gets each iteration's row
    against ``loop/iter``, a table of sample answers and (``logger.log_artifacts``) the
    iteration's models and data; the training inside logs into the same run."""
    s = settings
    if s.method != "rest_mcts":  # the baselines have their own steps
        raise ConfigError(f"stage.method={s.method}: run_loop runs rest_mcts; the baselines run "
                          "through rest_mcts.loop.baselines.run_baseline_loop")
    logger = tracker.lightning_logger() if tracker is not None else False
    if tracker is not None:
        tracker.step_metric("loop/iter", LOOP_SPLITS)
    check_inputs(ctx, mcts)
    runner = StepRunner(root, plan=loop_plan(s, mcts))
    eval_run = s.search_run(s.eval_split, s.eval_problems, label_trees=False)
    train_mcts = training_search(mcts, s.train_early_stop)

    # ---- iteration 0: policy_0, D_V0, PRM_0
    runner.run("iter_0/policy", lambda d: {"model": base},
               produced_by="bootstrap: the base policy (iteration 0)")
    d_v0 = runner.run(
        "iter_0/d_v0", lambda d: {**build_d_v0(ctx, s.init_prm, d, base, s.d_v_nodes),
                                  "file": str(d / "d_v.jsonl")},
        produced_by=f"init_prm (method={s.init_prm.method}, d_v_nodes={s.d_v_nodes})",
        inputs={"policy": base},
    )
    prm_eval = runner.run(
        "prm_eval_set", lambda d: prm_eval_set(ctx, s.init_prm, d, s.prm_eval_problems, base),
        produced_by="BFS trees of the base policy on the val split (fixed PRM evaluation set)",
        inputs={"policy": base},
    )
    prm = runner.run(
        "iter_0/prm", lambda d: _train_prm(ctx, s, d, [d_v0["file"]], base, s.prm_init_epochs,
                                logger),
        produced_by="train_prm on D_V0 (PRM_0)", inputs={"data": [d_v0["file"]], "init": base},
    )["model"]
    policy = base

    def evaluate(k: int, extra: dict[str, Any]) -> dict[str, Any]:
        row = evaluate_iteration(ctx, runner, k, policy=policy, prm=prm, mcts=mcts,
                                 eval_run=eval_run, prm_eval_file=prm_eval["file"],
                                 sc_max_n=s.sc_max_n, extra=extra, methods=s.eval_methods,
                                 policy_eval=s.policy_eval)
        track_iteration(tracker, runner, k, row, artifacts)
        return row

    artifacts = {"d_v": (d_v0["file"], "dataset"), "prm": (prm, "model"),
                 "policy": (base, "model")}
    rows = [evaluate(0, {"data/d_v_rows": d_v0.get("d_v0/d_v_rows")})]
    level = logging.WARNING if gates.any_failed(rows[0]) else logging.INFO
    for line in gates.summary(rows[0]):  # can search beat sampling with these base models?
        log.log(level, "iteration-0 gate %s", line)

    # ---- iterations 1..K
    d_v_files, d_g_files = [d_v0["file"]], []
    for k in range(1, s.iterations + 1):
        it = f"iter_{k}"
        train_run = s.search_run(ctx.pool("search"), s.train_problems, label_trees=True)
        search = runner.run(  # MCTS* on the training questions -> verified trees
            f"{it}/search",
            lambda d: {**run_search(ctx, d, train_mcts, train_run, policy_path=policy,
                                    prm_path=prm),
                       "trees": str(d / "trees")},
            produced_by="MCTS* on the training questions (verified trees, early_stop="
                        f"{getattr(train_mcts, 'early_stop', 'n/a')})",
            inputs={"policy": policy, "prm": prm},
        )
        data = runner.run(  # D_V_k and D_G_k from the verified trees
            f"{it}/extract",
            lambda d: {**extract_data(search["trees"], d, s.d_g_min_value, s.d_v_nodes),
                       "d_v": str(d / "d_v.jsonl"), "d_g": str(d / "d_g.jsonl")},
            produced_by=f"extract: D_V (d_v_nodes={s.d_v_nodes}) and D_G from the verified trees",
            inputs={"trees": search["trees"]},
        )
        d_v_files.append(data["d_v"])
        d_g_files.append(data["d_g"])
        prm_files = mix(s.prm_data, d_v_files)
        prm_start = prm if s.prm_init == "previous" else base
        prm = runner.run(  # PRM_k
            f"{it}/prm",
            lambda d: _train_prm(ctx, s, d, prm_files, prm_start, s.prm_epochs, logger),
            produced_by=f"train_prm (PRM_{k}, data={s.prm_data}, init={s.prm_init})",
            inputs={"data": prm_files, "init": prm_start},
        )["model"]
        sft_files = d_g_files if s.policy_data == "cumulative" else d_g_files[-1:]
        policy_start = policy if s.policy_init == "previous" else base
        policy = runner.run(  # policy_k
            f"{it}/policy", lambda d: _train_policy(ctx, s, d, sft_files, policy_start, logger),
            produced_by=f"train_policy (policy_{k}, SFT on D_G, init={s.policy_init})",
            inputs={"data": sft_files, "init": policy_start},
        )["model"]
        artifacts = {"d_v": (data["d_v"], "dataset"), "d_g": (data["d_g"], "dataset"),
                     "prm": (prm, "model"), "policy": (policy, "model")}
        rows.append(evaluate(k, {
            "data/d_v_rows": data.get("extract/d_v_rows"),
            "data/d_g_traces": data.get("extract/d_g_traces"),
            "search/train_acc": search.get("search/acc"),
            "data/train_tokens_per_question": search.get("search/policy_tokens_per_question"),
        }))
    return rows


def loop_plan(s: LoopSettings, mcts: Any) -> list[str]:
    """Every step :func:`run_loop` runs, in its order."""
    def evals(k: int) -> list[str]:
        return eval_step_names(k, s.eval_methods, mcts, s.policy_eval is not None)

    plan = ["iter_0/policy", "iter_0/d_v0", "prm_eval_set", "iter_0/prm", *evals(0)]
    for k in range(1, s.iterations + 1):
        plan += [f"iter_{k}/{step}" for step in ("search", "extract", "prm", "policy")]
        plan += evals(k)
    return plan


def training_search(mcts: Any, early_stop: bool) -> Any:
    """The MCTS* config of the search on the training questions: ``mcts`` with its stop rule
    set to ``early_stop`` (Algorithm 1, line 5: the authors' data generation runs all T
    iterations). The evaluation search keeps ``mcts`` as it is."""
    return dataclasses.replace(mcts, early_stop=early_stop)


def _last_ckpt(folder: Path) -> str | None:
    last = folder / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


def track_iteration(
    tracker: Any, runner: StepRunner, k: int, row: dict[str, Any],
    artifacts: dict[str, tuple[str, str]],
) -> None:
    """Iteration k into the stage's run, once (a resumed run skips what it logged before):
    the row (``loop/iter`` and every method's metrics), a table of the first answers of each
    evaluated method, and ``artifacts`` (name: (path, type)) when artifacts are on."""
    key = f"iter_{k}"
    if tracker is None or tracker.logged(key):
        return
    tracker.log(row)
    samples = []
    for name in (*EVAL_METHODS, "sampled"):  # the sampled rules share eval_sampled
        samples += sample_rows(runner.folder(f"{key}/eval_{name}"), tracker.table_rows,
                               iter=k, method=name)
    tracker.log_table("eval/samples", samples)
    for name, (path, kind) in artifacts.items():
        tracker.log_artifact(path, name, kind, aliases=[key], metadata={"iteration": k})
    tracker.mark_logged(key)


def _train_prm(
    ctx: Context, s: LoopSettings, folder: Path, files: list[str], init: str, epochs: int,
    logger: Any = False,
) -> dict[str, Any]:
    if not any(read_jsonl(f) for f in files):
        raise ConfigError(
            f"no PRM training rows in {files}: no tree of the base policy reached a correct "
            "answer; raise stage.init_prm.num_problems or use stage.init_prm.method=reference"
        )
    metrics = train_prm_model(
        ctx, files, folder / "model", init, settings=ctx.prm.replace(epochs=int(epochs)),
        ckpt_dir=folder / "checkpoints", ckpt_path=_last_ckpt(folder), val_share=s.val_share,
        logger=logger,
    )
    return {"model": str(folder / "model"), **metrics}


def _train_policy(
    ctx: Context, s: LoopSettings, folder: Path, files: list[str], init: str,
    logger: Any = False,
) -> dict[str, Any]:
    files = [f for f in files if read_jsonl(f)]
    if not files:
        log.warning("no correct traces (D_G is empty): policy unchanged")
        return {"model": init, "train/steps": 0.0}
    metrics = train_policy_sft(
        ctx, files, folder / "model", init, settings=s.sft, ckpt_dir=folder / "checkpoints",
        ckpt_path=_last_ckpt(folder), val_share=s.val_share, logger=logger,
    )
    return {"model": str(folder / "model"), **metrics}

"""stage=loop: ReST-MCTS* self-training (Algorithm 1, `rest_mcts.loop.algorithm`), the main job,
or (``stage.method=rest_em|dpo``) a self-training baseline on the same steps
(`rest_mcts.loop.baselines`).

Everything lives in `stage.dir`, default `outputs/loop_runs/<data>-s<seed>-<config hash>`, so
re-running the same command resumes and a changed config starts a fresh folder (a folder made
by another config is refused). The results table (markdown, CSV) and a plot of accuracy by
iteration go to that folder and to the logger.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import from_node
from rest_mcts.loop.algorithm import LoopSettings, check_inputs, run_loop
from rest_mcts.loop.baseline_data import DPOSettings
from rest_mcts.loop.baselines import check_baseline, run_baseline_loop
from rest_mcts.loop.budget import BudgetSettings
from rest_mcts.loop.d_v0 import InitPRMSettings
from rest_mcts.loop.evaluate import PolicyEval
from rest_mcts.loop.report import print_summary, write_report
from rest_mcts.runtime.claims import claim_config
from rest_mcts.runtime.keys import loop_key_config
from rest_mcts.runtime.policy0 import ensure_policy0, is_given, policy0_metrics
from rest_mcts.runtime.spec import RunSpec
from rest_mcts.tracking import stage_run
from rest_mcts.utils.hashing import fingerprint

log = logging.getLogger(__name__)

TITLES = {"rest_mcts": "ReST-MCTS*", "rest_em": "ReST-EM", "dpo": "DPO"}


def loop(cfg: DictConfig, spec: RunSpec | None = None) -> dict[str, float]:
    """Run (or resume) the self-training loop with ``spec`` (the run spec ``run_stage`` built;
    None: built here); returns the last row's metrics and the gains."""
    spec = spec or RunSpec.from_config(cfg)
    ctx = spec.ctx
    s = cfg.stage
    init = from_node(InitPRMSettings, s.init_prm, strict="stage.init_prm",
                     concurrency=s.concurrency,
                     cache_values=s.cache_values, option="stage.init_prm")
    policy_eval = None if s.get("policy_eval") is None else from_node(
        PolicyEval, s.policy_eval, option="stage.policy_eval", strict="stage.policy_eval")
    settings = from_node(LoopSettings, s, init_prm=init, policy_eval=policy_eval,
                         sft=ctx.policy.overridden("stage.sft", s.get("sft")),
                         prm_init_epochs=s.prm_train.init_epochs, prm_epochs=s.prm_train.epochs,
                         budget=from_node(BudgetSettings, s.get("budget") or {},
                                          strict="stage.budget"),
                         dpo=from_node(DPOSettings, s.get("dpo") or {}, strict="stage.dpo"))
    mcts = spec.search
    baseline = settings.method != "rest_mcts"
    if baseline:
        check_baseline(ctx, settings)
    else:
        check_inputs(ctx, mcts)
    root = loop_dir(cfg)
    claim_dir(cfg, root)
    log.info("self-training loop in %s", root)
    base = str(ensure_policy0(ctx, cfg.paths.output_dir))
    # one wandb run across the iterations, its id kept in the folder: a restart resumes it
    tracker = stage_run(spec, root, resume_dir=root, group=root.name)
    # the loop's searches share one pool of Ray actors (executor=ray), ended with the stage
    run = run_baseline_loop if baseline else run_loop
    rows = run(ctx, settings, mcts, root, base, tracker)
    title = f"{TITLES[settings.method]} self-training on {ctx.data_name}, seed {ctx.seed}"
    boot = None if is_given(ctx) else policy0_metrics(Path(base)).get("train/seconds")
    print_summary(rows, root, title,
                  write_report(rows, root, title, boot, questions=settings.eval_problems),
                  settings.eval_problems)
    last = {f"loop/{key}": float(v) for key, v in rows[-1].items() if v is not None}
    tracker.skip_at_end(last)  # the last row is in the run already, with its iteration
    for key in ("cot/acc", "mcts/acc", "prm/val_sibling_acc"):
        if rows[0].get(key) is not None and rows[-1].get(key) is not None:
            last[f"loop/gain_{key}"] = float(rows[-1][key] - rows[0][key])
    return last


def loop_config(cfg: DictConfig) -> dict[str, Any]:
    """Everything that shapes the loop's results: :func:`rest_mcts.runtime.keys.loop_key_config`
    (the declared :data:`rest_mcts.runtime.keys.NOT_LOOP_KEYS` left out)."""
    return loop_key_config(cfg)


def loop_dir(cfg: DictConfig) -> Path:
    """`stage.dir`, or a folder keyed by the loop's config (:func:`loop_config`); a baseline's
    name also holds its method (`<data>-<method>-s<seed>-<key>`)."""
    if cfg.stage.get("dir"):
        return Path(cfg.stage.dir)
    method = cfg.stage.get("method") or "rest_mcts"
    tag = "" if method == "rest_mcts" else f"-{method}"
    name = f"{cfg.data.name}{tag}-s{cfg.seed}-{fingerprint(loop_config(cfg))}"
    return Path(cfg.paths.root_dir) / "outputs" / "loop_runs" / name


def claim_dir(cfg: DictConfig, root: Path) -> None:
    """Record the loop's config in `root/loop_config.json`; a folder made by a different
    config is refused, naming the options that differ (its finished steps would be reused
    for the wrong settings)."""
    claim_config(root, loop_config(cfg), "loop_config.json", option="stage.dir",
                 where=f"stage.dir='{root}'")

"""stage=train_policy: policy SFT on correct solutions D_G, greedy accuracy before and after.

D_G comes from verified search trees (`stage.trees_dir`, written to `<run>/d_g.jsonl` by the
loop's own writer, so the loop and this stage train on the same rows) and/or D_G files
(`stage.data_files`, `{"question", "steps"}` per line). The policy starts from `model.path`
or policy_0; `stage.sft.*` overrides `policy.*` for this fine-tuning (without changing
policy_0's cache key). Saved into `<run>/policy`; `stage.ckpt_path` resumes.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from omegaconf import DictConfig

from rest_mcts.config import ConfigError
from rest_mcts.loop.data import d_g_rows, load_trees
from rest_mcts.loop.evaluate import evaluate_policy_at
from rest_mcts.loop.train import train_policy_sft
from rest_mcts.prompts import prompt_format
from rest_mcts.runtime.policy0 import ensure_policy0
from rest_mcts.runtime.spec import RunSpec
from rest_mcts.tracking import stage_run
from rest_mcts.training.rows import check_data_files, read_solution_rows
from rest_mcts.utils.io import write_jsonl

log = logging.getLogger(__name__)


def train_policy(cfg: DictConfig, spec: RunSpec | None = None) -> dict[str, float]:
    ctx = (spec or RunSpec.from_config(cfg)).ctx
    s, out = cfg.stage, Path(cfg.paths.output_dir)
    sft = ctx.policy.overridden("stage.sft", s.get("sft"))
    files = [str(f) for f in s.data_files or []]
    if s.trees_dir:
        files.insert(0, str(write_jsonl(out / "d_g.jsonl", d_g_rows(load_trees(s.trees_dir)))))
    # every row checked before policy_0 is trained or a model loaded
    read = partial(read_solution_rows, fmt=prompt_format(ctx.world))
    examples = check_data_files(files, read, "stage.data_files")
    if not examples:
        raise ConfigError("stage=train_policy has no data: set stage.data_files and/or "
                          "stage.trees_dir (trees with correct leaves)")
    init = ensure_policy0(ctx, out)
    tracker = stage_run(spec)

    def evaluate(path) -> dict[str, float]:
        return evaluate_policy_at(ctx, path, num_problems=s.eval_problems,
                                  samples=s.eval_samples, temperature=s.eval_temperature)

    metrics: dict[str, float] = {}
    if s.eval_before:
        metrics.update({k.replace("eval/", "eval/before_", 1): v for k, v in evaluate(init).items()})
    metrics.update(train_policy_sft(ctx, examples, out / "policy", init, settings=sft,
                                    logger=tracker.lightning_logger(),
                                    ckpt_path=s.ckpt_path, val_share=s.val_share))
    metrics.update(evaluate(out / "policy"))
    if s.eval_before:
        metrics["eval/greedy_acc_gain"] = metrics["eval/greedy_acc"] - metrics["eval/before_greedy_acc"]
    log.info("policy SFT on %d D_G rows: greedy test acc %s -> %.3f (saved to %s)",
             int(metrics["data/rows"]),
             f"{metrics['eval/before_greedy_acc']:.3f}" if s.eval_before else "?",
             metrics["eval/greedy_acc"], out / "policy")
    tracker.log_artifact(out / "d_g.jsonl", "d_g", "dataset")
    tracker.log_artifact(out / "policy", "policy", "model")
    return metrics

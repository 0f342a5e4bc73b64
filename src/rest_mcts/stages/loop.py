"""stage=loop: ReST-MCTS* self-training, Algorithm 1 of the paper, as one resumable job.

    iteration 0: policy_0 = the base policy (bootstrapped and cached if needed)
                 D_V0 = init_prm data (BFS tree sampling or reference solutions); PRM_0
    for k = 1..K (stage.iterations):
        MCTS* on the training questions with policy_{k-1} and PRM_{k-1} -> verified trees
        extract -> D_V_k (PRM targets) and D_G_k (correct traces)
        PRM_k    trained on D_V0 + new data (stage.prm_data), from PRM_{k-1} or afresh
        policy_k SFT on D_G (stage.policy_data), from the base policy or policy_{k-1}
    every iteration: evaluation on the held-out split -- policy CoT (greedy),
        MCTS* with PRM_k, self-consistency with as many policy tokens per question as
        MCTS* spent, and the PRM on a fixed validation set (MSE against tree targets,
        accuracy and MSE against the exact oracle values on Countdown)

Every artefact lives under ``<stage.dir>/iter_k/<step>/`` with a ``manifest.json`` naming
what produced it (:class:`rest_mcts.loop.steps.StepRunner`); a job killed at any point and
started again with the same command resumes at the first unfinished step. ``stage.dir``
defaults to ``outputs/loop_runs/<data>-s<seed>-<config hash>``, so re-running the same
command resumes and a changed config starts a fresh folder. The results table (markdown
and CSV) and a plot of accuracy by iteration go to that folder and to the logger.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rest_mcts.config import ConfigError, check_range
from rest_mcts.loop.report import markdown, write_report
from rest_mcts.loop.steps import StepRunner
from rest_mcts.stages.common import build_world, resolve_policy_path
from rest_mcts.stages.subrun import derive, run_search_in, search_config
from rest_mcts.utils.hashing import fingerprint
from rest_mcts.utils.io import read_jsonl

log = logging.getLogger(__name__)

PRM_DATA = ("cumulative", "init_and_current", "current")
MODEL_INIT = ("base", "previous")
POLICY_DATA = ("cumulative", "current")


def loop_config(cfg: DictConfig) -> dict[str, Any]:
    """Everything that shapes the loop's results (not where files go, not logging)."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    for key in ("paths", "hydra", "logger", "run_name"):
        plain.pop(key, None)
    plain.get("stage", {}).pop("dir", None)
    for key in ("default_root_dir", "enable_progress_bar"):
        plain.get("trainer", {}).pop(key, None)
    return plain


def loop_dir(cfg: DictConfig) -> Path:
    """``stage.dir``, or a folder keyed by the loop's config (:func:`loop_config`)."""
    if cfg.stage.get("dir"):
        return Path(cfg.stage.dir)
    name = f"{cfg.data.name}-s{cfg.seed}-{fingerprint(loop_config(cfg))}"
    return Path(cfg.paths.root_dir) / "outputs" / "loop_runs" / name


def claim_dir(cfg: DictConfig, root: Path) -> None:
    """Record the loop's config in ``root/loop_config.json``; a folder made by a different
    config is refused (its finished steps would be reused for the wrong settings)."""
    from rest_mcts.utils.io import read_json, write_json

    key = fingerprint(loop_config(cfg))
    record = root / "loop_config.json"
    if record.is_file():
        old = read_json(record).get("fingerprint")
        if old != key:
            raise ConfigError(
                f"stage.dir='{root}' holds a loop run with another config (fingerprint {old}, "
                f"this one {key}); choose a new stage.dir or delete that folder"
            )
        return
    write_json(record, {"fingerprint": key, "config": loop_config(cfg)})


def check_loop_config(cfg: DictConfig) -> None:
    """One-line errors for bad loop settings, before any work."""
    s = cfg.stage
    check_range(cfg, "stage.iterations", 0, integer=True)
    check_range(cfg, "stage.train_problems", 1, integer=True)
    check_range(cfg, "stage.eval_problems", 1, integer=True)
    check_range(cfg, "stage.prm_eval_problems", 1, integer=True)
    check_range(cfg, "stage.concurrency", 1, integer=True)
    check_range(cfg, "stage.init_prm.num_problems", 1, integer=True)
    check_range(cfg, "stage.prm_train.init_epochs", 1, integer=True)
    check_range(cfg, "stage.prm_train.epochs", 1, integer=True)
    if "HFValueScorer" not in str(cfg.prm.scorer.get("_target_", "")):
        raise ConfigError(f"prm={cfg.prm.name}: the loop trains a neural PRM (use prm=tiny or a model's PRM)")
    for key, allowed in (("prm_data", PRM_DATA), ("prm_init", MODEL_INIT),
                         ("policy_init", MODEL_INIT), ("policy_data", POLICY_DATA)):
        if s[key] not in allowed:
            raise ConfigError(f"stage.{key}={s[key]} is not one of {list(allowed)}")
    if cfg.search.name != "mcts_star":
        raise ConfigError(
            f"search={cfg.search.name}: the loop searches with MCTS* (search=mcts_star); "
            "other methods are evaluated alongside it"
        )


def loop(cfg: DictConfig) -> dict[str, float]:
    """stage=loop: run (or resume) the self-training loop; returns the last row's metrics."""
    from rest_mcts.stages.init_prm import build_d_v0
    from rest_mcts.training.loggers import build_logger, finish_logger

    check_loop_config(cfg)
    s = cfg.stage
    root = loop_dir(cfg)
    runner = StepRunner(root)
    claim_dir(cfg, root)
    log.info("self-training loop in %s", root)
    world = build_world(cfg)
    base = str(resolve_policy_path(cfg))
    logger = build_logger(cfg.get("logger"), root)

    runner.run("iter_0/policy", lambda d: {"model": base},
               produced_by="bootstrap: the base policy (iteration 0)")
    d_v0 = runner.run(
        "iter_0/d_v0", lambda d: {**build_d_v0(cfg, s.init_prm, d, base),
                                  "file": str(d / "d_v.jsonl")},
        produced_by=f"init_prm (method={s.init_prm.method})", inputs={"policy": base},
    )
    prm_eval = runner.run(
        "prm_eval_set", lambda d: _prm_eval_set(cfg, d, base),
        produced_by="BFS trees of the base policy on the val split (fixed PRM evaluation set)",
        inputs={"policy": base},
    )
    prm = runner.run(
        "iter_0/prm", lambda d: _train_prm(cfg, d, [d_v0["file"]], base, s.prm_train.init_epochs),
        produced_by="train_prm on D_V0 (PRM_0)", inputs={"data": [d_v0["file"]], "init": base},
    )["model"]
    policy = base
    rows = [_evaluate(cfg, runner, world, 0, policy, prm, prm_eval["file"],
                      {"data/d_v_rows": d_v0.get("d_v0/d_v_rows")})]
    _log_row(logger, rows[-1])
    d_v_files, d_g_files = [d_v0["file"]], []
    for k in range(1, int(s.iterations) + 1):
        it = f"iter_{k}"
        search = runner.run(
            f"{it}/search",
            lambda d: {**run_search_in(cfg, d, search=cfg.search, split="train",
                                       num_problems=s.train_problems, policy_path=policy,
                                       prm_path=prm, label_trees=True),
                       "trees": str(d / "trees")},
            produced_by="MCTS* on the training questions (verified trees)",
            inputs={"policy": policy, "prm": prm},
        )
        data = runner.run(
            f"{it}/extract", lambda d: {**_extract(search["trees"], d, s.d_g_min_value),
                                       "d_v": str(d / "d_v.jsonl"), "d_g": str(d / "d_g.jsonl")},
            produced_by="extract: D_V and D_G from the verified trees", inputs={"trees": search["trees"]},
        )
        d_v_files.append(data["d_v"])
        d_g_files.append(data["d_g"])
        prm_files = _mix(s.prm_data, d_v_files)
        prm_start = prm if s.prm_init == "previous" else base
        prm = runner.run(
            f"{it}/prm", lambda d: _train_prm(cfg, d, prm_files, prm_start, s.prm_train.epochs),
            produced_by=f"train_prm (PRM_{k}, data={s.prm_data}, init={s.prm_init})",
            inputs={"data": prm_files, "init": prm_start},
        )["model"]
        sft_files = d_g_files if s.policy_data == "cumulative" else d_g_files[-1:]
        policy_start = policy if s.policy_init == "previous" else base
        policy = runner.run(
            f"{it}/policy", lambda d: _train_policy(cfg, d, sft_files, policy_start),
            produced_by=f"train_policy (policy_{k}, SFT on D_G, init={s.policy_init})",
            inputs={"data": sft_files, "init": policy_start},
        )["model"]
        extra = {
            "data/d_v_rows": data.get("extract/d_v_rows"),
            "data/d_g_traces": data.get("extract/d_g_traces"),
            "search/train_acc": search.get("search/acc"),
        }
        rows.append(_evaluate(cfg, runner, world, k, policy, prm, prm_eval["file"], extra))
        _log_row(logger, rows[-1])

    title = f"ReST-MCTS* self-training on {cfg.data.name}, seed {cfg.seed}"
    paths = write_report(rows, root, title)
    finish_logger(logger)
    print("\n" + title + " (held-out " + f"{s.eval_problems} problems)\n\n" + markdown(rows))
    print(f"results: {paths['markdown']} and {paths['csv']}")
    print(f"plot:    {paths['plot']}")
    print(f"trees:   {root}/iter_*/search/trees (training), {root}/iter_*/eval_*/trees (evaluation)")
    print(f"models:  {root}/iter_*/prm/model, {root}/iter_*/policy/model "
          f"(Lightning checkpoints in iter_*/*/checkpoints)")
    last = {f"loop/{key}": float(v) for key, v in rows[-1].items() if v is not None}
    first = rows[0]
    for key in ("cot/acc", "mcts/acc", "prm/val_oracle_acc"):
        if first.get(key) is not None and rows[-1].get(key) is not None:
            last[f"loop/gain_{key}"] = float(rows[-1][key] - first[key])
    return last


# ---------------------------------------------------------------------------- steps
def _prm_eval_set(cfg: DictConfig, folder: Path, policy: str) -> dict[str, Any]:
    """Full BFS trees of the base policy on val questions; every legal node a row."""
    from rest_mcts.search.value import extract_samples
    from rest_mcts.stages.extract import load_trees, _write_jsonl
    from rest_mcts.stages.init_prm import sample_bfs_trees

    trees_dir = sample_bfs_trees(cfg, cfg.stage.init_prm, folder, "val",
                                 cfg.stage.prm_eval_problems, policy)
    rows = [
        {"question": s.question, "steps": list(s.steps), "target": s.target}
        for tree in load_trees(trees_dir)
        for s in extract_samples(tree, require_correct_leaf=False)
    ]
    _write_jsonl(folder / "d_v.jsonl", rows)
    return {"file": str(folder / "d_v.jsonl"), "rows": len(rows)}


def _extract(trees: str, folder: Path, min_value: float | None) -> dict[str, float]:
    from rest_mcts.stages.extract import extract_data

    return extract_data(trees, folder, min_value)


def _mix(mode: str, d_v_files: list[str]) -> list[str]:
    """PRM data of iteration k: D_V0 plus every D_V_j, D_V0 plus D_V_k, or D_V_k alone."""
    if mode == "cumulative":
        return list(d_v_files)
    if mode == "init_and_current":
        return [d_v_files[0], d_v_files[-1]] if len(d_v_files) > 1 else list(d_v_files)
    return d_v_files[-1:]


def _last_ckpt(folder: Path) -> str | None:
    last = folder / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


def _train_prm(
    cfg: DictConfig, folder: Path, files: list[str], init: str, epochs: int
) -> dict[str, Any]:
    from rest_mcts.stages.train_prm import train_prm_model

    if not any(read_jsonl(f) for f in files):
        raise ConfigError(
            f"no PRM training rows in {files}: no tree of the base policy reached a correct "
            "answer; raise stage.init_prm.num_problems or use stage.init_prm.method=reference"
        )
    sub = derive(cfg, {"paths.output_dir": str(folder), "prm.epochs": int(epochs)})
    metrics = train_prm_model(
        sub, files, folder / "model", init, ckpt_dir=folder / "checkpoints",
        ckpt_path=_last_ckpt(folder), val_share=cfg.stage.val_share,
    )
    return {"model": str(folder / "model"), **metrics}


def _train_policy(cfg: DictConfig, folder: Path, files: list[str], init: str) -> dict[str, Any]:
    from rest_mcts.stages.train_policy import fine_tuning_config, train_policy_sft

    files = [f for f in files if any(True for _ in read_jsonl(f))]
    if not files:
        log.warning("no correct traces (D_G is empty): policy unchanged")
        return {"model": init, "train/steps": 0.0}
    sub = fine_tuning_config(derive(cfg, {"paths.output_dir": str(folder)}))
    metrics = train_policy_sft(
        sub, files, folder / "model", init, ckpt_dir=folder / "checkpoints",
        ckpt_path=_last_ckpt(folder), val_share=cfg.stage.val_share,
    )
    return {"model": str(folder / "model"), **metrics}


def _evaluate(
    cfg: DictConfig, runner: StepRunner, world, k: int, policy: str, prm: str,
    prm_eval_file: str, extra: dict[str, Any],
) -> dict[str, Any]:
    """Held-out evaluation of iteration k: CoT, MCTS*, self-consistency at MCTS*'s tokens,
    PRM metrics. Each is its own step (resumable)."""
    s = cfg.stage
    it = f"iter_{k}"
    inputs = {"policy": policy, "prm": prm}

    def run_eval(name: str, search: DictConfig, prm_path: str | None) -> dict[str, Any]:
        return runner.run(
            f"{it}/eval_{name}",
            lambda d: run_search_in(cfg, d, search=search, split=s.eval_split,
                                    num_problems=s.eval_problems, policy_path=policy,
                                    prm_path=prm_path, label_trees=False, stage_name="eval"),
            produced_by=f"eval: {search.name} on the {s.eval_split} split", inputs=inputs,
        )

    cot = run_eval("cot", search_config(cfg, "cot"), None)
    mcts = run_eval("mcts_star", cfg.search, prm)
    per_sample = max(1.0, cot["eval/policy_tokens_per_question"])
    n = max(1, math.ceil(mcts["eval/policy_tokens_per_question"] / per_sample))
    n = min(n, int(s.sc_max_n))
    sc = run_eval("self_consistency", search_config(
        cfg, "self_consistency", {"n": n, "temperature": cfg.search.temperature}), None)
    prm_metrics = runner.run(
        f"{it}/eval_prm", lambda d: prm_validation(cfg, prm, prm_eval_file, world),
        produced_by="PRM on the fixed validation set", inputs={"prm": prm, "data": prm_eval_file},
    )
    row = {
        "iteration": k,
        "cot/acc": cot["eval/acc"], "cot/tokens": cot["eval/policy_tokens_per_question"],
        "sc/acc": sc["eval/acc"], "sc/n": n, "sc/tokens": sc["eval/policy_tokens_per_question"],
        "mcts/acc": mcts["eval/acc"], "mcts/tokens": mcts["eval/policy_tokens_per_question"],
        "mcts/prm_calls": mcts["eval/prm_calls_per_question"],
        **{f"prm/{key.replace('/', '_')}": v for key, v in prm_metrics.items()},
        **{key: v for key, v in extra.items() if v is not None},
    }
    log.info("iteration %d: CoT %.3f, SC@%d %.3f, MCTS* %.3f, PRM oracle acc %s",
             k, row["cot/acc"], n, row["sc/acc"], row["mcts/acc"],
             row.get("prm/val_oracle_acc"))
    return row


def prm_validation(cfg: DictConfig, prm: str, data_file: str, world) -> dict[str, float]:
    """The PRM at ``prm`` on D_V rows: val/mse, val/acc@0.1 and, with the world's oracle,
    val/oracle_acc and val/oracle_mse (:func:`rest_mcts.training.prm.value_metrics`)."""
    from rest_mcts.config import instantiate
    from rest_mcts.stages.train_prm import countdown_oracle
    from rest_mcts.training.prm import value_metrics
    from rest_mcts.training.prm_data import read_value_rows

    rows = read_value_rows(data_file)
    scorer = instantiate(cfg.prm.scorer, "prm.scorer", model_path=str(prm))
    preds = scorer.score([(r.question, tuple(r.steps)) for r in rows])
    return value_metrics(preds, rows, countdown_oracle(world))


def _log_row(logger: Any, row: dict[str, Any]) -> None:
    if logger:
        logger.log_metrics({f"loop/{k}": float(v) for k, v in row.items() if v is not None},
                           step=int(row["iteration"]))

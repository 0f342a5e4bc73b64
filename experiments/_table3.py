"""The paper's Table 3 on this project's world: verifiers compared at equal policy tokens.

    python experiments/_table3.py --run 0=outputs/loop_runs/countdown-s0-<hash> \\
        --run 1=outputs/loop_runs/countdown-s1-<hash> ... [--iteration K] [--problems 200]

For each seed, the models of iteration k of a finished loop folder (``--run SEED=FOLDER``;
``--iteration``, default the folder's last): policy_k (``iter_k/policy``) and PRM_k
(``iter_k/prm/model``), and an outcome reward model (ORM) trained here from the SAME verified
trees PRM_k's D_V came from (the trees behind the D_V files in PRM_k's manifest: D_V0's BFS
trees ``iter_0/d_v0/bfs/trees`` and every ``iter_j/search/trees``;
:func:`rest_mcts.loop.orm_data.orm_rows`: each finished leaf, target 1 for a correct final
answer, else 0). The ORM is the PRM's value head and regression
(:func:`rest_mcts.loop.train.train_prm_model`) started, as PRM_0, from policy_0's backbone with a
fresh head, for the loop's PRM_0 epochs (``stage.prm_train.init_epochs``).

On the seed's held-out questions (the loop's ``stage.eval_split``, ``--problems`` of them) the
methods run as the loop evaluates them (:mod:`rest_mcts.loop.evaluate`): CoT and MCTS* (the
loop's own MCTS* config) with PRM_k, then ONE sampling pass (``search=sampled``: n_max =
twice MCTS*'s tokens in CoT solutions, capped by ``stage.sc_max_n``; MCTS*'s temperature) whose
samples every sampling verifier reads: self-consistency; PRM best-of-N (the product of the
step values, the paper's, and the last value) and the PRM-weighted vote (SC + value) with
PRM_k's values; ORM best-of-N and the ORM-weighted vote with the ORM's score of each whole
sampled solution. Each rule's accuracy over N = 1, 2, 4, ..., n_max is read at MCTS*'s policy
tokens per question by linear interpolation in log tokens
(:func:`rest_mcts.loop.evaluate.rules_at_tokens`), so every row spends MCTS*'s tokens;
a rule whose curve does not bracket them holds its end's accuracy at the end's tokens and is
marked. All verifiers judge the same samples: their differences are the verifiers' alone.

The table follows the paper's layout (rows: methods; the column: this world), each cell the
accuracy's mean and min..max over seeds with the mean policy tokens per question beside it.
Writes ``experiments/results/table3.md`` (``--results``) with the command and the machine's
load, and caches every search, the ORM and each seed's cells under ``--out``: a rerun skips
what is done (a killed search resumes at its first unanswered question).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from _common import ROOT, markdown_table

log = logging.getLogger("table3")

# method -> label, in the paper's order (Table 3's columns SC / ORM / SC+ORM / PRM / SC+PRM
# value, then MCTS*)
METHODS: dict[str, str] = {
    "sc": "SC (self-consistency)",
    "orm_best_of_n": "ORM (best-of-N)",
    "orm_weighted_vote": "SC + ORM (ORM-weighted vote)",
    "prm_best_of_n": "PRM best-of-N (product of step values)",
    "prm_best_of_n_last": "PRM best-of-N (last step value)",
    "prm_weighted_vote": "SC + PRM value (PRM-weighted vote)",
    "mcts_star": "MCTS*",
}
# the rows read from the sampling pass: method -> (verifier, column prefix of rules_at_tokens)
SAMPLED: dict[str, tuple[str, str]] = {
    "sc": ("prm", "sc"),
    "prm_best_of_n": ("prm", "best_of_n_prod"),
    "prm_best_of_n_last": ("prm", "best_of_n"),
    "prm_weighted_vote": ("prm", "weighted_vote"),
    "orm_best_of_n": ("orm", "best_of_n"),
    "orm_weighted_vote": ("orm", "weighted_vote"),
}


# the prm.* training settings the ORM shares with the loop's PRM (a difference is warned about)
PRM_TRAINING = ("lr", "weight_decay", "warmup_ratio", "batch_size", "max_length")


# ---------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class SeedInputs:
    """What one seed's row of the table is made from.

    Attributes:
        seed: the run seed (questions, sampling).
        policy: the policy searched with (policy_k).
        prm: the PRM scoring MCTS* and the PRM rules (PRM_k).
        trees: folders of verified trees the ORM is trained on (those of PRM_k's D_V).
        orm_init: the causal LM whose backbone starts the ORM (policy_0, as PRM_0).
        folder: the loop folder they come from ("" when given directly).
        iteration: k ("" when given directly).
    """

    seed: int
    policy: str
    prm: str
    trees: tuple[str, ...]
    orm_init: str
    folder: str = ""
    iteration: str = ""

    def __post_init__(self) -> None:
        if not self.trees:
            raise ValueError(f"seed {self.seed}: no verified trees to train the ORM on")


def _outputs(folder: Path, step: str) -> dict[str, Any]:
    path = folder / step / "manifest.json"
    if not path.is_file():
        raise SystemExit(f"error: {folder} has no finished step {step} ({path} is missing)")
    return json.loads(path.read_text())


def trees_of_d_v(files: Iterable[str | Path]) -> list[Path]:
    """The verified-tree folders behind D_V files the loop wrote: ``iter_0/d_v0/d_v.jsonl``
    comes from ``iter_0/d_v0/bfs/trees`` (D_V0 by BFS; reference D_V0 has no trees and is
    skipped), ``iter_k/extract/d_v.jsonl`` from ``iter_k/search/trees``."""
    out = []
    for f in files:
        folder = Path(f).parent
        trees = (folder / "bfs" / "trees" if folder.name == "d_v0" else
                 folder.parent / "search" / "trees" if folder.name == "extract" else None)
        if trees is not None and trees.is_dir():
            out.append(trees)
        else:
            log.warning("%s: no verified trees behind it (left out of the ORM's data)", f)
    return out


def loop_inputs(seed: int, folder: str | Path, iteration: int | None = None) -> SeedInputs:
    """Policy_k, PRM_k, PRM_k's trees and policy_0 of a loop folder (``iteration`` None: the
    last iteration whose PRM and policy are finished); SystemExit in one line when missing."""
    folder = Path(folder)
    if iteration is None:
        done = [int(p.parent.parent.name.split("_")[1])
                for p in folder.glob("iter_*/prm/manifest.json")
                if (p.parent.parent / "policy" / "manifest.json").is_file()]
        if not done:
            raise SystemExit(f"error: seed {seed}: {folder} is not a loop folder with a "
                             "finished iteration (iter_k/policy and iter_k/prm)")
        iteration = max(done)
    it = f"iter_{iteration}"
    prm = _outputs(folder, f"{it}/prm")
    policy = _outputs(folder, f"{it}/policy")["outputs"]["model"]
    base = _outputs(folder, "iter_0/policy")["outputs"]["model"]
    trees = trees_of_d_v(prm["inputs"].get("data") or [])
    if not trees:
        raise SystemExit(f"error: seed {seed}: PRM_{iteration} of {folder} has no verified "
                         "trees behind its data (D_V0 by reference solutions alone)")
    return SeedInputs(seed, str(policy), str(prm["outputs"]["model"]),
                      tuple(str(t) for t in trees), str(base), str(folder), str(iteration))


def loop_saved_config(folder: str | Path) -> dict[str, Any]:
    """The loop folder's recorded config (``loop_config.json``; {} without one)."""
    path = Path(folder) / "loop_config.json"
    return json.loads(path.read_text())["config"] if path.is_file() else {}


# ---------------------------------------------------------------------------- pieces
def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def train_orm(ctx: Any, inputs: SeedInputs, out: Path, epochs: int,
              val_share: float = 0.1) -> dict[str, Any]:
    """The seed's ORM on its trees (cached in ``out``: ``model``, ``orm_data.jsonl``,
    ``manifest.json``); returns the manifest (``model``, row counts, training metrics)."""
    from rest_mcts.loop.data import load_trees
    from rest_mcts.loop.orm_data import orm_rows
    from rest_mcts.loop.train import train_prm_model
    from rest_mcts.utils.io import write_json, write_jsonl

    manifest = out / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text())
    rows = [r for folder in inputs.trees for r in orm_rows(load_trees(folder))]
    if not any(r["target"] for r in rows) or all(r["target"] for r in rows):
        raise SystemExit(f"error: seed {inputs.seed}: the ORM needs correct and wrong finished "
                         f"solutions; the trees hold {len(rows)} with "
                         f"{sum(r['target'] for r in rows):.0f} correct")
    data = write_jsonl(out / "orm_data.jsonl", rows)
    start = time.time()
    metrics = train_prm_model(ctx, [data], out / "model", inputs.orm_init,
                              settings=ctx.prm.replace(epochs=int(epochs)),
                              ckpt_dir=out / "checkpoints", val_share=val_share)
    record = {"model": str(out / "model"), "rows": len(rows),
              "correct_rows": sum(r["target"] for r in rows), "epochs": int(epochs),
              "trees": list(inputs.trees), "init": inputs.orm_init,
              "seconds": time.time() - start, "metrics": metrics}
    write_json(manifest, record)
    return record


def orm_rescored(rows: Sequence[Mapping[str, Any]], scorer: Any) -> list[dict]:
    """The sampling pass's results rows with each sample's ``value`` the ORM's score of the
    whole sampled solution (its legal steps, as best-of-N scores them) and no step values."""
    texts, where = [], []
    for i, row in enumerate(rows):
        for j, sample in enumerate(row.get("samples") or []):
            texts.append((row["question"], tuple(sample["steps"])))
            where.append((i, j))
    values = scorer.score(texts) if texts else []
    out = [{**row, "samples": [dict(s) for s in row.get("samples") or []]} for row in rows]
    for (i, j), value in zip(where, values):
        out[i]["samples"][j].update(value=float(value), step_values=[])
    return out


@dataclass(frozen=True)
class Cell:
    """One method on one seed: accuracy at the policy tokens per question it was read at.

    ``bracketed`` is False when a sampling rule's curve did not reach MCTS*'s tokens (its
    end's accuracy at the end's tokens is shown)."""

    seed: int
    method: str
    acc: float
    tokens: float
    questions: int
    bracketed: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; one of {list(METHODS)}")
        if not 0.0 <= self.acc <= 1.0 or self.tokens < 0 or self.questions < 1:
            raise ValueError(f"bad cell {self}")


def seed_cells(ctx: Any, mcts: Any, inputs: SeedInputs, run: Any, out: Path, *,
               sc_max_n: int, orm_epochs: int) -> list[Cell]:
    """Every row of the table for one seed (searches cached under ``out/runs``, the ORM under
    ``out/orm``, the cells in ``out/cells.json``)."""
    from rest_mcts.backends.registry import close_backend
    from rest_mcts.loop.evaluate import rules_at_tokens, sampled_n_max
    from rest_mcts.runtime.search_run import run_search, unique_rows
    from rest_mcts.search.configs import search_config
    from rest_mcts.search.selection import sample_metrics
    from rest_mcts.utils.io import write_json, write_jsonl

    cached = out / "cells.json"
    if cached.is_file():
        return [Cell(**c) for c in json.loads(cached.read_text())["cells"]]

    def search(name: str, config: Any, prm: str | None) -> tuple[dict[str, Any], Path]:
        folder = out / "runs" / f"{name}-{_key(config.to_dict(), inputs.policy, prm)}"
        metrics = run_search(ctx, folder, config, run, policy_path=inputs.policy, prm_path=prm)
        log.warning("seed %d %s: acc %.3f, %.0f policy tokens/question", inputs.seed, name,
                    metrics["eval/acc"], metrics["eval/policy_tokens_per_question"])
        return metrics, folder

    cot, _ = search("cot", search_config("cot"), None)
    mcts_metrics, _ = search("mcts_star", mcts, inputs.prm)
    target = mcts_metrics["eval/policy_tokens_per_question"]
    n_max = sampled_n_max(target, cot["eval/policy_tokens_per_question"], sc_max_n)
    sampled, folder = search("sampled", search_config("sampled", n=n_max,
                                                      temperature=mcts.temperature), inputs.prm)
    orm = train_orm(ctx, inputs, out / "orm", orm_epochs)
    scorer = ctx.build_scorer(orm["model"], None)
    try:
        rescored = orm_rescored(unique_rows(folder / "results.jsonl"), scorer)
    finally:
        close_backend(scorer)
    write_jsonl(out / "orm_scored_results.jsonl", rescored)
    at = {"prm": rules_at_tokens(sampled, target),
          "orm": rules_at_tokens(sample_metrics(rescored, "eval"), target)}
    questions = int(mcts_metrics["eval/num_questions"])
    cells = [Cell(inputs.seed, "mcts_star", mcts_metrics["eval/acc"], target, questions)]
    for method, (verifier, prefix) in SAMPLED.items():
        row = at[verifier]
        cells.append(Cell(inputs.seed, method, row[f"{prefix}/acc"], row[f"{prefix}/tokens"],
                          questions, bracketed=bool(row["sampled/bracketed"])))
    write_json(cached, {"cells": [asdict(c) for c in cells], "inputs": asdict(inputs),
                        "n_max": n_max, "cot": cot, "mcts_star": mcts_metrics, "orm": orm,
                        "uptime": uptime()})
    return cells


# ---------------------------------------------------------------------------- the table
def table3_markdown(cells: Iterable[Cell], column: str = "accuracy") -> str:
    """Markdown in the paper's layout: one row per method (:data:`METHODS` order), the cell
    ``mean (min..max) · T tok``: accuracy over seeds and mean policy tokens per question; a
    ``*`` marks a rule read outside its curve on some seed. Methods without cells are left
    out."""
    cells = list(cells)
    rows = []
    for method, label in METHODS.items():
        mine = sorted((c for c in cells if c.method == method), key=lambda c: c.seed)
        if not mine:
            continue
        accs = [c.acc for c in mine]
        mark = "" if all(c.bracketed for c in mine) else " *"
        rows.append([label, f"{statistics.fmean(accs):.3f} ({min(accs):.3f}..{max(accs):.3f})"
                     f" · {statistics.fmean(c.tokens for c in mine):.0f} tok{mark}",
                     " ".join(f"{c.acc:.3f}" for c in mine), len(mine)])
    return markdown_table(["method", f"{column}: mean (min..max over seeds) · policy tokens "
                           "per question", "per seed", "seeds"], rows)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def compose_for(inputs: SeedInputs, out: Path, overrides: Sequence[str]) -> Any:
    """The composed config of ``stage=eval`` at the seed, on the loop folder's world (its
    ``data`` option unless ``overrides`` name one); SystemExit when the folder's world or
    seed differ from the composed ones."""
    from omegaconf import OmegaConf

    from _common import compose

    saved = loop_saved_config(inputs.folder) if inputs.folder else {}
    data = [] if any(o.startswith("data=") for o in overrides) or "data" not in saved else [
        f"data={saved['data']['name']}"]
    cfg = compose("stage=eval", f"seed={inputs.seed}", "~logger",
                  f"paths.output_dir={out / 'hydra'}", *data, *overrides)
    if saved:
        mine = OmegaConf.to_container(cfg.data, resolve=True)
        for key in ("world", "max_solution_tokens"):
            if saved["data"].get(key) != mine.get(key):
                raise SystemExit(f"error: seed {inputs.seed}: {inputs.folder} was made with "
                                 f"another data.{key} than this run composes")
        if int(saved.get("seed", inputs.seed)) != inputs.seed:
            raise SystemExit(f"error: {inputs.folder} is the loop of seed {saved['seed']}, "
                             f"not {inputs.seed}")
        prm = OmegaConf.to_container(cfg.prm, resolve=True)
        differ = [f"prm.{k}" for k in PRM_TRAINING if saved.get("prm", {}).get(k) != prm.get(k)]
        if differ:
            log.warning("seed %d: the ORM trains with %s unlike the loop's PRM (pass the loop's "
                        "values as overrides to match)", inputs.seed, ", ".join(differ))
    return cfg


def run_table3(inputs: Sequence[SeedInputs], *, out: str | Path, problems: int = 200,
               sc_max_n: int | None = None, orm_epochs: int | None = None,
               overrides: Sequence[str] = ()) -> tuple[str, list[Cell]]:
    """Table 3 over the seeds of ``inputs`` (one :class:`SeedInputs` each; from a loop folder:
    :func:`loop_inputs`), each seed's work cached under ``out/s<seed>-<key>``.

    Args:
        inputs: the models and trees of each seed.
        out: the cache folder.
        problems: held-out questions per seed.
        sc_max_n: cap on the sampling pass's n (None: the loop folder's ``stage.sc_max_n``,
            else the composed config's).
        orm_epochs: the ORM's epochs (None: the loop's ``stage.prm_train.init_epochs``,
            PRM_0's, from the folder's config, else the composed config's).
        overrides: config overrides (``key=value``) for every seed, as on run.py's command line.

    Returns:
        The markdown table (:func:`table3_markdown`) and the cells.
    """
    from rest_mcts.runtime.context import Context
    from rest_mcts.runtime.search_run import SearchRun
    from rest_mcts.search.configs import search_config_from
    from rest_mcts.utils.seeding import fix_threads

    out = Path(out)
    cells: list[Cell] = []
    for item in inputs:
        cfg = compose_for(item, out, overrides)
        saved = loop_saved_config(item.folder) if item.folder else {}
        stage = saved.get("stage") or {}
        loop_cfg = _loop_stage_defaults(cfg, overrides)
        n_cap = int(sc_max_n or stage.get("sc_max_n") or loop_cfg["sc_max_n"])
        epochs = int(orm_epochs or (stage.get("prm_train") or {}).get("init_epochs")
                     or loop_cfg["prm_train"]["init_epochs"])
        mcts = search_config_from(saved["search"] if "search" in saved else cfg.search)
        split = str(stage.get("eval_split") or loop_cfg["eval_split"])
        fix_threads(cfg.get("threads"))  # torch's CPU threads, as run.py sets them
        ctx = Context.from_config(cfg)
        run = SearchRun(split=split, num_problems=int(problems),
                        concurrency=int(cfg.stage.concurrency),
                        cache_values=bool(cfg.stage.cache_values), prefix="eval")
        key = _key(asdict(item), mcts.to_dict(), split, problems, n_cap, epochs,
                   sorted(overrides))
        cells += seed_cells(ctx, mcts, item, run, out / f"s{item.seed}-{key}",
                            sc_max_n=n_cap, orm_epochs=epochs)
    return table3_markdown(cells), cells


def _loop_stage_defaults(cfg: Any, overrides: Sequence[str]) -> dict[str, Any]:
    """``stage=loop``'s settings as the overrides compose them (for inputs given without a
    loop folder)."""
    from omegaconf import OmegaConf

    from _common import compose

    data = [f"data={cfg.data.name}"] if not any(o.startswith("data=") for o in overrides) else []
    loop = compose("stage=loop", "~logger", *data, *overrides)
    return OmegaConf.to_container(loop.stage, resolve=True)


# ---------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", default=[], metavar="SEED=FOLDER",
                        help="a finished loop folder of one seed (repeat per seed)")
    parser.add_argument("--iteration", type=int, default=None,
                        help="k of the models (default: each folder's last)")
    parser.add_argument("--problems", type=int, default=200, help="held-out questions per seed")
    parser.add_argument("--sc-max-n", type=int, default=None)
    parser.add_argument("--orm-epochs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "table3")
    parser.add_argument("--results", type=Path, default=ROOT / "experiments" / "results" /
                        "table3.md")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the report (e.g. how the loop folders were made)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. threads=1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    if not args.run:
        parser.error("give at least one --run SEED=FOLDER")
    inputs = []
    for item in args.run:
        seed, sep, folder = item.partition("=")
        if not sep or not seed.isdigit():
            parser.error(f"--run {item!r}: expected SEED=FOLDER")
        inputs.append(loop_inputs(int(seed), folder, args.iteration))
    start, load_before = time.time(), uptime()
    table, cells = run_table3(inputs, out=args.out, problems=args.problems,
                              sc_max_n=args.sc_max_n, orm_epochs=args.orm_epochs,
                              overrides=args.overrides)
    command = shlex.join(["python", "experiments/_table3.py", *(argv or sys.argv[1:])])
    report = table3_report(inputs, table, cells, command=command, start=start,
                           load_before=load_before, notes=args.note)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(report)
    print(report)


def table3_report(inputs: Sequence[SeedInputs], table: str, cells: Sequence[Cell], *,
                  command: str, start: float, load_before: str,
                  notes: Sequence[str] = ()) -> str:
    """The Table 3 results file: the command, the machine's load and wall time, each seed's
    models and trees, the table and the paper's numbers for scale."""
    models = "\n".join(
        f"- seed {i.seed}: `{_rel(i.folder)}` iteration {i.iteration}: policy `{_rel(i.policy)}`,"
        f" PRM `{_rel(i.prm)}`; ORM from policy_0 `{_rel(i.orm_init)}` on "
        + ", ".join(f"`{_rel(t)}`" for t in i.trees) for i in inputs)
    models += "".join(f"\n- Note: {n}" for n in notes)
    questions = sorted({c.questions for c in cells})
    return f"""# Table 3: verifiers at equal policy tokens

`{command}`

Machine load: before `{load_before}`; after `{uptime()}`; wall {time.time() - start:.0f} s
(cached searches are not rerun).

{models}

{'/'.join(map(str, questions))} held-out questions per seed. Every sampling verifier reads
the same samples (one sampling pass per seed) at MCTS*'s policy tokens per question
(interpolated in log tokens between the two N that bracket them; `*`: outside the curve on
some seed, the end's accuracy at the end's tokens).

{table}

For scale, the paper's Table 3 (Mistral-7B: MetaMATH policy; SC / ORM / SC+ORM / Math-Shepherd /
SC+Math-Shepherd / SC+ReST-MCTS* value): GSM8K 83.9 / 86.2 / 86.6 / 87.1 / 86.3 / 87.5,
MATH500 35.1 / 36.4 / 38.0 / 37.3 / 38.3 / 39.0.
"""


def _rel(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main()

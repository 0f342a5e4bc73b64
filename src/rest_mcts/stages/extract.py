"""stage=extract: the self-training data of one iteration from verified search trees.

From a folder of verified trees (``stage=search`` with ``label_trees``) it writes

* ``d_v.jsonl`` -- D_V, the PRM targets: one row per legal node of every tree that has a
  correct leaf, with the quality value v_k of Eq. (1)-(3) as target
  (:func:`rest_mcts.search.value.extract_samples`); trees without a correct leaf give
  nothing, since their distances m_k are unknown;
* ``d_g.jsonl`` -- D_G, the policy's SFT data: the step list of every correct finished leaf,
  deduplicated per question, optionally only those whose PRM value reaches
  ``min_value`` (the value the search stored on the leaf);
* ``counts.json`` -- how many trees, trees with a correct leaf, rows and traces.

    python run.py stage=extract stage.trees_dir=outputs/search/<run>/trees
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from rest_mcts.config import ConfigError
from rest_mcts.utils.io import append_jsonl, write_json

log = logging.getLogger(__name__)


def load_trees(trees_dir: str | Path) -> list:
    """Every tree JSON in a folder, in file-name order; a broken file names itself."""
    from rest_mcts.search.tree import Tree

    folder = Path(trees_dir)
    if not folder.is_dir():
        raise ConfigError(f"stage.trees_dir='{folder}' is not a folder of search trees")
    trees = []
    for path in sorted(folder.glob("*.json")):
        try:
            trees.append(Tree.load(path))
        except (KeyError, ValueError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a search tree ({err})") from err
    return trees


def correct_traces(tree, min_value: float | None = None) -> list[list[str]]:
    """Step lists of the tree's correct finished leaves (distinct, in node order), keeping
    only leaves whose PRM score (else their search value) is at least ``min_value`` when
    it is given."""
    from rest_mcts.search.value import is_correct_finish

    seen: set[tuple[str, ...]] = set()
    traces = []
    for node in tree.nodes:
        if not is_correct_finish(node):
            continue
        score = node.prm_score if node.prm_score is not None else node.value
        if min_value is not None and score < min_value:
            continue
        steps = tuple(tree.steps(node))
        if steps not in seen:
            seen.add(steps)
            traces.append(list(steps))
    return traces


def extract_data(
    trees_dir: str | Path, out_dir: str | Path, min_value: float | None = None
) -> dict[str, float]:
    """Write D_V (``d_v.jsonl``), D_G (``d_g.jsonl``) and ``counts.json`` into ``out_dir``.

    Both files are written whole (to a temporary name, then renamed), so a kill leaves
    either a finished file or none.

    Returns:
        ``extract/trees``, ``extract/trees_with_correct_leaf``, ``extract/d_v_rows`` and
        ``extract/d_g_traces``.
    """
    from rest_mcts.search.value import extract_samples

    out = Path(out_dir)
    trees = load_trees(trees_dir)
    d_v: list[dict] = []
    d_g: list[dict] = []
    with_correct = 0
    for tree in trees:
        samples = extract_samples(tree, require_correct_leaf=True)
        traces = correct_traces(tree, min_value)
        with_correct += bool(samples) or bool(traces)
        d_v += [
            {"question": s.question, "steps": list(s.steps), "target": s.target,
             "question_id": s.question_id, "m": s.m, "r": s.r}
            for s in samples
        ]
        d_g += [
            {"question": tree.question_text, "steps": steps, "question_id": tree.question_id}
            for steps in traces
        ]
    _write_jsonl(out / "d_v.jsonl", d_v)
    _write_jsonl(out / "d_g.jsonl", d_g)
    counts = {
        "extract/trees": float(len(trees)),
        "extract/trees_with_correct_leaf": float(with_correct),
        "extract/d_v_rows": float(len(d_v)),
        "extract/d_g_traces": float(len(d_g)),
    }
    write_json(out / "counts.json", counts)
    log.info(
        "extract: %d trees (%d with a correct leaf) -> %d D_V rows, %d D_G traces",
        len(trees), with_correct, len(d_v), len(d_g),
    )
    return counts


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    append_jsonl(tmp, rows)
    tmp.touch()
    tmp.replace(path)


def extract(cfg: DictConfig) -> dict[str, float]:
    """stage=extract: D_V and D_G of ``stage.trees_dir`` into the run folder."""
    if not cfg.stage.trees_dir:
        raise ConfigError("stage.trees_dir is required (a folder of verified search trees)")
    metrics = extract_data(cfg.stage.trees_dir, cfg.paths.output_dir, cfg.stage.min_value)
    from rest_mcts.training.loggers import build_logger, log_and_finish

    log_and_finish(build_logger(cfg.get("logger"), cfg.paths.output_dir), metrics)
    return metrics

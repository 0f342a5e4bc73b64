"""The one writer of the self-training data from verified search trees (Algorithm 1).

* D_V -- the PRM's targets: rows of every tree that has a correct leaf, with the quality
  value v_k of Eq. (1)-(3) as target (:func:`rest_mcts.search.value.extract_samples`);
  trees without a correct leaf give nothing, since their reasoning distances m_k are
  unknown. Which nodes give rows is ``nodes`` (``d_v_nodes`` in the configs):

  - ``paths`` (default, as the authors' code): only legal nodes on a path from the root to a
    finished leaf. A child the search generated but never explored has no finished leaf
    below it, so its hard estimate would say r = 1 even when it is one step from the answer:
    such nodes are left out.
  - ``all``: every legal node (the fixed PRM validation set uses it: it measures the PRM on
    every step the policy writes, not training labels).
* D_G -- the policy's SFT data: the step list of every correct finished leaf, deduplicated
  per question, optionally only leaves whose PRM value reaches ``min_value``.

The loop, ``stage=extract``, ``stage=train_prm`` and ``stage=train_policy`` all take their
rows from here, so the same trees give the same data everywhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Sequence

from rest_mcts.config import ConfigError
from rest_mcts.search.tree import Tree
from rest_mcts.search.value import extract_samples, is_correct_finish
from rest_mcts.utils.io import write_json, write_jsonl

log = logging.getLogger(__name__)


def load_trees(trees_dir: str | Path, option: str = "stage.trees_dir") -> list[Tree]:
    """Every tree JSON in a folder, in file-name order.

    Raises:
        ConfigError: the folder is missing, or a file is not a search tree (one line naming
            the file: a truncated or foreign file never ends in a traceback).
    """
    folder = Path(trees_dir)
    if not folder.is_dir():
        raise ConfigError(f"{option}='{folder}' is not a folder of search trees")
    trees = []
    for path in sorted(folder.glob("*.json")):
        try:
            trees.append(Tree.load(path))
        except (KeyError, ValueError, TypeError, IndexError, AttributeError,
                json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: not a search tree ({type(err).__name__}: {err})") from err
    return trees


D_V_NODES = ("paths", "all")


def check_d_v_nodes(value: str, option: str) -> None:
    """One-line error unless ``value`` names a D_V node set (:data:`D_V_NODES`)."""
    if value not in D_V_NODES:
        raise ConfigError(f"{option}={value} is not one of {list(D_V_NODES)}")


def on_finished_paths(tree: Tree) -> set[int]:
    """Ids of the nodes on a path from the root to a finished leaf (legal and terminal, correct
    or not), the finished leaves included and the root left out."""
    keep: set[int] = set()
    for leaf in tree.finished():
        node = leaf
        while node.parent is not None and node.id not in keep:
            keep.add(node.id)
            node = tree.nodes[node.parent]
    return keep


def d_v_rows(
    trees: Iterable[Tree], *, require_correct_leaf: bool = True, nodes: str = "paths"
) -> list[dict]:
    """D_V rows ``{question, steps, target, question_id, m, r}`` of verified trees.

    Args:
        trees: verified trees.
        require_correct_leaf: False also keeps trees without a correct leaf (their nodes get
            target 0): the fixed PRM validation set uses it.
        nodes: ``paths`` -- only nodes on a root-to-finished-leaf path (the authors' D_V);
            ``all`` -- every legal node (see the module docstring).
    """
    check_d_v_nodes(nodes, "d_v_nodes")
    rows = []
    for tree in trees:
        keep = on_finished_paths(tree) if nodes == "paths" else None
        rows += [
            {"question": s.question, "steps": list(s.steps), "target": s.target,
             "question_id": s.question_id, "m": s.m, "r": s.r}
            for s in extract_samples(tree, require_correct_leaf=require_correct_leaf)
            if keep is None or s.node_id in keep
        ]
    return rows


def correct_traces(tree: Tree, min_value: float | None = None) -> list[list[str]]:
    """Step lists of the tree's correct finished leaves (distinct, in node order), keeping
    only leaves whose PRM score (else their search value) is at least ``min_value`` when
    it is given."""
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


def d_g_rows(trees: Iterable[Tree], min_value: float | None = None) -> list[dict]:
    """D_G rows ``{question, steps, question_id}``: the correct traces of every tree."""
    return [
        {"question": tree.question_text, "steps": steps, "question_id": tree.question_id}
        for tree in trees
        for steps in correct_traces(tree, min_value)
    ]


def extract_data(
    trees_dir: str | Path, out_dir: str | Path, min_value: float | None = None,
    d_v_nodes: str = "paths",
) -> dict[str, float]:
    """Write D_V (``d_v.jsonl``, rows of the ``d_v_nodes`` set: ``paths`` | ``all``, see
    :func:`d_v_rows`), D_G (``d_g.jsonl``) and ``counts.json`` into ``out_dir``.

    Each file is written whole (temp file, then rename): a kill leaves a finished file or none.

    Returns:
        ``extract/trees``, ``extract/trees_with_correct_leaf``, ``extract/d_v_rows`` and
        ``extract/d_g_traces``.
    """
    out = Path(out_dir)
    trees = load_trees(trees_dir)
    d_v = d_v_rows(trees, nodes=d_v_nodes)
    d_g = d_g_rows(trees, min_value)
    with_correct = len({r["question_id"] for r in d_v} | {r["question_id"] for r in d_g})
    write_jsonl(out / "d_v.jsonl", d_v)
    write_jsonl(out / "d_g.jsonl", d_g)
    counts = {
        "extract/trees": float(len(trees)),
        "extract/trees_with_correct_leaf": float(with_correct),
        "extract/d_v_rows": float(len(d_v)),
        "extract/d_g_traces": float(len(d_g)),
    }
    write_json(out / "counts.json", counts)
    log.info("extract: %d trees (%d with a correct leaf) -> %d D_V rows (d_v_nodes=%s), "
             "%d D_G traces", len(trees), with_correct, len(d_v), d_v_nodes, len(d_g))
    return counts


def mix(mode: str, files: Sequence[str]) -> list[str]:
    """PRM data of iteration k (``stage.prm_data``): D_V0 plus every D_V_j (cumulative),
    D_V0 plus D_V_k (init_and_current), or D_V_k alone (current)."""
    if mode == "cumulative":
        return list(files)
    if mode == "init_and_current":
        return [files[0], files[-1]] if len(files) > 1 else list(files)
    return list(files[-1:])

"""Find a search run's trees and results, write their pages (``stage=view``).

One tree JSON (``<run>/trees/<id>.json`` or anywhere: :func:`write_tree`) or a search run's
folder (``<run>`` holding ``trees/`` and ``results.jsonl``: :func:`write_run`); a folder of
runs, and the choice among them, is :mod:`rest_mcts.view.folders`'s. Pages go to
``<run>/view/`` (a lone tree: a ``view/`` folder beside it) unless ``out`` names a folder
(or, for one tree, an ``.html`` file).

A tree the page could not draw is refused with one line naming the file and the node
(:func:`load_tree`): node ids that are not distinct integers, a step text that is not a string
(a number, null, an object), parent links that form a cycle, or children lists that reach a
node twice (a cycle, or a node under two parents). NaN and infinite numbers (a value, a PRM
score) are drawn, shown as ``nan``, ``inf`` or ``-inf``
(:func:`rest_mcts.view.html.json_for_script`): such a value is what the search saw, and the
page is where one looks for it. An MCTS* trace that does not parse, or names a node the tree
does not hold, is refused with one line naming the file and the trace line.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from pathlib import Path

from rest_mcts.utils.io import FileFormatError, json_kind, read_json
from rest_mcts.view.html import render_index_html, render_tree_html, replay_steps

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"
TREES = "trees"


class TreeFileError(FileFormatError):
    """A target that is missing or is not a search tree; the message names the file."""


def load_tree(path: Path) -> dict:
    """A tree record from ``path``, checked to be a search tree (nodes with ids, parents,
    steps and children, node 0 the root); TreeFileError naming the file otherwise."""
    if not path.is_file():
        raise TreeFileError(f"{path}: no such tree file")
    try:
        record = read_json(path, error=TreeFileError)
    except OSError as err:
        raise TreeFileError(f"{path}: cannot read ({err.strerror or err})") from None
    if isinstance(record, dict) and "samples" in record and "nodes" not in record:
        raise TreeFileError(f"{path}: not a tree JSON (sampled paths of "
                            f"{record.get('method', 'a sampling method')}, no nodes to draw)")
    nodes = record.get("nodes") if isinstance(record, dict) else None
    if not isinstance(nodes, list) or not nodes:
        raise TreeFileError(f"{path}: not a tree JSON (expected an object with a 'nodes' list)")
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not {"id", "parent", "step", "children"} <= set(node):
            raise TreeFileError(f"{path}: not a tree JSON (node {i} lacks id, parent, step "
                                f"or children)")
    if nodes[0]["id"] != 0 or nodes[0]["parent"] is not None:
        raise TreeFileError(f"{path}: not a tree JSON (node 0 is not the root)")
    _check_nodes(path, nodes)
    try:
        replay_steps(record)
    except ValueError as err:
        raise TreeFileError(f"{path}: {err}") from None
    return record


def _check_nodes(path: Path, nodes: list[dict]) -> None:
    """TreeFileError naming the file and node for what the page cannot draw (module
    docstring): ids, step texts, and parent and children links that loop."""
    by_id: dict[int, dict] = {}
    for i, node in enumerate(nodes):
        nid = node["id"]
        integer = isinstance(nid, int) and not isinstance(nid, bool)
        if not integer or nid in by_id:
            what = "repeats an earlier id" if integer else f"is {json_kind(nid)}"
            raise TreeFileError(f"{path}: node {i}: its id {nid!r} {what} (expected distinct "
                                f"integers)")
        if not isinstance(node["step"], str):
            raise TreeFileError(f"{path}: node {nid}: field 'step' is {json_kind(node['step'])}, "
                                f"expected a string (the step's text)")
        by_id[nid] = node
    rooted: set[int] = set()  # nodes whose parent chain is known to end
    for nid in by_id:
        chain: dict[int, None] = {}  # the walk up from nid, in order
        at = nid
        while at in by_id and at not in rooted:
            if at in chain:
                walk = list(chain)
                loop = " -> ".join(map(str, walk[walk.index(at):] + [at]))
                raise TreeFileError(f"{path}: node {at}: its parent links form a cycle ({loop})")
            chain[at] = None
            at = by_id[at]["parent"]
            at = at if isinstance(at, int) else None
        rooted.update(chain)
    reached_from, todo = {0: None}, deque([0])  # breadth first: shallow links come first
    while todo:
        nid = todo.popleft()
        children = by_id[nid]["children"]
        if not isinstance(children, list):
            raise TreeFileError(f"{path}: node {nid}: field 'children' is {json_kind(children)}, "
                                f"expected a list of node ids")
        for child in children:
            if not isinstance(child, int) or child not in by_id:
                continue  # a child the tree does not hold: the page leaves it out
            if child in reached_from:
                first = reached_from[child]
                where = "" if first is None else f" (already a child of node {first})"
                raise TreeFileError(f"{path}: node {nid}: its children list reaches node {child} "
                                    f"again{where}: the children links form a cycle or share "
                                    f"a node")
            reached_from[child] = nid
            todo.append(child)


def read_results(run_dir: Path) -> dict[str, dict]:
    """The run's ``results.jsonl`` rows by question id ({} without one; torn lines skipped)."""
    rows: dict[str, dict] = {}
    path = run_dir / RESULTS
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "id" in row:
            rows.setdefault(str(row["id"]), row)
    return rows


def _run_dir_of(tree_file: Path) -> Path | None:
    """The run folder of ``<run>/trees/<id>.json`` (None for a tree elsewhere)."""
    parent = tree_file.parent
    return parent.parent if parent.name == TREES else None


def _page(tree_file: Path, results: dict[str, dict], index_href: str | None) -> tuple[str, dict]:
    tree = load_tree(tree_file)
    qid = str(tree.get("question_id", tree_file.stem))
    result = results.get(qid)
    page = render_tree_html(tree, result=result, title=qid, index_href=index_href)
    entry = {"href": f"{tree_file.stem}.html", "question": tree.get("question", ""),
             "question_id": qid, "nodes": len(tree["nodes"])}
    if result:
        entry.update({k: result.get(k) for k in ("correct", "value", "prediction", "gold")})
    return page, entry


def write_tree(tree_file: Path, out: Path | None = None) -> Path:
    """The page of one tree JSON: into ``out`` (a folder, or an ``.html`` file), by default
    ``<run>/view/`` of its run folder (a ``view/`` folder beside a lone tree)."""
    run_dir = _run_dir_of(tree_file)
    results = read_results(run_dir) if run_dir else {}
    page, _ = _page(tree_file, results, None)
    if out is not None and out.suffix == ".html":
        dest = out
    else:
        dest = (out or (run_dir or tree_file.parent) / "view") / f"{tree_file.stem}.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(page)
    log.info("wrote %s", dest)
    return dest


def is_run_folder(folder: Path) -> bool:
    """Does ``folder`` hold a search run's trees (``trees/*.json``)?"""
    return any((folder / TREES).glob("*.json"))


def write_run(run_dir: Path, out: Path, back_href: str | None = None) -> list[Path]:
    """The pages of a search run's trees and its ``index.html`` (first in the list) into
    ``out``; ``back_href``: a link from that index up to a folder's index."""
    trees = sorted((run_dir / TREES).glob("*.json"))
    if not trees:
        raise TreeFileError(f"{run_dir}: no trees/*.json in this folder (a search run's folder "
                            f"with stage.save_trees=true, or one tree JSON)")
    out.mkdir(parents=True, exist_ok=True)
    results = read_results(run_dir)
    entries, written = [], []
    for tree_file in trees:
        page, entry = _page(tree_file, results, "index.html")
        dest = out / entry["href"]
        dest.write_text(page)
        entries.append(entry)
        written.append(dest)
    index = out / "index.html"
    index.write_text(render_index_html(entries, title=f"search trees of {run_dir.name}",
                                       back_href=back_href))
    log.info("wrote %d tree pages and %s", len(written), index)
    return [index, *written]

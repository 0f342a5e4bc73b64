"""One writer of D_V and one of D_G: the loop and every stage take the same rows from the
same trees (`rest_mcts.loop.data`)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rest_mcts.loop.data import extract_data, load_trees
from rest_mcts.utils.io import read_jsonl

from tests.helpers.paths import ROOT
from tests.loop.test_loop import hand_built_tree

SRC = ROOT / "src" / "rest_mcts"


def _callers(name: str) -> set[str]:
    """Modules of src/rest_mcts that call ``name`` (by plain or attribute name)."""
    found = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if called == name:
                    found.add(str(path.relative_to(SRC)))
    return found


def test_d_v_and_d_g_are_built_in_one_place():
    """Only loop/data.py turns trees into D_V targets or D_G traces; every stage and the loop
    go through it."""
    assert _callers("extract_samples") == {"loop/data.py"}
    assert _callers("is_correct_finish") <= {"loop/data.py", "search/value.py"}
    for name in ("d_v_rows", "d_g_rows", "extract_data"):
        assert all(c.startswith(("loop/", "stages/")) for c in _callers(name)), name


def test_a_truncated_tree_file_is_one_line_naming_it(tmp_path):
    from rest_mcts.config import ConfigError

    hand_built_tree().save(tmp_path / "trees" / "p24.json")
    text = (tmp_path / "trees" / "p24.json").read_text()
    (tmp_path / "trees" / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(ConfigError, match=r"cut\.json: not a search tree"):
        load_trees(tmp_path / "trees")


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "run.py"), *args, "logger=null"]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_stage_train_policy_and_the_loop_train_on_the_same_d_g(tmp_path, tiny_policy):
    """`stage=train_policy stage.trees_dir=...` writes exactly the D_G rows that the loop's
    extract step writes from the same trees (deduplicated, correct leaves only)."""
    trees = tmp_path / "trees"
    tree = hand_built_tree()
    tree.save(trees / "p24.json")
    duplicate = hand_built_tree()  # the same correct trace twice in one tree: one D_G row
    node = duplicate.add_child(duplicate.nodes[1], tree.nodes[2].step, terminal=True, answer="24")
    node.correct = True
    duplicate.question_id = "p24b"
    duplicate.save(trees / "p24b.json")
    extract_data(trees, tmp_path / "loop_extract")
    loop_rows = read_jsonl(tmp_path / "loop_extract" / "d_g.jsonl")

    run = tmp_path / "stage"
    proc = _run(tmp_path, "stage=train_policy", f"stage.trees_dir={trees}",
                f"model.path={tiny_policy}", "stage.eval_before=false", "stage.eval_problems=2",
                "stage.eval_samples=1", "trainer.max_steps=1", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_jsonl(run / "d_g.jsonl") == loop_rows and len(loop_rows) == 2
    assert json.loads((run / "metrics.json").read_text())["data/rows"] == 2

    proc = _run(tmp_path, "stage=extract", f"stage.trees_dir={trees}", f"hydra.run.dir={run}x")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_jsonl(Path(f"{run}x") / "d_g.jsonl") == loop_rows
    assert read_jsonl(Path(f"{run}x") / "d_v.jsonl") == read_jsonl(
        tmp_path / "loop_extract" / "d_v.jsonl")


def test_stage_extract_takes_d_v_nodes(compose_cfg, tmp_path):
    """stage=extract passes stage.d_v_nodes to the one writer (default paths) and refuses an
    unknown value in one line."""
    from rest_mcts.config import ConfigError
    from rest_mcts.stages.extract import extract

    from tests.loop.test_loop import tree_with_an_unexplored_child

    tree_with_an_unexplored_child().save(tmp_path / "trees" / "p24.json")
    trees = f"stage.trees_dir={tmp_path / 'trees'}"
    assert extract(compose_cfg("stage=extract", trees, "~logger"))["extract/d_v_rows"] == 5
    every = extract(compose_cfg("stage=extract", trees, "~logger", "stage.d_v_nodes=all"))
    assert every["extract/d_v_rows"] == 6
    with pytest.raises(ConfigError, match="stage.d_v_nodes=leaves is not one of"):
        extract(compose_cfg("stage=extract", trees, "~logger", "stage.d_v_nodes=leaves"))


@pytest.mark.parametrize("method, option, want", [
    ("bfs", "stage", "D_V0 is empty: none of the 5 BFS trees has a correct leaf within "
     "stage.max_depth=3 steps (raise stage.max_depth or stage.num_problems, or set "
     "stage.method=reference)"),
    ("reference", "stage.init_prm", "D_V0 is empty: none of the 5 questions has a reference "
     "solution (stage.init_prm.method=reference needs them; set stage.init_prm.method=bfs)"),
])
def test_an_empty_d_v0_stops_in_one_line_before_prm0_trains(method, option, want):
    """A base policy that finishes no BFS path correctly (a weak model, MATH solutions longer
    than max_depth steps) leaves D_V0 empty: the run says which option makes rows."""
    from rest_mcts.config import ConfigError
    from rest_mcts.loop.d_v0 import InitPRMSettings, require_rows

    init = InitPRMSettings(method=method, num_problems=5, option=option)
    with pytest.raises(ConfigError) as err:
        require_rows(init, 0)
    assert str(err.value) == want
    require_rows(init, 3)  # rows: goes on

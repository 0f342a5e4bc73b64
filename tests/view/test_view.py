"""stage=view: the search-tree pages (escaping, chosen path, index, bad input), through
run.py on a real tiny search run, and in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rest_mcts.view import (
    TreeFileError,
    chosen_path,
    load_tree,
    parse_trace,
    render_index_html,
    render_tree_html,
    write_views,
)

from rest_mcts.view.html import json_for_script

from tests.helpers.paths import ROOT

CHROMIUM = "/usr/bin/chromium"
# Model text that would run if it ever became markup: each sets the title to PWNED and adds
# an element with id "pwned".
PWN = ("document.title='PWNED';var d=document.createElement('div');d.id='pwned';"
       "document.body.appendChild(d)")
PLANTED_STEP = f"Step 1: <img src=x onerror=\"{PWN}\"> <script>{PWN}</script> </script><!--\n"
PLANTED_QUESTION = f"Make 4 from 8 1 5 </script><script>{PWN}</script>"
BLOB = re.compile(r'<script type="application/json" id="tree-data">(.*?)</script>', re.S)


def node(i, parent, step, depth, **kw):
    return {"id": i, "parent": parent, "step": step, "depth": depth, "children": [],
            "visits": kw.pop("visits", 1), "value": kw.pop("value", 0.5), "prm_score": 0.5,
            "critic": None, "legal": True, "terminal": False, "answer": None, "expanded": False,
            "exhausted": False, "tokens": 3, "correct": None, "mcts": None, "info": {}, **kw}


def make_tree(branch=3, depth=2, question="Make 4 from 8 1 5", qid="q-0", planted=False):
    """A full tree of `branch` children per node down to `depth`; leaves finished (the first
    one correct); with `planted`, node 1's step is PLANTED_STEP."""
    nodes = [node(0, None, "", 0)]
    frontier = [0]
    for d in range(1, depth + 1):
        nxt = []
        for p in frontier:
            for b in range(branch):
                i = len(nodes)
                leaf = d == depth
                nodes.append(node(i, p, f"Step {d}: child {b} of {p} (left: {i})\n", d,
                                  value=(i % 10) / 10, terminal=leaf,
                                  answer=str(i) if leaf else None,
                                  correct=(b == 0) if leaf else None,
                                  critic="end" if leaf else None))
                nodes[p]["children"].append(i)
                nxt.append(i)
        frontier = nxt
    if planted:
        nodes[1]["step"] = PLANTED_STEP
    return {"question_id": qid, "question": question, "nodes": nodes}


def steps_to(tree, leaf_id):
    nodes, out = tree["nodes"], []
    while nodes[leaf_id]["parent"] is not None:
        out.insert(0, nodes[leaf_id]["step"])
        leaf_id = nodes[leaf_id]["parent"]
    return out


def blob_of(page: str) -> dict:
    (text,) = BLOB.findall(page)
    return json.loads(text)


def write_run(run: Path, trees: list[dict], results: list[dict]) -> Path:
    (run / "trees").mkdir(parents=True)
    for tree in trees:
        (run / "trees" / f"{tree['question_id']}.json").write_text(json.dumps(tree))
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    return run


# ---------------------------------------------------------------------------- pure
def test_planted_script_in_step_and_question_is_escaped_in_html_and_json():
    tree = make_tree(planted=True, question=PLANTED_QUESTION)
    page = render_tree_html(tree, result={"steps": [PLANTED_STEP], "prediction": "<b>4</b>"})
    # only the page's own two script elements open and close; the question shows escaped
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<img" not in page and "<!--" not in page and "<b>4</b>" not in page
    assert html_escaped(PLANTED_QUESTION) in page and "&lt;b&gt;4&lt;/b&gt;" in page
    (raw,) = BLOB.findall(page)
    assert "<" not in raw and ">" not in raw and "\\u003cscript\\u003e" in raw
    data = json.loads(raw)  # the escapes decode back to the model's exact text
    assert data["nodes"][1]["step"] == PLANTED_STEP and data["question"] == PLANTED_QUESTION
    assert "innerHTML" not in page and "outerHTML" not in page and "insertAdjacentHTML" not in page


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_page_is_self_contained():
    page = render_tree_html(make_tree())
    assert "<style>" in page and "<script>" in page
    assert not re.search(r"(src|href)=|https?://|@import|url\(", page)


def test_chosen_path_is_the_results_rows_steps():
    tree = make_tree(branch=3, depth=2)
    # node 8 is child 1 of node 2 (nodes 1-3 at depth 1, 4-12 at depth 2)
    assert chosen_path(tree["nodes"], steps_to(tree, 8)) == [0, 2, 8]
    page = render_tree_html(tree, result={"steps": steps_to(tree, 8)})
    assert blob_of(page)["chosen"] == [0, 2, 8]
    assert chosen_path(tree["nodes"], ["Step 1: not in the tree\n"]) == [0]
    unknown = render_tree_html(tree)
    assert blob_of(unknown)["chosen"] == [] and "chosen path</b> unknown" in unknown


def test_index_lists_every_tree_and_links_its_page(tmp_path):
    trees = [make_tree(qid=f"q-{i}", question=f"Make {i} from 1 2 3") for i in range(3)]
    trees.append(make_tree(qid="q-3", question=PLANTED_QUESTION))
    results = [{"id": t["question_id"], "steps": steps_to(t, 4), "correct": i == 1,
                "value": 0.25 * i, "prediction": str(i), "gold": "4", "method": "mcts_star"}
               for i, t in enumerate(trees)]
    run = write_run(tmp_path / "run", trees, results)
    pages = write_views(run)
    index = run / "view" / "index.html"
    assert pages[0] == index and len(pages) == 1 + len(trees)
    text = index.read_text()
    for tree in trees:
        assert f"href='{tree['question_id']}.html'" in text
        assert html_escaped(tree["question"]) in text
        page = (run / "view" / f"{tree['question_id']}.html").read_text()
        assert blob_of(page)["chosen"] == [0, 1, 4]
    assert "<script" not in text and "4 questions, 1 correct" in text
    assert text.count("<tr class='correct'>") == 1 and text.count("<tr class='wrong'>") == 3
    # a tree file inside the run gets its results row too; view.out picks the folder or file
    (page,) = write_views(run / "trees" / "q-1.json", tmp_path / "one" / "p.html")
    assert page == tmp_path / "one" / "p.html" and "verdict</b> correct" in page.read_text()
    (page,) = write_views(run / "trees" / "q-2.json")
    assert page == run / "view" / "q-2.html"


def test_a_tree_outside_a_run_gets_a_view_folder_beside_it(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(make_tree()))
    assert write_views(path) == [tmp_path / "view" / "t.html"]


def broken_tree(**changes) -> str:
    """make_tree(branch=2, depth=2) as JSON text, with ``changes`` {node id: {field: value}}
    (nodes 1, 2 under the root; 3, 4 under node 1; 5, 6 under node 2)."""
    tree = make_tree(branch=2, depth=2)
    for nid, fields in changes.items():
        tree["nodes"][int(nid[1:])].update(fields)
    return json.dumps(tree)


@pytest.mark.parametrize("content,why", [
    (None, ": no such tree file"),
    ("{not json", ":1: invalid JSON (Expecting property name"),  # the file and line
    ("[1, 2]", ": not a tree JSON (expected an object with a 'nodes' list)"),
    ('{"question": "q", "nodes": []}', ": not a tree JSON (expected"),
    ('{"method": "self_consistency", "samples": []}', ": not a tree JSON (sampled paths of "
     "self_consistency"),
    ('{"nodes": [{"id": 0}]}', ": not a tree JSON (node 0 lacks"),
    pytest.param(broken_tree(n1={"parent": 3}, n3={"children": [1]}),
                 ": node 1: its parent links form a cycle (1 -> 3 -> 1)", id="parent-cycle"),
    pytest.param(broken_tree(n4={"children": [0]}), ": node 4: its children list reaches node 0 "
                 "again: the children links form a cycle", id="children-cycle"),
    pytest.param(broken_tree(n6={"children": [3]}), ": node 6: its children list reaches node 3 "
                 "again (already a child of node 1)", id="shared-child"),
    pytest.param(broken_tree(n2={"step": 7}), ": node 2: field 'step' is a number, expected a "
                 "string", id="step-number"),
    pytest.param(broken_tree(n5={"step": None}), ": node 5: field 'step' is null, expected a "
                 "string", id="step-null"),
    pytest.param(broken_tree(n3={"step": {"text": "x"}}), ": node 3: field 'step' is an "
                 "object, expected", id="step-object"),
    pytest.param(broken_tree(n2={"id": 1}), ": node 2: its id 1 repeats an earlier id",
                 id="repeated-id"),
    pytest.param(broken_tree(n2={"id": [2]}), ": node 2: its id [2] is a list (expected "
                 "distinct integers)", id="id-list"),
])
def test_bad_input_is_one_line_naming_the_file(tmp_path, content, why):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TreeFileError) as err:
        write_views(path)
    message = str(err.value)
    assert message.startswith(f"{path}{why}") and "\n" not in message


def test_nan_and_infinite_values_are_drawn_as_their_names(tmp_path):
    """A tree file with NaN / Infinity numbers (Python's json writes them) gets its page; the
    page's JSON is strict (the browser's JSON.parse takes no NaN) and carries the names."""
    path = tmp_path / "t.json"
    path.write_text(broken_tree(n1={"value": float("nan"), "prm_score": float("inf")},
                                n2={"mcts": {"rollout_v_max": float("-inf")}}))
    (page,) = write_views(path)
    (raw,) = BLOB.findall(page.read_text())

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the page's JSON")

    nodes = json.loads(raw, parse_constant=refuse)["nodes"]
    assert (nodes[1]["value"], nodes[1]["prm_score"]) == ("nan", "inf")
    assert nodes[2]["mcts"]["rollout_v_max"] == "-inf" and nodes[3]["value"] == 0.3
    assert 'typeof x === "string") ? x' in page.read_text()  # shown as text, not as "-"


def test_bad_tree_in_a_run_folder_and_empty_folder_name_the_file(tmp_path):
    run = write_run(tmp_path / "run", [make_tree()], [])
    (run / "trees" / "broken.json").write_text("{")
    broken = run / "trees" / "broken.json"
    with pytest.raises(TreeFileError, match=re.escape(f"{broken}:1: invalid")):
        write_views(run)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TreeFileError, match=re.escape(f"{tmp_path / 'empty'}: no trees/*.json")):
        write_views(tmp_path / "empty")
    with pytest.raises(TreeFileError, match=re.escape(f"{tmp_path / 'nope'}: no such")):
        write_views(tmp_path / "nope")
    assert load_tree(run / "trees" / "q-0.json")["question_id"] == "q-0"


def test_index_html_escapes_hrefs():
    text = render_index_html([{"href": "a b'<x>.html", "question": "q", "question_id": "x"}])
    assert "href='a%20b%27%3Cx%3E.html'" in text


# ---------------------------------------------------------------------------- run.py
def run_py(tmp_path: Path, *args: str, run_dir: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "run.py"), *args, "logger=null",
           f"hydra.run.dir={run_dir or tmp_path / 'hydra'}"]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_stage_view_through_run_py_on_a_real_search_run(tmp_path, tiny_policy):
    run = tmp_path / "search"
    proc = run_py(tmp_path, "stage=search", f"model.path={tiny_policy}", "stage.num_problems=3",
                  "search.iterations=4", run_dir=run)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_py(tmp_path, "stage=view", f"tree={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    index = (run / "view" / "index.html").read_text()
    for row in rows:
        assert f"href='{row['id']}.html'" in index
        data = blob_of((run / "view" / f"{row['id']}.html").read_text())
        nodes = data["nodes"]
        assert [nodes[i]["step"] for i in data["chosen"][1:]] == row["steps"]
    assert json.loads((tmp_path / "hydra" / "metrics.json").read_text())["view/pages"] == 4

    out = tmp_path / "pages"
    assert run_py(tmp_path, "stage=view", f"tree={run}", f"view.out={out}").returncode == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.html"] + [f"{r['id']}.html" for r in rows])

    bad = tmp_path / "not_a_tree.json"
    bad.write_text('{"x": 1}')
    proc = run_py(tmp_path, "stage=view", f"tree={bad}")  # (missing files: the pure tests)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {bad}: not a tree JSON (expected an object with a 'nodes' list)")
    proc = run_py(tmp_path, "stage=view")
    assert proc.returncode == 2 and "stage=view needs tree=" in proc.stderr


# ---------------------------------------------------------------------------- browser
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"{CHROMIUM} is absent (apt-get install chromium)")


def chromium(tmp_path: Path, page: Path, *flags: str) -> str:
    """Run headless chromium on a local page; its stdout (the DOM with --dump-dom)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
           "--virtual-time-budget=3000", "--timeout=20000", *flags, page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def li_classes(dom: str) -> dict[int, set[str]]:
    """Node id -> classes of the <li> the page's script built for it."""
    return {int(i): set(c.split())
            for c, i in re.findall(r'<li class="([^"]*)" data-id="(\d+)"', dom)}


@pytest.mark.browser
@needs_chromium
def test_browser_renders_the_tree_runs_no_planted_script_and_marks_the_chosen_path(tmp_path):
    tree = make_tree(branch=3, depth=2, planted=True, question=PLANTED_QUESTION)
    chosen_leaf = 4  # first child of node 1, whose step is the planted one
    path = tmp_path / "tree.html"
    path.write_text(render_tree_html(tree, result={"steps": steps_to(tree, chosen_leaf)}))
    dom = chromium(tmp_path, path, "--dump-dom")
    classes = li_classes(dom)
    assert sorted(classes) == list(range(len(tree["nodes"])))  # the script built every node
    assert {i for i, c in classes.items() if "chosen" in c} == {0, 1, chosen_leaf}
    assert {i for i, c in classes.items() if "chosen-leaf" in c} == {chosen_leaf}
    # the planted markup shows as text and never ran
    assert "PWNED" not in re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert 'id="pwned"' not in dom and "<img" not in dom
    assert "Step 1: &lt;img src=x onerror=\"document.title='PWNED'" in dom
    assert "&lt;script&gt;document.title='PWNED'" in dom
    assert "&lt;/script&gt;&lt;script&gt;document.title" in dom  # the question's


@pytest.mark.browser
@needs_chromium
def test_browser_check_would_catch_markup_insertion(tmp_path):
    """Control: the same payload inserted with innerHTML does run in this browser, so the
    check above is not vacuous."""
    path = tmp_path / "unsafe.html"
    path.write_text("<!DOCTYPE html><html><head><title>t</title></head><body><div id='x'></div>"
                    "<script>document.getElementById('x').innerHTML = "
                    f"{json_for_script(PLANTED_STEP)};</script></body></html>")
    dom = chromium(tmp_path, path, "--dump-dom")
    assert 'id="pwned"' in dom


@pytest.mark.browser
@needs_chromium
def test_browser_renders_a_364_node_tree(tmp_path):
    tree = make_tree(branch=3, depth=5)  # 364 nodes
    leaf = len(tree["nodes"]) - 1
    path = tmp_path / "big.html"
    path.write_text(render_tree_html(tree, result={"steps": steps_to(tree, leaf)}))
    classes = li_classes(chromium(tmp_path, path, "--dump-dom"))
    assert len(classes) == 364
    on_path = {leaf}
    while tree["nodes"][min(on_path)]["parent"] is not None:
        on_path.add(tree["nodes"][min(on_path)]["parent"])
    assert {i for i, c in classes.items() if "chosen" in c} == on_path == {0, 3, 12, 39, 120, 363}


@pytest.mark.browser
@needs_chromium
def test_browser_takes_a_screenshot(tmp_path):
    tree = make_tree(branch=3, depth=3)
    path = tmp_path / "tree.html"
    path.write_text(render_tree_html(tree, result={"steps": steps_to(tree, 13)}))
    png = tmp_path / "tree.png"
    chromium(tmp_path, path, f"--screenshot={png}", "--window-size=1400,1000")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


# ---------------------------------------------------------------------------- replay
# make_tree(branch=3, depth=2): nodes 1-3 under the root, 4-6 under 1, 7-9 under 2, 10-12
# under 3. A trace as MCTS* writes it (rest_mcts.search.mcts_star.trace_entry).
TRACE = ["expand path=0 new=1,2,3 rollout=1,0.9,0.8 values=0.8",
         "expand path=0,2 new=7,8,9 rollout=7,0.5,0.5 values=0.6,0.5",
         "expand path=0,1 new=4,5,6 values=0.7,0.6",
         "dead_end path=0,3 values=0.7,0.3",
         "finished path=0,1,4 values=0.72,0.65,0.9 stop"]


def traced_tree(trace=TRACE) -> dict:
    return {**make_tree(branch=3, depth=2), "trace": list(trace)}


def test_the_trace_becomes_the_replays_steps():
    page = render_tree_html(traced_tree())
    steps = blob_of(page)["trace"]
    assert [s["phase"] for s in steps] == ["expand", "expand", "expand", "dead_end", "finished"]
    assert [s["iteration"] for s in steps] == [1, 2, 3, None, 4]  # a dead end is no iteration
    assert steps[1] == {"phase": "expand", "path": [0, 2], "new": [7, 8, 9],
                        "rollout": {"node": 7, "v_max": 0.5, "value": 0.5},
                        "values": [0.6, 0.5], "stop": False, "iteration": 2}
    assert steps[2]["rollout"] is None and steps[4]["stop"] and steps[4]["new"] == []
    assert "id=\"r-slider\" min=\"0\" max=\"5\"" in page
    plain = render_tree_html(make_tree())  # no trace (BFS, older trees): no replay
    assert blob_of(plain)["trace"] == [] and 'id="r-slider"' not in plain
    assert parse_trace(["end_gate path=0,1 values=nan,inf"], {0, 1})[0]["values"][0] != 0


@pytest.mark.parametrize("line,why", [
    ("expand path=0,1 values=0.5", "trace line 2: expected path= and as many values="),
    ("grow path=0 values=0.5", "trace line 2: phase 'grow' is not one of expand"),
    ("expand path=0 new=1,99 values=0.5", "trace line 2: node 99 is not in the tree"),
    ("expand path=0 rollout=1,0.5 values=0.5", "trace line 2: expected rollout=<node>"),
    ("expand path=0 values=0.5 colour=red", "trace line 2: cannot read 'colour=red'"),
    ("expand path=0 values=x", "trace line 2: could not convert string to float: 'x'"),
])
def test_a_trace_that_does_not_parse_is_one_line_naming_the_file(tmp_path, line, why):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(traced_tree([TRACE[0], line])))
    with pytest.raises(TreeFileError) as err:
        write_views(path)
    assert str(err.value) == f"{path}: {why}" or str(err.value).startswith(f"{path}: {why}")
    path.write_text(json.dumps({**make_tree(), "trace": "expand path=0 values=1"}))
    with pytest.raises(TreeFileError, match="'trace' is str, expected a list of lines"):
        load_tree(path)


# ---------------------------------------------------------------------------- folders
def samples_run(run: Path, n: int = 2) -> Path:
    """A CoT / sampling-pass folder: its tree files hold sampled paths, not trees."""
    (run / "trees").mkdir(parents=True)
    rows = []
    for i in range(n):
        qid = f"s-{i}"
        (run / "trees" / f"{qid}.json").write_text(json.dumps(
            {"method": "cot", "question": "q", "question_id": qid, "samples": []}))
        rows.append({"id": qid, "correct": i == 0, "method": "cot"})
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def tree_run(run: Path, correct: list[bool], method: str = "mcts_star") -> Path:
    trees = [traced_tree() | {"question_id": f"q-{i}"} for i in range(len(correct))]
    rows = [{"id": t["question_id"], "steps": steps_to(t, 4), "correct": c, "method": method}
            for t, c in zip(trees, correct)]
    return write_run(run, trees, rows)


def index_rows(index: Path) -> list[tuple[str, ...]]:
    """(run, method, questions, correct, accuracy, trees, note) and group headers."""
    text = index.read_text()
    groups = re.findall(r"<tr class='group'><th colspan='7'>(.*?)</th></tr>", text)
    cells = [tuple(html.unescape(re.sub(r"<[^>]+>", "", c))
                   for c in re.findall(r"<td[^>]*>(.*?)</td>", row))
             for row in re.findall(r"<tr>(<td.*?)</tr>", text)]
    return groups, cells


def test_a_loop_folder_gets_every_runs_pages_and_an_index_with_accuracy(tmp_path):
    loop = tmp_path / "loop"
    (loop / "loop_config.json").parent.mkdir()
    (loop / "loop_config.json").write_text("{}")
    tree_run(loop / "iter_0" / "eval_mcts_star", [True, False])
    samples_run(loop / "iter_0" / "eval_cot")
    tree_run(loop / "iter_0" / "d_v0" / "bfs", [True], method="bfs")
    tree_run(loop / "iter_1" / "search", [True, True, True, False])
    tree_run(loop / "iter_10" / "eval_mcts_star", [True, True])
    (loop / "iter_1" / "prm").mkdir()  # a model folder: no trees, not listed
    pages = write_views(loop)
    index = loop / "view" / "index.html"
    assert pages[0] == index and len(pages) == 1 + 4 + (2 + 1 + 4 + 2)
    groups, rows = index_rows(index)
    assert groups == ["iter_0", "iter_1", "iter_10"]  # iterations in number order
    assert rows == [
        ("iter_0/d_v0/bfs", "bfs", "1", "1", "1.000", "1", ""),
        ("iter_0/eval_cot", "cot", "2", "1", "0.500", "2", "sampled paths, no tree to draw"),
        ("iter_0/eval_mcts_star", "mcts_star", "2", "1", "0.500", "2", ""),
        ("iter_1/search", "mcts_star", "4", "3", "0.750", "4", ""),
        ("iter_10/eval_mcts_star", "mcts_star", "2", "2", "1.000", "2", "")]
    text = index.read_text()
    assert "href='iter_1/search/index.html'" in text and "iter_0/eval_cot/index" not in text
    run_index = (loop / "view" / "iter_1" / "search" / "index.html").read_text()
    assert "href='../../index.html'>&larr; all runs" in run_index
    assert "href='q-3.html'" in run_index
    page = (loop / "view" / "iter_1" / "search" / "q-3.html").read_text()
    assert len(blob_of(page)["trace"]) == len(TRACE) and "href='index.html'" in page
    out = tmp_path / "pages"  # view.out names the folder
    assert write_views(loop, out)[0] == out / "index.html"
    assert (out / "iter_0" / "d_v0" / "bfs" / "q-0.html").is_file()


def test_a_multirun_folder_lists_its_jobs_with_their_overrides(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    jobs = {"0_search-mcts_star": ["search=mcts_star", "seed=0"],
            "1_search-cot": ["search=cot", "seed=0"], "2_stage-loop": ["stage=loop"],
            "3_seed-9": ["seed=9"]}
    for name, overrides in jobs.items():
        (sweep / name / ".hydra").mkdir(parents=True)
        (sweep / name / ".hydra" / "overrides.yaml").write_text(
            "".join(f"- {o}\n" for o in overrides))
    tree_run(sweep / "0_search-mcts_star", [True, False, False, True])
    samples_run(sweep / "1_search-cot", n=3)
    (sweep / "2_stage-loop" / "metrics.json").write_text(json.dumps({"loop/mcts/acc": 0.25}))
    pages = write_views(sweep)
    groups, rows = index_rows(pages[0])
    assert groups == ["job 0: search=mcts_star seed=0", "job 1: search=cot seed=0",
                      "job 2: stage=loop", "job 3: seed=9"]
    assert rows == [
        ("0_search-mcts_star", "mcts_star", "4", "2", "0.500", "4", ""),
        ("1_search-cot", "cot", "3", "1", "0.333", "3", "sampled paths, no tree to draw"),
        ("2_stage-loop", "-", "-", "-", "0.250", "-", "no trees in this job's folder"),
        ("3_seed-9", "-", "-", "-", "-", "-",
         "no trees in this job's folder (no metrics.json: failed?)")]
    assert (sweep / "view" / "0_search-mcts_star" / "q-3.html").is_file()
    assert "href='../index.html'>&larr; all runs" in (
        sweep / "view" / "0_search-mcts_star" / "index.html").read_text()


def test_a_path_that_is_no_tree_run_loop_or_multirun_is_one_line(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(TreeFileError) as err:
        write_views(tmp_path / "empty")
    assert str(err.value) == (
        f"{tmp_path / 'empty'}: no trees/*.json in this folder or below it: expected a tree "
        f"JSON, a search run's folder (stage=search|eval), a loop folder or a multirun folder")
    (tmp_path / "notes.yaml").write_text("a: 1\n")
    with pytest.raises(TreeFileError, match=re.escape(
            f"{tmp_path / 'notes.yaml'}: not a tree JSON (a .json file), a search run's folder, "
            f"a loop folder or a multirun folder")):
        write_views(tmp_path / "notes.yaml")


# ---------------------------------------------------------------------------- replay (browser)
def replay_dom(tmp_path: Path, page: Path, k: int | None) -> str:
    """The DOM of ``page`` opened at iteration ``k`` (the address ``#iter=k``)."""
    uri = page.as_uri() + ("" if k is None else f"#iter={k}")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=3000",
           "--timeout=20000", "--dump-dom", uri]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def marked(dom: str, cls: str) -> set[int]:
    return {i for i, c in li_classes(dom).items() if cls in c}


def mcts_tree() -> tuple[dict, dict]:
    """A real MCTS* search (the scripted fakes of tests/search) and its results row."""
    from rest_mcts.search.configs import MCTSStarConfig
    from rest_mcts.search.mcts_star import mcts_star
    from rest_mcts.worlds import CountdownWorld

    from tests.helpers.search_fakes import drive, table_policy

    world = CountdownWorld()
    question = world.make_question((6, 4, 5), 29, "q29")
    good = ["Step 1: 6 * 4 = 24 (left: 24 5)\n", "Step 2: 24 + 5 = 29 (left: 29)\n"]
    bad = ["Step 1: 6 + 4 = 10 (left: 10 5)\n", "Step 2: 10 + 5 = 15 (left: 15)\n"]
    policy = table_policy({0: [good[0], bad[0]], 1: [good[1], bad[1]]})
    values = {(good[0],): 0.5, (bad[0],): 0.3, (*good,): 0.85, (bad[0], bad[1]): 0.1}
    result = drive(mcts_star(question, world, MCTSStarConfig(iterations=8, branch=2)),
                   policy, lambda q, steps: values.get(tuple(steps), 0.2))
    return result.tree, {"steps": list(result.steps), "method": "mcts_star"}


@pytest.mark.browser
@needs_chromium
def test_browser_replay_highlights_the_selection_path_of_the_chosen_iteration(tmp_path):
    page = tmp_path / "replay.html"
    page.write_text(render_tree_html(traced_tree(), result={"steps": steps_to(make_tree(), 4)}))
    dom = replay_dom(tmp_path, page, 2)  # iteration 2: the root, then node 2, expanded
    assert marked(dom, "r-path") == {0, 2} and marked(dom, "r-leaf") == {2}
    assert marked(dom, "r-new") == {7, 8, 9} and marked(dom, "r-rollout") == {7}
    assert marked(dom, "r-future") == {4, 5, 6}  # made by line 3
    assert "iteration 2 of 4" in dom and "2. expansion of #2: 3 new children" in dom
    assert "3. rollout from #7: v_max 0.500" in dom
    dom = replay_dom(tmp_path, page, 5)  # the stop at a finished leaf
    assert marked(dom, "r-path") == {0, 1, 4} and marked(dom, "r-new") == set()
    assert "self-critic: #4 is a finished path" in dom and "the search ends here" in dom
    dom = replay_dom(tmp_path, page, None)  # no iteration chosen: the final tree, unmarked
    assert not any(marked(dom, c) for c in ("r-path", "r-new", "r-future"))
    assert "the final tree (4 iterations, 5 trace lines)" in dom


@pytest.mark.browser
@needs_chromium
def test_browser_replay_of_a_real_mcts_star_search_follows_its_trace(tmp_path):
    tree, row = mcts_tree()
    steps = parse_trace(tree["trace"], {n["id"] for n in tree["nodes"]})
    assert len(steps) >= 3
    page = tmp_path / "mcts.html"
    page.write_text(render_tree_html(tree, result=row))
    for k in (1, 2, len(steps)):
        dom = replay_dom(tmp_path, page, k)
        step = steps[k - 1]
        assert marked(dom, "r-path") == set(step["path"])
        assert marked(dom, "r-leaf") == {step["path"][-1]}
        assert marked(dom, "r-new") == set(step["new"])


@pytest.mark.browser
@needs_chromium
def test_browser_takes_a_screenshot_of_the_replay(tmp_path):
    page = tmp_path / "replay.html"
    page.write_text(render_tree_html(traced_tree(), result={"steps": steps_to(make_tree(), 4)}))
    png = tmp_path / "replay.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=3000",
           "--hide-scrollbars", f"--screenshot={png}", "--window-size=1400,900",
           page.as_uri() + "#iter=2"]
    subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


# ---------------------------------------------------------------------------- run.py, folders
@pytest.mark.slow
def test_stage_view_on_a_real_multirun_opens_no_tracker_run(tmp_path):
    """`-m search=mcts_star,cot` of stage=eval (mock policy, oracle PRM: seconds), then
    stage=view on the multirun folder with logger=wandb: an index over both jobs with their
    accuracy, the MCTS* pages with their traces, and wandb never imported (no run)."""
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", "stage=eval", "backend=mock", "prm=oracle",
         "data=countdown3", "search=mcts_star,cot", "stage.num_problems=3", "logger=null",
         f"hydra.sweep.dir={sweep}"],
        env={**os.environ, "REST_MCTS_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    argv = [str(ROOT / "run.py"), "stage=view", f"tree={sweep}", "logger=wandb",
            f"hydra.run.dir={tmp_path / 'view_run'}"]
    code = ("import runpy, sys\n"
            f"sys.argv = {argv!r}\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "finally:\n    print('WANDB_IMPORTED', 'wandb' in sys.modules)\n")
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path), "WANDB_MODE": "offline",
           "WANDB_DIR": str(tmp_path / "wandb_dir")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "WANDB_IMPORTED False" in proc.stdout
    assert not (tmp_path / "wandb_dir").exists() and not (tmp_path / "view_run" / "wandb").exists()
    groups, rows = index_rows(sweep / "view" / "index.html")
    assert [g.split(":")[0] for g in groups] == ["job 0", "job 1"]
    assert "search=mcts_star" in groups[0] and "search=cot" in groups[1]
    for (name, method, questions, correct, acc, trees, note), job in zip(rows, ["0", "1"]):
        (folder,) = sweep.glob(f"{job}_*")
        answers = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
        assert name == folder.name and questions == trees == "3"
        assert correct == str(sum(a["correct"] for a in answers))
        metrics = json.loads((folder / "metrics.json").read_text())
        assert float(acc) == pytest.approx(metrics["eval/acc"], abs=1e-3)
    (mcts,) = sweep.glob("0_*")
    for tree_file in (mcts / "trees").glob("*.json"):
        tree = json.loads(tree_file.read_text())
        page = (sweep / "view" / mcts.name / f"{tree_file.stem}.html").read_text()
        assert len(blob_of(page)["trace"]) == len(tree["trace"]) > 0
    assert json.loads((tmp_path / "view_run" / "metrics.json").read_text())["view/pages"] == 5

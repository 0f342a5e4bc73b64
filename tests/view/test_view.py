"""stage=view: the search-tree pages (escaping, chosen path, index, bad input), through
run.py on a real tiny search run, and in a real headless browser (Debian's chromium)."""

from __future__ import annotations

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

"""One self-contained HTML page per search tree, an index page over a run's trees, and an
index over many runs (a loop's iterations and methods, a multirun's jobs).

The page of an MCTS* tree that holds its trace (:mod:`rest_mcts.view.replay`) replays the
search: a slider and buttons choose iteration k, whose selection path, new children and
rollout are marked in the tree (nodes made later are faded) and described beside it; the
page's address ``#iter=k`` opens at iteration k.

Pure functions from dicts to strings: no file access, no network at view time (inline CSS and
JS, no CDN). Model text never becomes markup: the page's own text is escaped with
``html.escape``, the tree travels as JSON in a ``<script type="application/json">`` block with
``<``, ``>`` and ``&`` written as ``\\u003c``, ``\\u003e``, ``\\u0026`` (so a ``</script>`` in a
step cannot close it), and the page's script inserts model text with ``textContent`` only.
NaN and infinite numbers travel as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` (the
browser's ``JSON.parse`` takes no ``NaN``) and are shown as such.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from rest_mcts.view.replay import parse_trace


def chosen_path(nodes: Sequence[dict], steps: Sequence[str] | None) -> list[int]:
    """Node ids from the root down the path whose step texts are ``steps`` (the answer the
    search returned: its ``results.jsonl`` row); as far as the tree holds it, [] if unknown."""
    if not steps:
        return []
    by_id = {n["id"]: n for n in nodes}
    path, node = [0], by_id.get(0)
    for step in steps:
        child = next((by_id[c] for c in (node or {}).get("children", [])
                      if c in by_id and by_id[c].get("step") == step), None)
        if child is None:
            break
        path.append(child["id"])
        node = child
    return path


def json_for_script(obj: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` survive, so
    ``</script>`` or ``<!--`` in model text cannot end or change the element; and strict, so
    the browser can parse it: a NaN or infinite number becomes ``"nan"``, ``"inf"`` or
    ``"-inf"``."""
    text = json.dumps(_finite(obj), ensure_ascii=False, sort_keys=True, default=str,
                      allow_nan=False)
    for raw, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text


def _finite(obj: Any) -> Any:
    """``obj`` with each NaN or infinite float replaced by its name (``nan``, ``inf``, ``-inf``)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _verdict(correct: Any) -> str:
    return "correct" if correct is True else "wrong" if correct is False else "-"


def render_tree_html(
    tree: dict,
    question: str | None = None,
    *,
    result: dict | None = None,
    title: str | None = None,
    index_href: str | None = None,
) -> str:
    """The page of one search tree.

    Args:
        tree: a tree record as written to ``trees/<id>.json`` (``rest_mcts.search.tree``:
            ``question_id``, ``question``, ``nodes``).
        question: the question text (default: the tree's own).
        result: the question's ``results.jsonl`` row, if known: its ``steps`` are the chosen
            path (highlighted), its prediction, gold, correctness and value go in the header.
        title: the page title (default: the question id).
        index_href: link back to the run's index page.

    Returns:
        The HTML page as a string.
    """
    nodes = list(tree["nodes"])
    question = tree.get("question", "") if question is None else question
    qid = tree.get("question_id", "")
    result = result or {}
    chosen = chosen_path(nodes, result.get("steps"))
    trace = replay_steps(tree)
    data = {"nodes": nodes, "question": question, "chosen": chosen, "trace": trace}
    finished = sum(1 for n in nodes if n.get("terminal") and n.get("legal", True))
    facts = [("question id", qid), ("nodes", len(nodes)), ("finished leaves", finished),
             ("correct leaves", sum(1 for n in nodes if n.get("correct") is True))]
    shown = {"method": result.get("method"), "prediction": result.get("prediction"),
             "gold": result.get("gold"), "verdict": result.get("correct"),
             "value": result.get("value")}
    facts += [(k, _verdict(v) if k == "verdict" else _fmt(v))
              for k, v in shown.items() if v is not None]
    if not chosen:
        facts.append(("chosen path", "unknown (no results.jsonl row for this tree)"))
    fact_html = "".join(f"<span class='fact'><b>{_e(k)}</b> {_e(v)}</span>" for k, v in facts)
    back = f"<a href='{_e(index_href)}'>&larr; all questions</a>" if index_href else ""
    return _PAGE.format(
        title=_e(title or qid or "search tree"),
        back=back,
        question=_e(question),
        facts=fact_html,
        replay=_REPLAY.format(last=len(trace)) if trace else "",
        css=_CSS,
        data=json_for_script(data),
        script=_SCRIPT,
    )


def replay_steps(tree: dict) -> list[dict]:
    """The tree's trace as the replay reads it (:func:`rest_mcts.view.replay.parse_trace`);
    [] for a tree without one. ValueError for a trace that does not parse."""
    if "trace" not in tree:
        return []
    return parse_trace(tree["trace"], {n["id"] for n in tree["nodes"]})


def render_index_html(entries: Iterable[dict], title: str = "search trees",
                      back_href: str | None = None) -> str:
    """The index of a run's pages: one row per tree with its question (linked to its page),
    verdict, value, prediction, gold and size.

    Args:
        entries: dicts with ``href`` (the page's file name), ``question``, ``question_id``
            and, when the run's ``results.jsonl`` has the question, ``correct``, ``value``,
            ``prediction``, ``gold``; ``nodes`` (the tree's size).
        title: the page title.
        back_href: link up to the index of the folder the run is in (a loop's, a multirun's).
    """
    rows = []
    entries = list(entries)
    for i, entry in enumerate(entries):
        verdict = _verdict(entry.get("correct"))
        rows.append(
            f"<tr class='{verdict}'><td>{i + 1}</td>"
            f"<td><a href='{_e(quote(entry['href']))}'>{_e(entry.get('question'))}</a>"
            f"<div class='qid'>{_e(entry.get('question_id'))}</div></td>"
            f"<td>{_e(verdict)}</td><td>{_e(_fmt(entry.get('value')))}</td>"
            f"<td>{_e(entry.get('prediction'))}</td><td>{_e(entry.get('gold'))}</td>"
            f"<td>{_e(entry.get('nodes'))}</td></tr>")
    solved = sum(1 for e in entries if e.get("correct") is True)
    back = f"<a href='{_e(back_href)}'>&larr; all runs</a>" if back_href else ""
    return _INDEX.format(title=_e(title), css=_CSS, count=len(entries), solved=solved,
                         rows="\n".join(rows), back=back)


def render_folders_html(rows: Iterable[dict], title: str = "search runs") -> str:
    """The index of a folder of runs (a loop's, a multirun's): one row per run, under a
    header per group (the iteration, the job), with its method, questions, correct answers
    and accuracy, linked to its own index when it has tree pages.

    Args:
        rows: dicts with ``group`` (the header it goes under, "" for none), ``name`` (the
            run's path under the folder), ``href`` (its index page, if any), ``method``,
            ``questions``, ``correct``, ``acc``, ``trees``, ``note``; missing keys show ``-``.
        title: the page title.
    """
    out, group = [], None
    rows = list(rows)
    for row in rows:
        if row.get("group", "") != group:
            group = row.get("group", "")
            out.append(f"<tr class='group'><th colspan='7'>{_e(group)}</th></tr>")
        name = _e(row.get("name"))
        link = f"<a href='{_e(quote(row['href']))}'>{name}</a>" if row.get("href") else name
        acc = row.get("acc")
        out.append(
            f"<tr><td>{link}</td><td>{_e(row.get('method') or '-')}</td>"
            f"<td>{_e(_fmt(row.get('questions')))}</td><td>{_e(_fmt(row.get('correct')))}</td>"
            f"<td class='acc'>{_e('-' if acc is None else f'{acc:.3f}')}</td>"
            f"<td>{_e(_fmt(row.get('trees')))}</td><td class='n'>{_e(row.get('note', ''))}</td>"
            f"</tr>")
    linked = sum(1 for r in rows if r.get("href"))
    return _FOLDERS.format(title=_e(title), css=_CSS, count=len(rows), linked=linked,
                           rows="\n".join(out))


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:10px 16px;background:#fff;border-bottom:1px solid #ddd}
h1{font-size:16px;margin:4px 0}
.question{font:15px/1.4 ui-monospace,monospace;white-space:pre-wrap;background:#f3f3f3;
  padding:6px 8px;border-radius:4px;margin:6px 0}
.fact{margin-right:14px;color:#444}
.legend span{margin-right:10px}
main{display:flex;gap:12px;padding:10px 16px;align-items:flex-start}
#tree{flex:1;min-width:0}
#detail{width:380px;position:sticky;top:8px;background:#fff;border:1px solid #ddd;
  border-radius:4px;padding:8px;max-height:95vh;overflow:auto}
#detail pre{white-space:pre-wrap;word-break:break-word;background:#f3f3f3;padding:6px;margin:4px 0}
#detail table{border-collapse:collapse;width:100%}
#detail td{border-top:1px solid #eee;padding:2px 4px;vertical-align:top;word-break:break-word}
ul.children{list-style:none;margin:0;padding-left:18px;border-left:1px dotted #bbb}
#tree>ul.children{padding-left:0;border-left:none}
li.node{margin:1px 0}
summary{cursor:pointer}
.row{display:inline-flex;gap:6px;align-items:center;padding:1px 4px;border-radius:3px;
  border:2px solid transparent;max-width:100%;cursor:pointer}
.row:hover{background:#eef}
li.selected>.row,li.selected>details>summary>.row{outline:2px dashed #55f}
li.chosen>.row,li.chosen>details>summary>.row{border-color:#e0a000;background:#fff6d6}
li.chosen-leaf>.row,li.chosen-leaf>details>summary>.row{border-color:#c07000;font-weight:bold}
.v{display:inline-block;min-width:40px;text-align:center;border-radius:3px;padding:0 3px;
  font:12px ui-monospace,monospace;color:#000}
.n,.prm{font:12px ui-monospace,monospace;color:#555}
.nid{font:11px ui-monospace,monospace;color:#999;min-width:24px}
.step{font:13px ui-monospace,monospace;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.badge{font-size:11px;padding:0 4px;border-radius:8px;background:#ddd}
.b-end{background:#cde}.b-correct{background:#8d8}.b-wrong{background:#f99}
.b-illegal{background:#bbb;text-decoration:line-through}.b-critic{background:#e6d3f5}
.b-chosen{background:#e0a000;color:#fff}
li.unvisited>.row,li.unvisited>details>summary>.row{opacity:.55}
button{font-size:12px;margin-right:6px}
table.index{border-collapse:collapse;margin:12px 16px}
table.index td,table.index th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}
tr.correct td:nth-child(3){color:#070;font-weight:bold}tr.wrong td:nth-child(3){color:#b00}
.qid{font-size:11px;color:#888}
#replay{margin:6px 0;padding:6px 8px;background:#eef3ff;border:1px solid #c8d6f5;border-radius:4px}
#r-slider{width:320px;vertical-align:middle}
#r-info div{margin:2px 0;font:13px ui-monospace,monospace}
#r-info .r-stop{font-weight:bold;color:#a00}
li.r-path>.row,li.r-path>details>summary>.row{border-color:#2f5fd0;background:#dde7ff}
li.r-leaf>.row,li.r-leaf>details>summary>.row{border-color:#1038a0;font-weight:bold}
li.r-new>.row,li.r-new>details>summary>.row{border:2px dashed #209040;background:#e3f6e6}
li.r-rollout>.row,li.r-rollout>details>summary>.row{box-shadow:0 0 0 2px #a040c0}
li.r-future>.row,li.r-future>details>summary>.row{opacity:.2}
tr.group th{background:#eef3ff;padding-top:10px}
td.acc{font-weight:bold}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{css}</style></head>
<body>
<header>
{back}
<h1>Search tree</h1>
<div class="question" id="question">{question}</div>
<div class="facts">{facts}</div>
<div class="legend">
<span><span class="v" style="background:hsl(0,70%,72%)">0.0</span> ..
<span class="v" style="background:hsl(120,70%,72%)">1.0</span> value v</span>
<span class="n">n=visits</span><span class="prm">prm=PRM score at creation</span>
<span class="badge b-end">end</span>finished
<span class="badge b-correct">correct</span><span class="badge b-wrong">wrong</span>verifier
<span class="badge b-critic">critic</span>self-critic
<span class="badge b-chosen">chosen</span>the returned answer's path
</div>
{replay}
<div><button id="expand">expand all</button><button id="collapse">collapse all</button>
<button id="show-chosen">show chosen path</button>
<span class="n">click a node for its full step and fields; hover for the step</span></div>
</header>
<main><div id="tree"></div><aside id="detail"><i>click a node</i></aside></main>
<script type="application/json" id="tree-data">{data}</script>
<script>{script}</script>
</body></html>
"""

# The replay controls (pages of trees with a trace); {last}: the trace's length.
_REPLAY = """<div id="replay"><b>Replay of the search</b>
<button id="r-first" title="the final tree">final tree</button>
<button id="r-prev" title="previous iteration">&#x25C0; prev</button>
<input type="range" id="r-slider" min="0" max="{last}" value="0" step="1">
<button id="r-next" title="next iteration">next &#x25B6;</button>
<button id="r-last" title="the last iteration">last</button>
<button id="r-play">play</button>
<span id="r-label"></span>
<div class="legend"><span class="badge" style="background:#dde7ff">selection path</span>
<span class="badge" style="background:#e3f6e6">new children</span>
<span class="badge" style="box-shadow:0 0 0 2px #a040c0">rolled out from</span>
<span class="n">nodes made later are faded; the nodes' own fields are their final ones;
the address #iter=k opens iteration k</span></div>
<div id="r-info"></div></div>"""

_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{css}</style></head>
<body>
<header>{back}<h1>{title}</h1><div class="fact">{count} questions, {solved} correct</div></header>
<table class="index"><thead><tr><th>#</th><th>question</th><th>verdict</th><th>value</th>
<th>prediction</th><th>gold</th><th>nodes</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""

_FOLDERS = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{css}</style></head>
<body>
<header><h1>{title}</h1><div class="fact">{count} runs, {linked} with tree pages;
accuracy = correct / questions of each run's results.jsonl</div></header>
<table class="index"><thead><tr><th>run</th><th>method</th><th>questions</th><th>correct</th>
<th>accuracy</th><th>trees</th><th></th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""

# Builds the collapsible tree (nested <details>/<ul>) from the JSON block. Model text goes in
# with textContent / title attributes only, never innerHTML.
_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("tree-data").textContent);
  var nodes = {};
  data.nodes.forEach(function (n) { nodes[n.id] = n; });
  var chosen = {};
  data.chosen.forEach(function (id) { chosen[id] = true; });
  var leaf = data.chosen.length ? data.chosen[data.chosen.length - 1] : null;
  var openAll = data.nodes.length <= 150;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function num(x) {  // a NaN or infinity comes as "nan", "inf" or "-inf"
    return (typeof x === "number") ? x.toFixed(3) : (typeof x === "string") ? x : "-";
  }
  function colour(v) {
    var t = Math.max(0, Math.min(1, typeof v === "number" ? v : 0));
    return "hsl(" + Math.round(120 * t) + ",70%,72%)";
  }
  function firstLine(s) {
    s = (s || "").trim();
    var i = s.indexOf("\n");
    return i < 0 ? s : s.slice(0, i) + " ...";
  }

  var detail = document.getElementById("detail");
  var selected = null;
  function show(n) {
    detail.textContent = "";
    detail.appendChild(el("b", null, "node " + n.id + " (depth " + n.depth + ")"));
    var path = [], m = n;
    while (m && m.parent !== null && m.parent !== undefined) {
      path.unshift(m);
      m = nodes[m.parent];
    }
    detail.appendChild(el("div", "n", "path (" + path.length + " steps):"));
    detail.appendChild(el("pre", "path", path.map(function (p) { return p.step; }).join("")));
    detail.appendChild(el("div", "n", "this step:"));
    detail.appendChild(el("pre", "full-step", n.id === 0 ? "(root)" : n.step));
    var mc = n.mcts || {};
    var rows = [["value v", num(n.value)], ["visits n", n.visits], ["PRM score", num(n.prm_score)],
      ["legal", n.legal], ["finished", !!(n.terminal && n.legal)], ["answer", n.answer],
      ["verifier", n.correct === true ? "correct" : n.correct === false ? "wrong" : "-"],
      ["self-critic", n.critic], ["critic status", mc.critic_status],
      ["rollout v_max", num(mc.rollout_v_max)],
      ["expansions", mc.expansions], ["exhausted", n.exhausted], ["tokens", n.tokens],
      ["chosen path", !!chosen[n.id]],
      ["info", n.info && Object.keys(n.info).length ? JSON.stringify(n.info) : null]];
    var table = el("table");
    rows.forEach(function (r) {
      if (r[1] === undefined || r[1] === null) return;
      var tr = el("tr"); tr.appendChild(el("td", null, r[0])); tr.appendChild(el("td", null, r[1]));
      table.appendChild(tr);
    });
    detail.appendChild(table);
  }

  function row(n) {
    var r = el("span", "row");
    r.appendChild(el("span", "nid", "#" + n.id));  // the id the replay's lines name
    var v = el("span", "v", num(n.value));
    v.style.background = colour(n.value);
    r.appendChild(v);
    r.appendChild(el("span", "n", "n=" + (n.visits || 0)));
    r.appendChild(el("span", "prm", "prm=" + num(n.prm_score)));
    if (chosen[n.id]) r.appendChild(el("span", "badge b-chosen", "chosen"));
    if (n.legal === false) r.appendChild(el("span", "badge b-illegal", "illegal"));
    if (n.terminal && n.legal !== false) {
      var said = (n.answer !== null && n.answer !== undefined) ? " = " + n.answer : "";
      r.appendChild(el("span", "badge b-end", "end" + said));
    }
    if (n.correct === true) r.appendChild(el("span", "badge b-correct", "\u2713 correct"));
    if (n.correct === false) r.appendChild(el("span", "badge b-wrong", "\u2717 wrong"));
    var critic = n.critic || (n.mcts && n.mcts.critic_status);
    if (critic) r.appendChild(el("span", "badge b-critic", "critic: " + firstLine(critic)));
    r.appendChild(el("span", "step", n.id === 0 ? "(root) " + data.question : firstLine(n.step)));
    r.title = n.id === 0 ? data.question : n.step;
    return r;
  }

  var size = {};
  function below(id) {  // nodes under `id` (memoised)
    if (size[id] === undefined) {
      size[id] = 0;
      (nodes[id].children || []).forEach(function (c) {
        if (nodes[c] !== undefined) size[id] += 1 + below(c);
      });
    }
    return size[id];
  }

  function build(id) {
    var n = nodes[id];
    var li = el("li", "node");
    li.setAttribute("data-id", String(id));
    if (chosen[id]) li.classList.add("chosen");
    if (id === leaf) li.classList.add("chosen-leaf");
    if (!n.visits) li.classList.add("unvisited");
    var r = row(n);
    r.addEventListener("click", function () {
      if (selected) selected.classList.remove("selected");
      selected = li; li.classList.add("selected"); show(n);
    });
    var kids = (n.children || []).filter(function (c) { return nodes[c] !== undefined; });
    if (kids.length) {
      r.appendChild(el("span", "n below", "[" + below(id) + " below]"));
      var d = el("details");
      d.open = openAll || n.depth < 1 || !!chosen[id];
      var s = el("summary"); s.appendChild(r); d.appendChild(s);
      var ul = el("ul", "children");
      kids.forEach(function (c) { ul.appendChild(build(c)); });
      d.appendChild(ul); li.appendChild(d);
    } else {
      li.appendChild(r);
    }
    return li;
  }

  var root = el("ul", "children");
  if (nodes[0]) root.appendChild(build(0));
  var holder = document.getElementById("tree");
  holder.appendChild(root);

  function setAll(open) {
    holder.querySelectorAll("details").forEach(function (d) { d.open = open; });
  }
  document.getElementById("expand").addEventListener("click", function () { setAll(true); });
  document.getElementById("collapse").addEventListener("click", function () { setAll(false); });
  document.getElementById("show-chosen").addEventListener("click", function () {
    holder.querySelectorAll("details").forEach(function (d) {
      d.open = d.parentNode.classList.contains("chosen");
    });
    var target = holder.querySelector("li.chosen-leaf");
    if (target) target.scrollIntoView({block: "center"});
  });
  if (leaf !== null) show(nodes[leaf]); else if (nodes[0]) show(nodes[0]);

  // ---- the replay of MCTS* (trees with a trace): iteration k marks its selection path,
  // new children and rollout, fades the nodes made after it, and says what it did
  var trace = data.trace || [];
  if (!trace.length) return;
  var slider = document.getElementById("r-slider");
  var label = document.getElementById("r-label");
  var info = document.getElementById("r-info");
  var marks = ["r-path", "r-leaf", "r-new", "r-rollout", "r-future"];
  var born = {};  // node id -> the trace line that made it
  trace.forEach(function (s, i) { s["new"].forEach(function (id) { born[id] = i + 1; }); });
  var counted = trace.filter(function (s) { return s.iteration !== null; }).length;

  function item(id) { return holder.querySelector('li[data-id="' + id + '"]'); }
  function mark(id, cls) { var e = item(id); if (e) e.classList.add(cls); return e; }
  function openTo(e) {  // open every <details> above the node, and its own
    var own = e && e.querySelector(":scope>details");
    if (own) own.open = true;
    while (e && e !== holder) { if (e.tagName === "DETAILS") e.open = true; e = e.parentNode; }
  }
  function line(text, cls) { info.appendChild(el("div", cls, text)); }
  function ids(list) { return list.map(function (id) { return "#" + id; }).join(" \u2192 "); }

  function describe(s) {
    var at = "#" + s.path[s.path.length - 1];
    line("1. selection (UCT, Eq. 33): " + ids(s.path));
    if (s.phase === "expand") {
      line("2. expansion of " + at + ": " + s["new"].length + " new children, PRM values " +
           (s["new"].map(function (id) {
             var n = nodes[id];
             return "#" + id + " " + (n.legal === false ? "illegal" : num(n.prm_score));
           }).join(", ") || "(nothing new and legal)"));
    } else if (s.phase === "finished") {
      line("2. self-critic: " + at + " is a finished path: visited, not expanded");
    } else if (s.phase === "end_gate") {
      line("2. " + at + " has v \u2265 l (end gate): " +
           (s.stop ? "the answer" : "visited, not expanded (early_stop=false)"));
    } else {
      line("2. " + at + " is at the depth cap: a dead end, no iteration");
    }
    if (s.rollout) {
      line("3. rollout from #" + s.rollout.node + ": " + (s.rollout.v_max === null ?
           "no step could follow, v stays " + num(s.rollout.value) :
           "v_max " + num(s.rollout.v_max) + " \u2192 v = " + num(s.rollout.value) + " (Eq. 34)"));
    }
    line("4. values along the path after it (backpropagation, Eq. 35-36): " +
         s.path.map(function (id, i) { return "#" + id + " " + num(s.values[i]); }).join(", "));
    if (s.stop) line("stop: the search ends here", "r-stop");
  }

  function choose(k) {
    k = Math.max(0, Math.min(trace.length, k | 0));
    slider.value = String(k);
    marks.forEach(function (m) {
      holder.querySelectorAll("li." + m).forEach(function (e) { e.classList.remove(m); });
    });
    info.textContent = "";
    try { history.replaceState(null, "", k ? "#iter=" + k : "#"); } catch (err) { /* file: */ }
    if (k === 0) {
      label.textContent = "the final tree (" + counted + " iterations, " + trace.length +
        " trace lines): choose an iteration";
      return;
    }
    var s = trace[k - 1];
    label.textContent = "line " + k + " of " + trace.length + ": " + (s.iteration === null ?
      "no iteration" : "iteration " + s.iteration + " of " + counted);
    data.nodes.forEach(function (n) { if ((born[n.id] || 0) > k) mark(n.id, "r-future"); });
    s.path.forEach(function (id) { openTo(mark(id, "r-path")); });
    var at = mark(s.path[s.path.length - 1], "r-leaf");
    s["new"].forEach(function (id) { mark(id, "r-new"); });
    if (s.rollout) mark(s.rollout.node, "r-rollout");
    describe(s);
    if (at) { show(nodes[s.path[s.path.length - 1]]); at.scrollIntoView({block: "nearest"}); }
  }

  var timer = null;
  var play = document.getElementById("r-play");
  function stop() { if (timer) { clearInterval(timer); timer = null; play.textContent = "play"; } }
  play.addEventListener("click", function () {
    if (timer) { stop(); return; }
    if (+slider.value >= trace.length) choose(0);
    play.textContent = "pause";
    timer = setInterval(function () {
      if (+slider.value >= trace.length) stop(); else choose(+slider.value + 1);
    }, 800);
  });
  slider.addEventListener("input", function () { stop(); choose(+slider.value); });
  [["r-first", function () { return 0; }], ["r-prev", function () { return +slider.value - 1; }],
   ["r-next", function () { return +slider.value + 1; }],
   ["r-last", function () { return trace.length; }]].forEach(function (b) {
    document.getElementById(b[0]).addEventListener("click", function () {
      stop(); choose(b[1]());
    });
  });
  var asked = /iter=(\d+)/.exec(location.hash);
  choose(asked ? +asked[1] : 0);
})();
"""

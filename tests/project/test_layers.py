"""The package's layering (DESIGN.md, "Rooms"): arrows point down only.

    cli -> stages -> loop -> runtime -> training -> search -> backends -> worlds -> data -> answers
    -> models

``cli`` is run.py's room (the command line: check it, run the stage), with the package's
``__main__`` (``python -m rest_mcts``). One list (:data:`FLOORS`, top first) gives the whole
order: a room may import itself and any room below it, never one above; every rule of
:data:`FORBIDDEN` follows from the list (e.g.
runtime may not import loop or stages, loop may import runtime, nothing below runtime imports
it, answers may not import backends, models nothing of the package's rooms). ``worlds`` sits
above ``models`` as in DESIGN.md (models know only transformers); ``data`` and ``answers``,
which DESIGN.md's table leaves out, sit under ``worlds``, which reads them.

Every module under ``src/rest_mcts`` is parsed with ``ast``; imports at module level and
inside functions both count (a function-level import is still a dependency). Top-level
modules that are no room (``config``, ``prompts``, ``prompting``, ``utils``, ...) are shared
helpers: they may import only the rooms below :data:`SHARED_ABOVE` (``backends``), as the
bottom rooms that use them do.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "rest_mcts"

# the rooms, top first: arrows point down this list only
FLOORS = ("cli", "stages", "loop", "runtime", "training", "search", "backends", "worlds", "data",
          "answers", "models")
# room -> rooms it may never import from: every room above it
FORBIDDEN = {room: FLOORS[:i] for i, room in enumerate(FLOORS)}
SHARED_ABOVE = "backends"  # shared helpers import no room at or above this one
SHARED_FORBIDDEN = FLOORS[:FLOORS.index(SHARED_ABOVE) + 1]  # config, prompts, prompting, utils, ...
ROOMS = set(FLOORS)
ENTRY_POINTS = {"__main__": "cli"}  # `python -m rest_mcts` is the command line's


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> list[tuple[str, Path]]:
    return sorted((_module_name(p), p) for p in PACKAGE.rglob("*.py"))


def _imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every ``rest_mcts`` import of the file, at any depth."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package[: len(package) - node.level + 1]
                if node.module:
                    targets = [".".join(base + [node.module])]
                else:  # `from . import x`: x is a module of that package
                    targets = [".".join(base + [alias.name]) for alias in node.names]
            else:
                targets = [node.module or ""]
            # `from rest_mcts import search` imports the room itself
            if targets == ["rest_mcts"]:
                targets = [f"rest_mcts.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, t) for t in targets if t == "rest_mcts" or t.startswith("rest_mcts.")]
    return found


def _room(module: str) -> str:
    """``rest_mcts.search.tree`` -> ``search``; ``rest_mcts`` -> ``""``."""
    parts = module.split(".")
    return ENTRY_POINTS.get(parts[1], parts[1]) if len(parts) > 1 else ""


def _edges() -> list[tuple[str, int, str]]:
    """(importing module, line, imported module) for every import inside the package."""
    return [(name, line, target) for name, path in _modules() for line, target in _imports(name, path)]


def test_the_scan_sees_function_level_and_relative_imports(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text(
        "import os\nfrom rest_mcts.search import tree\n"
        "def f():\n    from rest_mcts.stages.common import build_world\n"
        "    from . import sibling\n"
    )
    found = [t for _, t in _imports("rest_mcts.worlds.mod", path)]
    assert found == ["rest_mcts.search", "rest_mcts.stages.common", "rest_mcts.worlds.sibling"]


def _up_arrows(edges: list[tuple[str, int, str]]) -> list[str]:
    """One line per import that points up :data:`FLOORS` (or from a shared helper to a room
    at or above :data:`SHARED_ABOVE`)."""
    violations = []
    for name, line, target in edges:
        room, other = _room(name), _room(target)
        if room == other:
            continue
        forbidden = FORBIDDEN[room] if room in ROOMS else SHARED_FORBIDDEN
        if other in forbidden:
            violations.append(f"{name}:{line} [{room or 'rest_mcts'}] imports {target} [{other}]")
    return violations


def test_the_floors_give_every_rule():
    """The order encodes the rules the layering promises, the lower floors included."""
    assert set(FORBIDDEN["runtime"]) == {"cli", "stages", "loop"}
    assert "runtime" not in FORBIDDEN["loop"]  # the loop stands on the runtime
    for room in ("training", "search", "backends", "models", "worlds", "answers", "data"):
        assert "runtime" in FORBIDDEN[room], room
    bad = [("rest_mcts.answers.check", 1, "rest_mcts.backends.base"),
           ("rest_mcts.worlds.countdown", 1, "rest_mcts.search.tree"),
           ("rest_mcts.models.factory", 1, "rest_mcts.backends.registry"),
           ("rest_mcts.models.factory", 1, "rest_mcts.worlds.base"),
           ("rest_mcts.answers.check", 1, "rest_mcts.data.records"),
           ("rest_mcts.runtime.context", 1, "rest_mcts.loop.train"),
           ("rest_mcts.training.prm", 1, "rest_mcts.runtime.context"),
           ("rest_mcts.loop.algorithm", 1, "rest_mcts.stages.loop"),
           ("rest_mcts.config", 1, "rest_mcts.backends.registry")]
    assert len(_up_arrows(bad)) == len(bad)
    good = [("rest_mcts.loop.algorithm", 1, "rest_mcts.runtime.search_run"),
            ("rest_mcts.stages.search", 1, "rest_mcts.runtime.spec"),
            ("rest_mcts.runtime.policy0", 1, "rest_mcts.training.artifacts"),
            ("rest_mcts.worlds.text", 1, "rest_mcts.answers.check"),
            ("rest_mcts.prompting.format", 1, "rest_mcts.data.records")]
    assert _up_arrows(good) == []


def test_no_room_imports_from_a_room_above_it():
    violations = _up_arrows(_edges())
    assert not violations, "up-arrows:\n" + "\n".join(violations)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (its nodes in order, the first repeated at the end), found by a
    depth-first search for a back edge; None when there is none."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_among_top_level_rooms():
    graph: dict[str, set[str]] = defaultdict(set)
    for name, _, target in _edges():
        room, other = _room(name), _room(target)
        if room and other and room != other:
            graph[room].add(other)
    if cycle := _find_cycle(graph):
        pytest.fail("import cycle among rooms: " + " -> ".join(cycle))


def test_runtime_imports_nothing_from_loop_or_stages():
    """The runtime sits under Algorithm 1: its arrows point down (stated on its own as well,
    so a change to :data:`FLOORS` cannot drop it silently)."""
    violations = [
        f"{name}:{line} imports {target}"
        for name, line, target in _edges()
        if _room(name) in ("runtime", "loop") and _room(target) in ("loop", "stages")
        and _room(name) != _room(target)
    ]
    assert not violations, "\n".join(violations)


def test_stage_modules_do_not_import_each_other():
    """Only the dispatcher (``stages/__init__.py``) imports stage modules."""
    violations = [
        f"{name}:{line} imports {target}"
        for name, line, target in _edges()
        if _room(name) == "stages" and name != "rest_mcts.stages" and _room(target) == "stages"
    ]
    assert not violations, "\n".join(violations)


def test_every_module_imports():
    """``import rest_mcts.<m>`` works for every module (one interpreter, in sorted order)."""
    names = [name for name, _ in _modules()]
    code = (
        "import importlib, sys, traceback\n"
        "bad = []\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        bad.append(name + ': ' + traceback.format_exc(limit=-2))\n"
        "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def _module_edges(modules: set[str]) -> list[tuple[str, str]]:
    """(importing module, imported module) at module granularity: ``from pkg import mod``
    points at ``pkg.mod`` when that is a module, else at ``pkg``."""

    def owner(target: str) -> str:
        while target and target not in modules:
            target = target.rsplit(".", 1)[0] if "." in target else ""
        return target

    edges = []
    for name, path in _modules():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (".".join(package[: len(package) - node.level + 1]) if node.level
                        else "")
                module = ".".join(p for p in (base, node.module or "") if p)
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                           for a in node.names]
            else:
                continue
            edges += [(name, owner(t)) for t in targets if t.startswith("rest_mcts")]
    return [(a, b) for a, b in edges if b and b != a and not a.startswith(b + ".")]


def test_no_import_cycle_among_modules():
    """No module imports, directly or through others, a module that imports it back (lazy
    imports inside functions count too); a package's own ``__init__`` is not an edge of its
    modules."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, target in _module_edges({name for name, _ in _modules()}):
        graph[name].add(target)
    if cycle := _find_cycle(graph):
        pytest.fail("import cycle among modules: " + " -> ".join(cycle))

"""Read MCTS*'s per-iteration trace of a saved tree, for the page's replay.

A tree saved by MCTS* holds ``trace``: one line per iteration, as
:func:`rest_mcts.search.mcts_star.trace_entry` writes it, e.g.
``expand path=0,2 new=5,6,7 rollout=6,0.9,0.85 values=0.61,0.7 stop``. Here each line becomes
a dict the page's script reads (:func:`parse_line`); a tree without a trace (BFS, or saved
before MCTS* kept one) has no replay. Pure: strings in, dicts out; a line that does not
parse, or names a node the tree does not hold, is a ``ValueError`` naming the iteration.
"""

from __future__ import annotations

from typing import Any, Sequence

PHASES = ("expand", "finished", "end_gate", "dead_end")
LISTS = ("path", "new", "rollout", "values")


def _number(word: str) -> float | int | None:
    """One number of a trace list: an id, a value (``nan``, ``inf`` by name), ``-`` for none."""
    if word == "-":
        return None
    try:
        return int(word)
    except ValueError:
        return float(word)


def parse_line(line: str) -> dict[str, Any]:
    """One trace line as ``{"phase", "path", "new", "rollout", "values", "stop"}``:
    ``rollout`` is ``{"node", "v_max", "value"}`` or None, ``new`` [] when nothing was
    expanded; ValueError when the line does not parse."""
    if not isinstance(line, str):
        raise ValueError(f"expected a line of text, got {type(line).__name__}")
    phase, *words = line.split()
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r} is not one of {', '.join(PHASES)}")
    step: dict[str, Any] = {"phase": phase, "path": [], "new": [], "rollout": None,
                            "values": [], "stop": False}
    for word in words:
        key, _, numbers = word.partition("=")
        if word == "stop":
            step["stop"] = True
        elif key in LISTS and numbers:
            step[key] = [_number(w) for w in numbers.split(",")]
        else:
            raise ValueError(f"cannot read {word!r}")
    if not step["path"] or len(step["values"]) != len(step["path"]):
        raise ValueError("expected path= and as many values= as the path has nodes")
    if step["rollout"] is not None:
        if len(step["rollout"]) != 3:
            raise ValueError("expected rollout=<node>,<v_max>,<value>")
        step["rollout"] = dict(zip(("node", "v_max", "value"), step["rollout"]))
    return step


def _ids(step: dict[str, Any]) -> list[Any]:
    rolled = [step["rollout"]["node"]] if step["rollout"] else []
    return [*step["path"], *step["new"], *rolled]


def parse_trace(lines: Sequence[str], node_ids: set[int]) -> list[dict[str, Any]]:
    """Every line of a tree's ``trace`` (:func:`parse_line`), each given ``iteration``: its
    number among the T iterations (None for a dead end at the depth cap, which is none).

    Raises:
        ValueError: ``iteration k: ...`` for a line that does not parse or names a node
            (``node_ids``) that the tree does not hold.
    """
    if not isinstance(lines, list):
        raise ValueError(f"'trace' is {type(lines).__name__}, expected a list of lines")
    steps, counted = [], 0
    for k, line in enumerate(lines, 1):
        try:
            step = parse_line(line)
        except ValueError as err:
            raise ValueError(f"trace line {k}: {err}") from None
        unknown = [i for i in _ids(step) if i not in node_ids]
        if unknown:
            raise ValueError(f"trace line {k}: node {unknown[0]} is not in the tree")
        counted += step["phase"] != "dead_end"
        step["iteration"] = counted if step["phase"] != "dead_end" else None
        steps.append(step)
    return steps


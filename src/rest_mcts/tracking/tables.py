"""Tables of sample answers: the first questions of a search folder as rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def sample_rows(out_dir: str | Path, n: int, **extra: Any) -> list[dict[str, Any]]:
    """The first ``n`` questions of a search folder (``results.jsonl``, ``trees/``) as table
    rows: question, prediction, gold, correct, value, policy tokens, the chosen path's steps
    and the size of its tree; ``extra`` columns (iteration, method) in front."""
    path = Path(out_dir) / "results.jsonl"
    rows: list[dict[str, Any]] = []
    if not path.is_file() or n <= 0:
        return rows
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if len(rows) >= n:
                break
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a torn last line
                continue
            tree = Path(out_dir) / "trees" / f"{r['id']}.json"
            nodes = None
            if tree.is_file():
                try:
                    nodes = len(json.loads(tree.read_text()).get("nodes", []))
                except (OSError, ValueError, AttributeError):  # torn, not UTF-8, not a tree
                    nodes = None
            rows.append({
                **extra,
                "id": str(r["id"]),
                "question": str(r.get("question", "")),
                "prediction": str(r.get("prediction")),
                "gold": str(r.get("gold")),
                "correct": bool(r.get("correct")),
                "value": None if r.get("value") is None else float(r["value"]),
                "tokens": int((r.get("costs") or {}).get("policy_tokens", 0)),
                "steps": "\n".join(str(s) for s in r.get("steps") or []),
                "tree_nodes": nodes,
            })
    return rows

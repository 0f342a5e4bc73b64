"""The one metric vocabulary: every metric's canonical ``split/name``, and the older names it
was written or read under.

Writers keep the names on disk (``metrics.json``, a loop's ``results.csv`` and rows) as
they are, so old folders stay comparable; the wandb run shows each metric under its
canonical name (:func:`canonical`), and a reader of a folder finds a metric under its
canonical name or any alias (:func:`lookup`). :data:`ALIASES` is the only table of old
names: a new alias goes there, nowhere else.
"""

from __future__ import annotations

from typing import Any, Mapping

# Another name (on disk, in an older folder or on an older dashboard) -> the canonical name.
ALIASES: dict[str, str] = {
    "iteration": "loop/iter",
    "loop/iteration": "loop/iter",
    "eval/policy_tokens_per_question": "eval/tokens_per_question",
    "search/policy_tokens_per_question": "search/tokens_per_question",
    # the PRM's sibling ranking accuracy: Lightning logs `val/sibling_acc` while training,
    # the loop's rows hold `prm/val_sibling_acc`, older dashboards `*/sibling_rank_acc`
    "prm/val_sibling_acc": "prm/sibling_acc",
    "prm/sibling_rank_acc": "prm/sibling_acc",
    "val/sibling_rank_acc": "val/sibling_acc",
    "sc/n": "eval/sc_n",
    "bfs/beam_width": "eval/bfs_beam_width",
}
# Column prefixes of the loop's evaluation methods (rest_mcts.loop.evaluate.EVAL_METHODS)
# and their suffixes: `mcts/acc` -> `eval/mcts_acc`, `cot/tokens` -> `eval/cot_tokens_per_question`.
EVAL_COLUMNS = ("cot", "sc", "best_of_n", "best_of_n_prod", "weighted_vote", "pass@n", "bfs",
                "mcts", "mcts_lean", "mcts_widen")
EVAL_SUFFIXES = {"acc": "acc", "tokens": "tokens_per_question",
                 "prompt_tokens": "prompt_tokens_per_question",
                 "prm_calls": "prm_calls_per_question"}
# Metric prefixes of the loop's rows, plotted against `loop/iter`.
LOOP_SPLITS = ("eval", "prm", "policy", "data", "search")
# 1.0 in a search's metrics when its values came from an untrained value head (prm.path unset)
UNTRAINED_PRM = "prm/untrained_head"


def canonical(key: str) -> str:
    """The ``split/name`` of a metric key (:data:`ALIASES` first; then a bare key goes under
    ``stage/``, a loop method column under ``eval/``, ``prm/val_x`` to ``prm/x``, and a
    deeper key joins its tail with ``_``)."""
    if key in ALIASES:
        return ALIASES[key]
    head, _, rest = key.partition("/")
    if not rest:
        return f"stage/{key}"
    if head in EVAL_COLUMNS and rest in EVAL_SUFFIXES:
        return f"eval/{head}_{EVAL_SUFFIXES[rest]}"
    if head == "prm" and rest.startswith("val_"):
        rest = rest[len("val_"):]
    return f"{head}/{rest.replace('/', '_')}"


# the name the stage's wandb run shows a key under
wandb_name = canonical


def wandb_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Scalar metrics under their canonical names; None and non-numbers are left out."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or isinstance(value, (int, float)):
            out[canonical(key)] = float(value)
    return out


def names_of(key: str) -> tuple[str, ...]:
    """``key`` first, then every other name of the same metric (its canonical name and the
    aliases of that name), in :data:`ALIASES` order."""
    target = ALIASES.get(key, key)
    others = [target, *(old for old, new in ALIASES.items() if new == target)]
    return tuple(dict.fromkeys([key, *others]))


def lookup(row: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``row[key]``, else the value under another name of the same metric (an old folder's
    column), else ``default``; an empty cell (None or "") counts as missing."""
    for name in names_of(key):
        value = row.get(name)
        if value is not None and value != "":
            return value
    return default

"""The one table of axis and legend labels: a metric or config key -> words with units.

Every plot asks :func:`label`; a key the table does not know is shown as it is. A metric is
found under any of its names (:func:`rest_mcts.tracking.names.names_of`), and an in-run
checkpoint ``<metric>@T=t`` is its metric's label "at T = t".
"""

from __future__ import annotations

import re

from rest_mcts.tracking.names import names_of

# Metrics (``split/name``, or a loop row's column) -> label.
METRICS: dict[str, str] = {
    "eval/acc": "held-out accuracy",
    "eval/greedy_acc": "greedy accuracy (held-out)",
    "eval/finished_rate": "share of questions with a finished answer",
    "eval/policy_tokens_per_question": "policy tokens per question",
    "eval/prompt_tokens_per_question": "prompt tokens per question",
    "eval/policy_calls_per_question": "policy calls per question",
    "eval/prm_calls_per_question": "PRM calls per question",
    "eval/wall_seconds_per_question": "wall time per question (s)",
    "eval/num_questions": "questions",
    "search/acc": "accuracy (searched questions)",
    "search/policy_tokens_per_question": "policy tokens per question (search)",
    "merge/acc": "accuracy (merged shards)",
    "loop/mcts/acc": "MCTS* held-out accuracy (last iteration)",
    "loop/cot/acc": "CoT held-out accuracy (last iteration)",
    "time/stage_seconds": "stage wall time (s)",
    "prm/val_sibling_acc": "PRM sibling ranking accuracy",
    "prm/val_mse": "PRM validation MSE",
    "iteration": "self-training iteration k",
    "T": "MCTS* iterations T",
}
# Config keys (the paper's knobs: symbol, then the key to type) -> label.
KNOBS: dict[str, str] = {
    "search.alpha": "rollout weight α (search.alpha)",
    "search.end_gate": "end threshold ℓ (search.end_gate)",
    "search.branch": "branch b (search.branch)",
    "search.iterations": "MCTS* iterations T (search.iterations)",
    "search.rollout_steps": "rollout steps (search.rollout_steps)",
    "search.rollout_branch": "rollout branch (search.rollout_branch)",
    "search.exploration_constant": "UCT constant c (search.exploration_constant)",
    "search.widen": "progressive widening (search.widen)",
    "search.self_critic": "self-critic (search.self_critic)",
    "stage.iterations": "self-training iterations K (stage.iterations)",
    "seed": "seed",
}
# The short name a knob has in a legend ("α = 0.5").
SYMBOLS: dict[str, str] = {
    "search.alpha": "α",
    "search.end_gate": "ℓ",  # a script l: a sans-serif l reads as I
    "search.branch": "b",
    "search.iterations": "T",
    "search.exploration_constant": "c",
    "stage.iterations": "K",
}
LABELS: dict[str, str] = {**METRICS, **KNOBS}
_AT_T = re.compile(r"^(?P<metric>.+)@T=(?P<t>\d+)$")


def label(key: str) -> str:
    """The axis label of ``key`` (``eval/acc`` -> "held-out accuracy"); the key itself when
    the table has no entry."""
    for name in names_of(key):
        if name in LABELS:
            return LABELS[name]
    at = _AT_T.match(key)
    if at and label(at["metric"]) != at["metric"]:
        return f"{label(at['metric'])} at T = {at['t']}"
    return key


def setting(key: str, value: object) -> str:
    """A legend entry for one value of a swept key: ``α = 0.5``, else ``key = value``."""
    return f"{SYMBOLS.get(key, key)} = {value}"

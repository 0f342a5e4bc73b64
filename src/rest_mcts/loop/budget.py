"""The equal budget of the self-training baselines: policy tokens per training question.

ReST-MCTS* spends, at iteration k, the policy tokens that its MCTS* on the training questions
used (``search/policy_tokens_per_question`` of ``iter_k/search``, measured). A baseline loop
(``stage.method=rest_em|dpo``) gets the same per question at each iteration:
``stage.budget.match=<a rest_mcts loop folder>`` reads that folder's measured tokens of
iteration k (and refuses a folder with another ``stage.train_problems``), or
``stage.budget.tokens_per_question=<n>`` gives one fixed number for every iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rest_mcts.config import ConfigError, Knobs, knob
from rest_mcts.utils.io import read_json

SEARCH_TOKENS = "search/policy_tokens_per_question"


@dataclass(frozen=True)
class BudgetSettings(Knobs):
    """``stage.budget``: the policy tokens per training question of a baseline iteration.

    Attributes:
        match: a finished (or running) ``stage.method=rest_mcts`` loop folder; iteration k's
            budget is its MCTS* search's measured tokens per question at iteration k.
        tokens_per_question: a fixed budget for every iteration (when ``match`` is unset).
    """

    match: str | None = None
    tokens_per_question: int | None = knob(None, low=1, integer=True, optional=True)
    option: str = field(default="stage.budget", repr=False)

    def knob_prefix_of(self) -> str:
        return self.option

    def check(self, method: str, train_problems: int) -> None:
        """One-line errors before any work: a baseline needs exactly one budget, and a
        matched loop must exist and have searched as many training questions."""
        if (self.match is None) == (self.tokens_per_question is None):
            raise ConfigError(
                f"stage.method={method} needs one budget: {self.option}.match=<a rest_mcts loop "
                f"folder> or {self.option}.tokens_per_question=<n> (not both)")
        if self.match is None:
            return
        folder = Path(self.match)
        config = folder / "loop_config.json"
        if not config.is_file():
            raise ConfigError(f"{self.option}.match='{folder}' is not a loop folder "
                              "(no loop_config.json)")
        stage = (read_json(config, dict).get("config") or {}).get("stage") or {}
        if stage.get("method", "rest_mcts") != "rest_mcts":
            raise ConfigError(f"{self.option}.match='{folder}' is a stage.method="
                              f"{stage.get('method')} loop, not a rest_mcts one")
        if stage.get("train_problems") != train_problems:
            raise ConfigError(
                f"{self.option}.match='{folder}' searched stage.train_problems="
                f"{stage.get('train_problems')}, this loop has {train_problems}: set the same")

    def target(self, k: int) -> float:
        """Policy tokens per training question of iteration k (k >= 1)."""
        if self.match is None:
            return float(self.tokens_per_question)
        return matched_tokens(self.match, k, self.option)


def matched_tokens(folder: str | Path, k: int, option: str = "stage.budget") -> float:
    """The measured MCTS* policy tokens per training question of iteration k of the
    ReST-MCTS* loop in ``folder`` (from ``iter_k/search/manifest.json``)."""
    manifest = Path(folder) / f"iter_{k}" / "search" / "manifest.json"
    if not manifest.is_file():
        raise ConfigError(f"{option}.match='{folder}' has no finished MCTS* search of "
                          f"iteration {k} ({manifest}): run that loop that far first")
    outputs = read_json(manifest, dict).get("outputs", {})
    if SEARCH_TOKENS not in outputs:
        raise ConfigError(f"{manifest}: no {SEARCH_TOKENS} in its outputs")
    return float(outputs[SEARCH_TOKENS])

"""What a search asks of the engine, and the costs the engine counts for it.

A search method is a generator written for ONE question: it ``yield``s a request and
receives the answer back (``answer = yield Generate(...)``), and finally ``return``s its
:class:`SearchResult`. The engine runs many such generators side by side and merges their
pending requests into batched backend calls; the method never knows it was batched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generator, Sequence, Union

from rest_mcts.backends.base import GenerationOutput, SamplingParams


@dataclass(frozen=True)
class Generate:
    """Ask the policy for ``params.n`` completions of each prompt.

    Answer: ``list[GenerationOutput]``, one per prompt, in order."""

    prompts: tuple[str, ...]
    params: SamplingParams

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))


@dataclass(frozen=True)
class Score:
    """Ask the value model (PRM) for the value of each (question text, steps) pair.

    Answer: ``list[float]`` in [0, 1], in order."""

    items: tuple[tuple[str, tuple[str, ...]], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple((q, tuple(s)) for q, s in self.items))


Request = Union[Generate, Score]
Answer = Union[list[GenerationOutput], list[float]]


@dataclass
class Costs:
    """Compute spent on one question (counted by the engine where it makes the calls)."""

    policy_tokens: int = 0  # generated tokens
    prompt_tokens: int = 0
    policy_calls: int = 0  # batched backend calls this question took part in
    prm_calls: int = 0  # (question, steps) pairs scored
    scorer_calls: int = 0  # batched scorer calls this question took part in
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class SearchResult:
    """What a search returns for one question (never contains the gold answer).

    Attributes:
        steps: the chosen solution path (empty when the search found none).
        answer: the final answer that path states, or None.
        finished: whether the chosen path is finished.
        value: the value the search assigned to its chosen path.
        tree: JSON-able record of the search (a search tree, or the sampled paths).
        info: method-specific scalars (iterations run, nodes, ...).
        costs: filled in by the engine.
    """

    steps: tuple[str, ...] = ()
    answer: str | None = None
    finished: bool = False
    value: float = 0.0
    tree: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    costs: Costs = field(default_factory=Costs)


SearchGen = Generator[Request, Answer, SearchResult]


def step_params(
    n: int, temperature: float, max_new_tokens: int, stop: Sequence[str] = ("\n",)
) -> SamplingParams:
    """Sampling settings for proposing next steps (one line each)."""
    return SamplingParams(
        n=n, temperature=temperature, max_new_tokens=max_new_tokens, stop=tuple(stop)
    )

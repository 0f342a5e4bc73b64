"""Scripted fake policy and scorer for unit tests of search logic (not of models)."""

from __future__ import annotations

from typing import Callable, Sequence

from rest_mcts.backends.base import Completion, GenerationOutput
from rest_mcts.search.requests import Generate, Score


def drive(gen, policy: Callable, scorer: Callable, log: list | None = None):
    """Run one search generator to completion against plain functions.

    policy(prompt, params) -> list of completion texts (at most params.n used, cycled to n);
    scorer(question_text, steps) -> value.
    """
    try:
        request = next(gen)
        while True:
            if log is not None:
                log.append(request)
            if isinstance(request, Generate):
                answer = []
                for prompt in request.prompts:
                    texts = list(policy(prompt, request.params))
                    texts = [texts[i % len(texts)] for i in range(request.params.n)]
                    answer.append(
                        GenerationOutput(
                            tuple(Completion(t, len(t), "stop") for t in texts), len(prompt)
                        )
                    )
            elif isinstance(request, Score):
                answer = [float(scorer(q, tuple(s))) for q, s in request.items]
            else:  # pragma: no cover
                raise TypeError(request)
            request = gen.send(answer)
    except StopIteration as stop:
        return stop.value


def steps_of(prompt: str) -> list[str]:
    """The steps already in a policy prompt (lines after the question)."""
    return prompt.split("\n")[1:-1]


def table_policy(table: dict[int, Sequence[str]]):
    """Propose table[k] (a list of step lines) when the prompt holds k steps."""

    def policy(prompt, params):
        return table.get(len(steps_of(prompt)), ["garbage\n"])

    return policy

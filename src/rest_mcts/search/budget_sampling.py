"""Whole solutions sampled per question until a budget of policy tokens is spent.

The self-training baselines (ReST-EM, Singh et al. 2023; iterative DPO, Rafailov et al. 2023)
draw their training data by plain sampling; to compare them with ReST-MCTS* at equal cost,
each question gets the policy tokens per question that MCTS* spent on the training questions
(docs/loop.md, "Baselines"). :func:`sample_to_budget` draws solutions for every question side
by side (batched calls), keeps each question's samples in draw order and stops a question at
the sample that brings its spent tokens closest to the target: the spent tokens end within
half a sample of the target (at least one sample per question).

Sample i of a question is generated with the row seed ``derive_seed(seed, question id, i)``:
it depends on nothing else (not on the batch, the other questions or the chunking), so a run
is reproducible and a question's samples do not change with the set of questions.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

from tqdm import tqdm

from rest_mcts.backends.base import Completion, PolicyBackend, SamplingParams, derive_seed
from rest_mcts.prompts import policy_prompt, prompt_format
from rest_mcts.search.selection import judge_solution
from rest_mcts.worlds.base import Problem, World

log = logging.getLogger(__name__)

MAX_CHUNK = 64  # samples of one question per round at most
MAX_SAMPLES = 4096  # samples of one question at most, whatever the budget


@dataclass(frozen=True)
class Sample:
    """One sampled solution, judged against the gold answer.

    Attributes:
        text: the generated text.
        steps: its legal steps (cut at the first illegal one).
        tokens: policy tokens it cost.
        finished: it reached an answer on legal steps.
        answer: the answer the finished path states (None otherwise).
        correct: finished and verified correct.
    """

    text: str
    steps: tuple[str, ...]
    tokens: int
    finished: bool
    answer: str | None
    correct: bool


@dataclass(frozen=True)
class QuestionSamples:
    """The samples of one question, in draw order, and the tokens they cost."""

    problem: Problem
    samples: tuple[Sample, ...]

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.samples)


def keep_sample(spent: int, tokens: int, target: float) -> bool:
    """Whether a sample of ``tokens`` is kept when ``spent`` tokens are already spent: while
    under ``target``, yes if it lands nearer the target than stopping now (the first sample
    always)."""
    if spent == 0:
        return True
    if spent >= target:
        return False
    return spent + tokens - target <= target - spent


def sample_to_budget(
    backend: PolicyBackend,
    world: World,
    problems: Sequence[Problem],
    *,
    tokens_per_question: float,
    temperature: float,
    max_new_tokens: int,
    seed: int,
) -> list[QuestionSamples]:
    """Sample whole solutions of every problem until each has spent about
    ``tokens_per_question`` policy tokens (:func:`keep_sample`).

    Each round asks, per unfinished question, for as many samples as its remaining budget
    fits at its mean sample length so far (one in the first round, at most
    :data:`MAX_CHUNK`); samples drawn past a question's stop are dropped and not counted.

    Returns:
        One :class:`QuestionSamples` per problem, in order.
    """
    if tokens_per_question <= 0:
        raise ValueError(f"tokens_per_question must be > 0, got {tokens_per_question}")
    fmt = prompt_format(world)
    prompts = [policy_prompt(p.question.text, (), fmt) for p in problems]
    kept: list[list[Sample]] = [[] for _ in problems]
    spent = [0] * len(problems)
    drawn = [0] * len(problems)
    active = set(range(len(problems)))
    params = SamplingParams(n=1, temperature=temperature, max_new_tokens=max_new_tokens)
    with tqdm(total=len(problems), desc="sample to budget", unit="question") as bar:
        while active:
            rows: list[tuple[int, int]] = []  # (question index, sample index)
            for q in sorted(active):
                rows += [(q, drawn[q] + i) for i in range(_chunk(kept[q], spent[q],
                                                                 tokens_per_question))]
            outputs = backend.generate(
                [prompts[q] for q, _ in rows], params,
                seeds=[derive_seed(seed, problems[q].question.id, i) for q, i in rows])
            for (q, _), out in zip(rows, outputs):
                drawn[q] += 1
                if q not in active:
                    continue
                completion = out.completions[0]
                tokens = max(1, completion.num_tokens)
                if keep_sample(spent[q], tokens, tokens_per_question):
                    kept[q].append(_judge(world, problems[q], completion, tokens))
                    spent[q] += tokens
                else:
                    active.discard(q)
                    bar.update(1)
                    continue
                if spent[q] >= tokens_per_question or len(kept[q]) >= MAX_SAMPLES:
                    active.discard(q)
                    bar.update(1)
    return [QuestionSamples(p, tuple(s)) for p, s in zip(problems, kept)]


def _chunk(kept: list[Sample], spent: int, target: float) -> int:
    if not kept:
        return 1
    mean = spent / len(kept)
    return max(1, min(MAX_CHUNK, math.ceil((target - spent) / mean)))


def _judge(world: World, problem: Problem, completion: Completion, tokens: int) -> Sample:
    path = judge_solution(problem.question, world, completion)
    correct = path.finished and world.is_correct(problem, list(path.steps))
    return Sample(text=completion.text, steps=tuple(path.steps), tokens=tokens,
                  finished=bool(path.finished), answer=path.answer, correct=bool(correct))

"""Policy evaluation on held-out problems: greedy (CoT) accuracy, step legality, and
accuracy of N sampled solutions (pass@N: best-of-N with the exact verifier).

It lives in ``search`` because it judges whole generated solutions with the same parser as
the CoT and sampling baselines (:func:`~rest_mcts.search.steps.judge_solution`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from tqdm import tqdm

from rest_mcts.backends.base import (
    Completion,
    GenerationOutput,
    PolicyBackend,
    SamplingParams,
    row_seeds,
)
from rest_mcts.prompts import policy_prompt, prompt_format
from rest_mcts.search.selection import judge_solution as judge_path
from rest_mcts.worlds.base import Problem, World

log = logging.getLogger(__name__)

# Prompts per backend call in evaluation (progress shows between calls).
EVAL_PIECE = 64


@dataclass(frozen=True)
class PathJudgement:
    """Verdict on one generated solution."""

    correct: bool
    legal_steps: int
    judged_steps: int  # legal steps plus the first illegal one, if any
    finished: bool


def judge_solution(world: World, problem: Problem, completion: Completion) -> PathJudgement:
    """Check a generated solution step by step (the search's parser, `steps.judge_solution`),
    then verify the finished path against the gold answer."""
    path = judge_path(problem.question, world, completion)
    correct = path.finished and world.is_correct(problem, list(path.steps))
    judged = len(path.steps) + (1 if path.error else 0)
    return PathJudgement(correct, len(path.steps), judged, path.finished)


def evaluate_policy(
    backend: PolicyBackend,
    world: World,
    problems: Sequence[Problem],
    *,
    samples: int = 8,
    temperature: float = 1.0,
    max_new_tokens: int = 96,
    seed: int = 0,
) -> dict[str, float]:
    """Greedy and sampled accuracy of a policy writing whole solutions.

    Returns flat metrics: ``eval/greedy_acc``, ``eval/legal_step_rate`` (greedy),
    ``eval/sample_acc`` (mean over samples), ``eval/sample_legal_step_rate``,
    ``eval/pass@N`` (some sample correct), ``eval/greedy_tokens_per_question``.
    """
    prompts = [policy_prompt(p.question.text, (), prompt_format(world)) for p in problems]
    with tqdm(total=2 * len(prompts), desc="evaluate", unit="prompt") as bar:
        greedy = _generate(backend, prompts, SamplingParams(n=1, max_new_tokens=max_new_tokens), bar)
        sampled = _generate(
            backend,
            prompts,
            SamplingParams(
                n=samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed
            ),
            bar,
        )
    g_judged = [judge_solution(world, p, out.completions[0]) for p, out in zip(problems, greedy)]
    s_judged = [
        [judge_solution(world, p, c) for c in out.completions]
        for p, out in zip(problems, sampled)
    ]
    flat = [j for row in s_judged for j in row]
    n = max(1, len(problems))
    return {
        "eval/num_problems": float(len(problems)),
        "eval/greedy_acc": sum(j.correct for j in g_judged) / n,
        "eval/legal_step_rate": _legal_rate(g_judged),
        "eval/sample_acc": sum(j.correct for j in flat) / max(1, len(flat)),
        "eval/sample_legal_step_rate": _legal_rate(flat),
        f"eval/pass@{samples}": sum(any(j.correct for j in row) for row in s_judged) / n,
        "eval/greedy_tokens_per_question": sum(o.completions[0].num_tokens for o in greedy) / n,
    }


def _generate(
    backend: PolicyBackend, prompts: list[str], params: SamplingParams, bar: tqdm,
    piece_size: int = EVAL_PIECE,
) -> list[GenerationOutput]:
    """``backend.generate(prompts, params)`` in pieces of ``piece_size`` prompts, advancing
    ``bar`` as each piece finishes. Prompt i keeps the row seed it has in one whole call
    (:func:`rest_mcts.backends.base.row_seeds`), so the completions equal those of one call
    on every backend."""
    seeds = row_seeds(len(prompts), params, None)
    outputs: list[GenerationOutput] = []
    for first in range(0, len(prompts), piece_size):
        piece = prompts[first : first + piece_size]
        mine = None if seeds is None else seeds[first : first + piece_size]
        outputs += backend.generate(piece, params, seeds=mine)
        bar.update(len(piece))
    return outputs


def _legal_rate(judged: Sequence[PathJudgement]) -> float:
    total = sum(j.judged_steps for j in judged)
    return sum(j.legal_steps for j in judged) / total if total else 0.0


def step_skill(
    backend: PolicyBackend,
    world: World,
    problems: Sequence[Problem],
    *,
    depths: Sequence[int] = (1, 2, 3),
    samples: int = 8,
    temperature: float = 0.7,
    max_step_tokens: int = 48,
    seed: int = 0,
) -> dict[str, float]:
    """The policy's step skill per depth against a uniformly random legal move.

    At depth d, each problem's state is the question plus the first d - 1 steps of one of its
    shortest solutions (drawn with a seeded generator, so the states are fixed by ``seed``);
    problems whose shortest solution is shorter than d have no state at depth d. The policy
    samples ``samples`` next steps from each state at ``temperature`` (the search's); its skill
    is the share of those steps that keep the target reachable (an illegal step does not).
    The random baseline is the share of the state's legal moves that keep it reachable: what
    a uniformly random legal move achieves, computed exactly from the oracle.

    Needs a world with an exact oracle (``reachable``, ``random_step_skill``,
    ``correct_trace``: Countdown); returns ``{}`` for any other world.

    Returns:
        ``eval/step_skill@d``, ``eval/step_random@d``, ``eval/step_skill_ratio@d`` (skill over
        random) and ``eval/step_states@d`` for each depth with at least one state.
    """
    import random

    from rest_mcts.prompts import first_line

    if not all(hasattr(world, a) for a in ("reachable", "random_step_skill", "correct_trace")):
        return {}
    rng = random.Random(f"step_skill|{seed}")
    states: list[tuple[Problem, tuple[str, ...], int]] = []
    for problem in problems:
        solution = world.correct_trace(problem, rng, shortest=True)
        for d in depths:
            if d <= len(solution):
                states.append((problem, tuple(solution[: d - 1]), d))
    if not states:
        return {}
    fmt = prompt_format(world)
    prompts = [policy_prompt(p.question.text, steps, fmt) for p, steps, _ in states]
    params = SamplingParams(n=samples, temperature=temperature, max_new_tokens=max_step_tokens,
                            stop=("\n",), seed=seed)
    with tqdm(total=len(prompts), desc="step skill", unit="state") as bar:
        outputs = _generate(backend, prompts, params, bar)
    skill: dict[int, list[float]] = {}
    rand: dict[int, list[float]] = {}
    for (problem, steps, d), out in zip(states, outputs):
        question = problem.question
        good = 0
        for completion in out.completions:
            step = first_line(completion.text)
            check = world.check_step(question, steps, step)
            good += bool(check.legal and world.reachable(question, (*steps, step)))
        skill.setdefault(d, []).append(good / max(1, len(out.completions)))
        rand.setdefault(d, []).append(world.random_step_skill(question, steps))
    metrics: dict[str, float] = {}
    for d in sorted(skill):
        s, r = sum(skill[d]) / len(skill[d]), sum(rand[d]) / len(rand[d])
        metrics[f"eval/step_skill@{d}"] = s
        metrics[f"eval/step_random@{d}"] = r
        metrics[f"eval/step_skill_ratio@{d}"] = s / r if r > 0 else float("nan")
        metrics[f"eval/step_states@{d}"] = float(len(skill[d]))
    return metrics

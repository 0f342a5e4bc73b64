"""The Countdown world: :class:`CountdownWorld` (the :class:`~rest_mcts.worlds.base.World`
protocol over the text formats, rules, solver and generator of this package).

Besides the protocol, :class:`CountdownWorld` offers a seeded generator with disjoint splits,
an exact solver, an exact distance-to-solution oracle and random/correct trace generators for
training a tiny policy.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from rest_mcts.worlds.base import Problem, Question, StepCheck
from rest_mcts.worlds.countdown.format import format_question, format_step, parse_question
from rest_mcts.worlds.countdown.generator import (
    POOLS,
    _require_int,
    count_instances,
    draw_instances,
)
from rest_mcts.worlds.countdown.rules import (
    _AFTER_FINISH,
    Move,
    _moves,
    _transition,
    _walk,
    apply_move,
    legal_moves,
)
from rest_mcts.worlds.countdown.solver import _solving_moves, fewest_steps, solutions, solve


class CountdownWorld:
    """The Countdown reasoning world (implements :class:`~rest_mcts.worlds.base.World`).

    The knobs only shape :meth:`generate`; parsing, checking and the oracle work for any
    well-formed question.

    Args:
        num_numbers: how many numbers a generated problem gives (>= 2).
        min_number: smallest number drawn (>= 1).
        max_number: largest number drawn.
        min_target: smallest target drawn (>= 1).
        max_target: largest target drawn.
        min_steps: the fewest steps needed to solve must be >= this (difficulty).
        max_steps: the fewest steps needed must be <= this (None: no bound).
        prompts: a :class:`~rest_mcts.prompting.PromptFormat` that renders the policy's
            prompts (a pretrained chat model: the question and steps inside its chat template,
            ``style="lines"``); None (the tiny models): the plain format
            (:func:`rest_mcts.prompts.policy_prompt`).

    Raises:
        ValueError: on an invalid knob, naming it.
    """

    name = "countdown"
    pools = POOLS

    def __init__(
        self,
        *,
        num_numbers: int = 3,
        min_number: int = 1,
        max_number: int = 10,
        min_target: int = 1,
        max_target: int = 100,
        min_steps: int = 1,
        max_steps: int | None = None,
        prompts: Any = None,
    ) -> None:
        self.num_numbers = _require_int("num_numbers", num_numbers, 2)
        self.min_number = _require_int("min_number", min_number, 1)
        self.max_number = _require_int("max_number", max_number, min_number)
        self.min_target = _require_int("min_target", min_target, 1)
        self.max_target = _require_int("max_target", max_target, min_target)
        self.min_steps = _require_int("min_steps", min_steps, 1)
        if min_steps > num_numbers - 1:
            raise ValueError(
                f"min_steps must be <= num_numbers - 1 = {num_numbers - 1}, got {min_steps}"
            )
        if max_steps is not None:
            _require_int("max_steps", max_steps, min_steps)
        self.max_steps = max_steps
        self.prompt_format = prompts

    def __repr__(self) -> str:
        return (
            f"CountdownWorld(num_numbers={self.num_numbers}, min_number={self.min_number}, "
            f"max_number={self.max_number}, min_target={self.min_target}, "
            f"max_target={self.max_target}, min_steps={self.min_steps}, "
            f"max_steps={self.max_steps})"
        )

    # --- questions and problems ----------------------------------------------------------

    @staticmethod
    def parse_question(question: Question | str) -> tuple[tuple[int, ...], int]:
        """``(numbers, target)`` of a question; see :func:`parse_question`."""
        return parse_question(question)

    @staticmethod
    def make_question(numbers: Sequence[int], target: int, id: str) -> Question:  # noqa: A002
        """A question in the canonical text format.

        Args:
            numbers: the given numbers (>= 2, all positive), in the order to show them.
            target: the positive target.
            id: the question id.

        Returns:
            The :class:`Question`.

        Raises:
            ValueError: if the numbers or target are not valid.
        """
        text = format_question(numbers, target)
        parse_question(text)  # validates
        return Question(id=id, text=text)

    def make_problem(self, numbers: Sequence[int], target: int, id: str) -> Problem:  # noqa: A002
        """A problem: the question, gold ``str(target)`` and one shortest solution.

        Args:
            numbers: the given numbers, in question order.
            target: the target.
            id: the problem id.

        Returns:
            The :class:`Problem`.

        Raises:
            ValueError: if the numbers or target are not valid, or the problem is unsolvable.
        """
        question = self.make_question(numbers, target, id)
        reference = solve(numbers, target)
        if reference is None:
            raise ValueError(f"countdown problem {question.text!r} has no solution")
        return Problem(question=question, gold=str(target), reference_steps=tuple(reference))

    # --- generator -------------------------------------------------------------------------

    def generate(self, n: int, seed: int, split: str = "train") -> list[Problem]:
        """``n`` distinct solvable problems of one split, deterministic in (knobs, seed, split).

        Numbers are drawn uniformly (with replacement) from the number range and the target
        uniformly from the target range; a draw is kept when its canonical instance (sorted
        numbers, target) belongs to ``split`` (see :func:`split_of`, so splits are disjoint
        by construction), is new in this call, and its fewest steps lie within
        ``[min_steps, max_steps]``. The output for ``n`` is a prefix of that for a larger
        ``n`` unless the sampler gives up (``10000 + 100 n`` draws in all, or 50000
        rejections in a row); then, for small spaces (<= 4 numbers, <= 1e6 instances), the
        remaining instances are enumerated and drawn in shuffled order, so a ValueError there
        means the pool is really too small.

        Args:
            n: how many problems.
            seed: the seed.
            split: one of :data:`SPLITS` (the question pools).

        Returns:
            Problems with ids ``countdown-<split>-<index:06d>``.

        Raises:
            ValueError: on a bad ``split`` or ``n``, or if not enough distinct problems exist.
        """
        keys = draw_instances(self, n, seed, split)
        return [self.make_problem(nums, t, f"countdown-{split}-{i:06d}")
                for i, (nums, t) in enumerate(keys)]

    def count_problems(self, split: str) -> int:
        """Exact number of distinct problems the generator can produce for ``split``.

        Enumerates every canonical instance, so only for small settings.

        Raises:
            ValueError: on a bad split, or a space too large to enumerate.
        """
        return count_instances(self, split)

    # --- solver --------------------------------------------------------------------------

    @staticmethod
    def solve(numbers: Sequence[int], target: int) -> list[str] | None:
        """A shortest solution as step lines, or None; see :func:`solve`."""
        return solve(numbers, target)

    @staticmethod
    def solutions(
        numbers: Sequence[int], target: int, max_count: int | None = None, *, shortest: bool = True
    ) -> list[list[str]]:
        """Distinct solution paths; see :func:`solutions`."""
        return solutions(numbers, target, max_count, shortest=shortest)

    @staticmethod
    def legal_moves(numbers: Sequence[int]) -> list[Move]:
        """Distinct legal moves; see :func:`legal_moves`."""
        return legal_moves(numbers)

    @staticmethod
    def format_step(k: int, a: int, op: str, b: int, result: int, left: Sequence[int]) -> str:
        """Canonical step line; see :func:`format_step`."""
        return format_step(k, a, op, b, result, left)

    # --- parsing and checking ----------------------------------------------------------------

    def check_step(self, question: Question | str, steps: Sequence[str], step: str) -> StepCheck:
        """Parse ``step`` as the next step after ``steps`` (never needs the gold answer).

        Args:
            question: the question (or its text).
            steps: the steps so far.
            step: the proposed next step.

        Returns:
            The step's :class:`StepCheck`; illegal with an error naming the earlier step when
            ``steps`` itself is illegal.
        """
        numbers, target = parse_question(question)
        prior = _walk(numbers, target, steps)
        if not prior.check.legal:
            return StepCheck(legal=False, error=f"earlier step illegal: {prior.check.error}")
        if prior.check.finished:
            return _AFTER_FINISH
        return _transition(prior.state, target, len(steps) + 1, step).check

    def check_path(self, question: Question | str, steps: Sequence[str]) -> StepCheck:
        """The check of the first illegal step, else of the last step.

        An empty path is legal and unfinished.
        """
        numbers, target = parse_question(question)
        return _walk(numbers, target, steps).check

    def state(self, question: Question | str, steps: Sequence[str]) -> tuple[int, ...]:
        """The numbers left after a legal path (in the order its last ``left`` lists them).

        Raises:
            ValueError: if the path is illegal.
        """
        numbers, target = parse_question(question)
        walk = _walk(numbers, target, steps)
        if not walk.check.legal:
            raise ValueError(f"illegal countdown path: {walk.check.error}")
        return walk.state

    # --- verifier ------------------------------------------------------------------------

    def is_correct(self, problem: Problem, steps: Sequence[str]) -> bool:
        """Does this legal, finished path end on the gold answer?"""
        answer = self.extract_answer(problem.question, steps)
        return answer is not None and answer == str(problem.gold).strip()

    def extract_answer(self, question: Question | str, steps: Sequence[str]) -> str | None:
        """The last result of a legal finished path as a string, else None."""
        check = self.check_path(question, steps)
        return check.answer if check.legal and check.finished else None

    # --- oracle --------------------------------------------------------------------------

    def distance(self, question: Question | str, steps: Sequence[str]) -> int | None:
        """Fewest further steps from this partial path to a correct finished path.

        Exact (memoised per multiset of remaining numbers). 0 when the path already ends on
        the target; None when the target can no longer be reached, or the path is illegal or
        finished off-target. For the empty path it is the problem's fewest steps (>= 1).
        """
        numbers, target = parse_question(question)
        walk = _walk(numbers, target, steps)
        if not walk.check.legal:
            return None
        if walk.check.finished:
            return 0 if walk.result == target else None
        return fewest_steps(walk.state, target)

    def reachable(self, question: Question | str, steps: Sequence[str]) -> bool:
        """Can this partial path still be completed to a correct one?"""
        return self.distance(question, steps) is not None

    # --- traces --------------------------------------------------------------------------

    def correct_trace(
        self, problem_or_question: Problem | Question | str, rng: random.Random,
        *, shortest: bool = False,
    ) -> list[str]:
        """A random correct solution.

        Each step is drawn uniformly among the moves after which the target is still
        reachable (with ``shortest``: among those on a shortest solution), so the traces
        vary in both moves and length, and any correct solution can come out.

        Args:
            problem_or_question: the problem (its question is used) or question.
            rng: the random generator to draw from.
            shortest: only shortest solutions.

        Returns:
            Step lines ending in ``"\\n"``.

        Raises:
            ValueError: if the problem is unsolvable.
        """
        question = (problem_or_question.question if isinstance(problem_or_question, Problem)
                    else problem_or_question)
        numbers, target = parse_question(question)
        need = fewest_steps(numbers, target)
        if need is None:
            raise ValueError(f"countdown question {numbers}->{target} has no solution")
        state, lines = numbers, []
        while True:
            move = rng.choice(_solving_moves(state, target, need if shortest else None))
            state = apply_move(state, move)
            lines.append(format_step(len(lines) + 1, *move, state))
            if move[3] == target:
                return lines
            need -= 1

    def random_step_skill(self, question: Question | str, steps: Sequence[str]) -> float:
        """Share of the legal moves after the legal path ``steps`` that keep the target
        reachable (exact): the step skill of a uniformly random legal move (0 when no move
        is legal)."""
        numbers, target = parse_question(question)
        state = _walk(numbers, target, steps).state
        moves = _moves(tuple(state))
        return len(_solving_moves(tuple(state), target, None)) / len(moves) if moves else 0.0

    def random_trace(
        self, question: Question | str, rng: random.Random, *, guided: float = 0.0
    ) -> list[str]:
        """A random legal finished path: each step a uniform choice among the legal moves;
        with ``guided`` > 0, while the target is still reachable, a step is drawn with
        probability ``guided`` among the moves that keep it reachable instead.

        Args:
            question: the question (or its text).
            rng: the random generator to draw from.
            guided: the chance of a reachability-keeping step (0: none; no draw is made, so
                the traces equal those of earlier versions).

        Returns:
            Step lines ending in ``"\\n"`` (correct only by luck, or by guidance).
        """
        state, target = parse_question(question)
        lines: list[str] = []
        while True:
            move = None
            if guided > 0 and rng.random() < guided:
                good = _solving_moves(state, target, None)
                move = rng.choice(good) if good else None
            if move is None:
                move = rng.choice(_moves(state))
            state = apply_move(state, move)
            lines.append(format_step(len(lines) + 1, *move, state))
            if move[3] == target or len(state) == 1:
                return lines

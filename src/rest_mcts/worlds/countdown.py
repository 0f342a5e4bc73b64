"""The Countdown world: reach a target from a few numbers with + - * /.

Rules (the TV game's): each given number is used AT MOST once (not all need be used) and
every intermediate result is a positive integer, so ``a - b`` needs ``a > b`` and ``a / b``
needs ``b`` to divide ``a``.

Text formats (exact; the generator always writes the canonical form):

* question: ``Make 23 from 6 4 5 1`` (target first, then the numbers in the given order);
* step: ``Step 1: 6 * 4 = 24 (left: 24 5 1)`` -- ``left`` lists the numbers available
  after the step, the result first, then the unused numbers in their current order. The
  parser accepts ``left`` in any order (compared as multisets), tolerates extra spaces
  between tokens, and strips whitespace (a trailing newline) at both ends.

A path is *finished* when its last result equals the target (correct), or when only one
number is left (wrong unless that number is the target). A step after a finished path is
illegal. Reaching the target always needs at least one step, even when the target is among
the given numbers.

Besides the :class:`~rest_mcts.worlds.base.World` protocol, :class:`CountdownWorld` offers a
seeded generator with disjoint splits, an exact solver, an exact distance-to-solution
oracle and random/correct trace generators for training a tiny policy.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import logging
import math
import random
import re
from typing import Iterator, NamedTuple, Sequence

from rest_mcts.worlds.base import Problem, Question, StepCheck

logger = logging.getLogger(__name__)

OPS: tuple[str, ...] = ("+", "-", "*", "/")
SPLITS: tuple[str, ...] = ("train", "val", "test", "bootstrap", "d_v0")
"""The disjoint question pools (:func:`split_of`): ``train`` (the self-training searches),
``val``, ``test``, ``bootstrap`` (policy_0's traces) and ``d_v0`` (PRM_0's trees)."""
POOLS: dict[str, str] = {"bootstrap": "bootstrap", "d_v0": "d_v0", "search": "train",
                         "val": "val", "eval": "test"}
"""Which split each use of questions draws from (``Context.pool``): no two uses of one run
share a question (the val split serves only validation)."""

Move = tuple[int, str, int, int]
"""A move ``(a, op, b, result)``, written ``a op b = result``."""

_QUESTION_RE = re.compile(r"Make\s+(\d+)\s+from\s+(\d+(?:\s+\d+)*)")
_NUM = r"([-+]?[\d.]+)"
_STEP_RE = re.compile(
    rf"Step\s*(\d+)\s*:\s*{_NUM}\s*([^\s\d.]+)\s*{_NUM}\s*=\s*{_NUM}\s*\(\s*left\s*:\s*([^)]*)\)"
)
_ENUM_MAX_INSTANCES = 1_000_000  # the generator's exhaustive fallback enumerates at most this
_ENUM_MAX_NUMBERS = 4
_MAX_REJECT_STREAK = 50_000  # the sampler gives up after this many rejections in a row


# ----------------------------------------------------------------------------------------
# Text formats
# ----------------------------------------------------------------------------------------


def format_question(numbers: Sequence[int], target: int) -> str:
    """Question text, e.g. ``Make 23 from 6 4 5 1``.

    Args:
        numbers: the given numbers, in the order to show them.
        target: the number to make.

    Returns:
        The question text (no trailing newline).
    """
    return f"Make {target} from " + " ".join(str(x) for x in numbers)


def format_step(k: int, a: int, op: str, b: int, result: int, left: Sequence[int]) -> str:
    """Canonical step line, e.g. ``Step 1: 6 * 4 = 24 (left: 24 5 1)\\n``.

    Args:
        k: the step number (1-based).
        a: left operand.
        op: one of ``+ - * /``.
        b: right operand.
        result: ``a op b``.
        left: the numbers available after the step (result first, by convention).

    Returns:
        The line, ending in ``"\\n"``.
    """
    return f"Step {k}: {a} {op} {b} = {result} (left: {' '.join(str(x) for x in left)})\n"


def parse_question(question: Question | str) -> tuple[tuple[int, ...], int]:
    """Parse a question into ``(numbers, target)`` (cached).

    Args:
        question: a :class:`Question` or its text.

    Returns:
        The numbers in the given order and the target.

    Raises:
        ValueError: if the text is not ``Make <target> from <n1> <n2> ...`` with at least two
            positive numbers and a positive target.
    """
    text = question.text if isinstance(question, Question) else question
    return _parse_question_text(text)


@functools.lru_cache(maxsize=1 << 16)
def _parse_question_text(text: str) -> tuple[tuple[int, ...], int]:
    m = _QUESTION_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(
            f"malformed countdown question {text!r} (expected 'Make <target> from <n1> <n2> ...')"
        )
    target = int(m.group(1))
    numbers = tuple(int(t) for t in m.group(2).split())
    if len(numbers) < 2:
        raise ValueError(f"countdown question {text!r} needs at least two numbers")
    if target < 1 or min(numbers) < 1:
        raise ValueError(f"countdown question {text!r}: target and numbers must be positive")
    return numbers, target


# ----------------------------------------------------------------------------------------
# Moves, the exact solver and the oracle table
# ----------------------------------------------------------------------------------------


def legal_moves(numbers: Sequence[int]) -> list[Move]:
    """All distinct legal moves on the available numbers.

    Commutative moves are listed once with the larger operand first (``6 * 4``, never
    ``4 * 6``; the parser accepts both), and equal numbers give no repeated moves.

    Args:
        numbers: the numbers available (any order; repeats allowed).

    Returns:
        Moves ``(a, op, b, result)`` in a fixed order: by operand pair in the order the
        numbers appear, then ``+ - * /``.
    """
    return list(_moves(tuple(numbers)))


@functools.lru_cache(maxsize=1 << 16)
def _moves(state: tuple[int, ...]) -> tuple[Move, ...]:
    moves: list[Move] = []
    seen: set[tuple[int, int]] = set()
    for i, x in enumerate(state):
        for y in state[i + 1 :]:
            a, b = (x, y) if x >= y else (y, x)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            moves.append((a, "+", b, a + b))
            if a > b:
                moves.append((a, "-", b, a - b))
            moves.append((a, "*", b, a * b))
            if a % b == 0:
                moves.append((a, "/", b, a // b))
    return tuple(moves)


def apply_move(numbers: Sequence[int], move: Move) -> tuple[int, ...]:
    """The numbers left after ``move``, in canonical order (result first, then the rest).

    Args:
        numbers: the numbers available.
        move: a legal move on them.

    Returns:
        The canonical ``left`` list.

    Raises:
        ValueError: if an operand is not available.
    """
    rest = _remove_operands(tuple(numbers), move[0], move[2])
    if rest is None:
        raise ValueError(f"move {move} uses a number not in {tuple(numbers)}")
    return (move[3],) + rest


def _remove_operands(state: tuple[int, ...], a: int, b: int) -> tuple[int, ...] | None:
    """``state`` without one ``a`` and one ``b`` (first occurrences), or None if missing."""
    rest = list(state)
    try:
        rest.remove(a)
        rest.remove(b)
    except ValueError:
        return None
    return tuple(rest)


@functools.lru_cache(maxsize=1 << 16)
def _reach(state: tuple[int, ...]) -> dict[int, int]:
    """Map value -> fewest steps whose last result is that value, from a SORTED state.

    This one table per multiset answers the distance to every target at once. The returned
    dict is shared by the cache: never mutate it.
    """
    best: dict[int, int] = {}
    deeper = len(state) > 2
    for a, _op, b, r in _moves(state):
        best[r] = 1
        if not deeper:
            continue
        rest = list(state)
        rest.remove(a)
        rest.remove(b)
        bisect.insort(rest, r)
        for v, d in _reach(tuple(rest)).items():
            if best.get(v, d + 2) > d + 1:
                best[v] = d + 1
    return best


def fewest_steps(numbers: Sequence[int], target: int) -> int | None:
    """Fewest steps from ``numbers`` to a step whose result is ``target`` (None: unreachable).

    Args:
        numbers: the numbers available (at least one step is always needed).
        target: the number to make.

    Returns:
        The minimal number of steps, or None when the target cannot be made.
    """
    if len(numbers) < 2:
        return None
    return _reach(tuple(sorted(numbers))).get(target)


def solve(numbers: Sequence[int], target: int) -> list[str] | None:
    """A shortest solution as canonical step lines, or None when there is none.

    Deterministic: the first shortest solution in :func:`legal_moves` order (it equals
    ``solutions(numbers, target, 1)[0]``).

    Args:
        numbers: the given numbers, in question order.
        target: the number to make.

    Returns:
        Step lines ending in ``"\\n"``, or None if the target is unreachable.
    """
    found = solutions(numbers, target, max_count=1)
    return found[0] if found else None


def solutions(
    numbers: Sequence[int], target: int, max_count: int | None = None, *, shortest: bool = True
) -> list[list[str]]:
    """Distinct correct solution paths, in :func:`legal_moves` order.

    Paths are distinct as canonical texts: commutative operands are written larger first and
    equal numbers are not told apart, but the same steps in another order are a different
    path.

    Args:
        numbers: the given numbers, in question order.
        target: the number to make.
        max_count: stop after this many (None: all).
        shortest: only the shortest solutions (True) or every correct finished path (False).

    Returns:
        A list of solutions, each a list of step lines ending in ``"\\n"``; empty if none.
    """
    need = fewest_steps(numbers, target)
    if need is None:
        return []
    found = _iter_solutions(tuple(numbers), target, 1, need if shortest else None)
    return list(itertools.islice(found, max_count))


def _iter_solutions(
    state: tuple[int, ...], target: int, k: int, need: int | None
) -> Iterator[list[str]]:
    """Solutions from ``state`` as step lines from step ``k``; ``need``: exact length or None."""
    for move in _moves(state):
        new = apply_move(state, move)
        line = format_step(k, move[0], move[1], move[2], move[3], new)
        if move[3] == target:
            if need is None or need == 1:
                yield [line]
            continue
        further = fewest_steps(new, target)
        if further is None or (need is not None and further != need - 1):
            continue
        for tail in _iter_solutions(new, target, k + 1, None if need is None else need - 1):
            yield [line] + tail


def split_of(numbers: Sequence[int], target: int) -> str:
    """The split (question pool) a canonical instance belongs to, by a stable hash.

    The first 8 bytes of sha256(``"<sorted numbers>-><target>"``) as an integer h: ``test``
    when h % 10 == 0 (10%), ``val`` when h % 10 == 1 (10%); the rest by (h // 10) % 8:
    ``d_v0`` for 0 (10% of all), ``bootstrap`` for 1-3 (30%), ``train`` for 4-7 (40%). An
    instance lies in exactly one pool, whatever the seed or the other knobs, so the pools
    of a run are disjoint by construction.

    Args:
        numbers: the numbers (order does not matter).
        target: the target.

    Returns:
        One of :data:`SPLITS`.
    """
    key = " ".join(str(x) for x in sorted(numbers)) + f"->{target}"
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    if h % 10 in (0, 1):
        return "test" if h % 10 == 0 else "val"
    rest = (h // 10) % 8
    return "d_v0" if rest == 0 else "bootstrap" if rest <= 3 else "train"


# ----------------------------------------------------------------------------------------
# Step parsing
# ----------------------------------------------------------------------------------------


class _Transition(NamedTuple):
    """One parsed step: its verdict and the numbers left after it (``()`` when illegal)."""

    check: StepCheck
    state: tuple[int, ...]
    result: int


class _Walk(NamedTuple):
    """A parsed path: the last check, the numbers left, and the last result (0: none)."""

    check: StepCheck
    state: tuple[int, ...]
    result: int


_EMPTY_PATH = StepCheck(legal=True, finished=False)
_AFTER_FINISH = StepCheck(legal=False, error="step after finished path")


def _illegal(error: str) -> _Transition:
    return _Transition(StepCheck(legal=False, error=error), (), 0)


def _as_number(token: str) -> int | None:
    """A positive integer written plainly (digits only), else None."""
    return int(token) if token.isdigit() and int(token) > 0 else None


def _evaluate(a: int, op: str, b: int) -> tuple[int, str]:
    """``(value, "")`` for a legal ``a op b``, else ``(0, why)``."""
    if op == "+":
        return a + b, ""
    if op == "*":
        return a * b, ""
    if op == "-":
        if a <= b:
            return 0, f"non-positive result ({a} - {b} = {a - b})"
        return a - b, ""
    if a % b:
        return 0, f"non-integer result ({a} / {b} is not exact)"
    return a // b, ""


@functools.lru_cache(maxsize=1 << 18)
def _transition(state: tuple[int, ...], target: int, k: int, line: str) -> _Transition:
    """Parse ``line`` as step ``k`` from the numbers ``state`` (cached: search repeats lines)."""
    m = _STEP_RE.fullmatch(line.strip())
    if m is None:
        return _illegal("malformed step (expected 'Step k: a op b = c (left: ...)')")
    index, a_tok, op, b_tok, r_tok, left_tok = m.groups()
    if int(index) != k:
        return _illegal(f"wrong step number {int(index)} (expected {k})")
    if op not in OPS:
        return _illegal(f"unknown operator {op!r}")
    a, b = _as_number(a_tok), _as_number(b_tok)
    if a is None or b is None:
        return _illegal(f"bad number {a_tok if a is None else b_tok!r}")
    rest = _remove_operands(state, a, b)
    if rest is None:
        return _illegal(f"operand not available ({a} {op} {b} from {' '.join(map(str, state))})")
    value, why = _evaluate(a, op, b)
    if why:
        return _illegal(why)
    if _as_number(r_tok) != value:
        return _illegal(f"wrong arithmetic ({a} {op} {b} = {value}, not {r_tok})")
    left = tuple(_as_number(t) for t in left_tok.replace(",", " ").split())
    if None in left or sorted(left) != sorted((value,) + rest):
        return _illegal(f"wrong left list (expected {' '.join(map(str, (value,) + rest))})")
    finished = value == target or len(left) == 1
    check = StepCheck(legal=True, finished=finished, answer=str(value) if finished else None)
    return _Transition(check, left, value)  # type: ignore[arg-type]  # no None in left


def _walk(numbers: tuple[int, ...], target: int, steps: Sequence[str]) -> _Walk:
    """Parse a path; stops at the first illegal step (its check is returned)."""
    check, state, result = _EMPTY_PATH, numbers, 0
    for k, line in enumerate(steps, start=1):
        if check.finished:
            return _Walk(_AFTER_FINISH, (), 0)
        check, state, result = _transition(state, target, k, line)
        if not check.legal:
            return _Walk(check, (), 0)
    return _Walk(check, state, result)


# ----------------------------------------------------------------------------------------
# The world
# ----------------------------------------------------------------------------------------


def _require_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


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
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        _require_int("n", n, 0)
        rng = random.Random(f"countdown|{seed}|{split}")
        keys: list[tuple[tuple[int, ...], int]] = []
        seen: set[tuple[tuple[int, ...], int]] = set()
        max_attempts = 10_000 + 100 * n
        attempts = streak = 0
        while len(keys) < n and attempts < max_attempts and streak < _MAX_REJECT_STREAK:
            attempts += 1
            streak += 1
            numbers = tuple(rng.randint(self.min_number, self.max_number)
                            for _ in range(self.num_numbers))
            target = rng.randint(self.min_target, self.max_target)
            canon = (tuple(sorted(numbers)), target)
            if canon in seen or not self._accept(canon[0], target, split):
                continue
            seen.add(canon)
            keys.append((numbers, target))
            streak = 0
        if len(keys) < n:
            keys += self._fill_exhaustively(n - len(keys), split, seen, rng, attempts)
        logger.info("countdown: generated %d %s problems in %d draws (%r)",
                    n, split, attempts, self)
        return [self.make_problem(nums, t, f"countdown-{split}-{i:06d}")
                for i, (nums, t) in enumerate(keys)]

    def count_problems(self, split: str) -> int:
        """Exact number of distinct problems the generator can produce for ``split``.

        Enumerates every canonical instance, so only for small settings.

        Raises:
            ValueError: on a bad split, or a space too large to enumerate.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not self._enumerable():
            raise ValueError(f"{self!r}: instance space too large to enumerate")
        return sum(1 for _ in self._enumerate(split))

    def _accept(self, sorted_numbers: tuple[int, ...], target: int, split: str) -> bool:
        """Does this canonical instance belong to ``split`` and meet the difficulty knobs?"""
        if split_of(sorted_numbers, target) != split:
            return False
        steps = _reach(sorted_numbers).get(target)
        if steps is None or steps < self.min_steps:
            return False
        return self.max_steps is None or steps <= self.max_steps

    def _space_size(self) -> int:
        width = self.max_number - self.min_number + 1
        multisets = math.comb(width + self.num_numbers - 1, self.num_numbers)
        return multisets * (self.max_target - self.min_target + 1)

    def _enumerable(self) -> bool:
        return (self.num_numbers <= _ENUM_MAX_NUMBERS
                and self._space_size() <= _ENUM_MAX_INSTANCES)

    def _enumerate(self, split: str) -> Iterator[tuple[tuple[int, ...], int]]:
        """Every accepted canonical instance of ``split``, in sorted order."""
        values = range(self.min_number, self.max_number + 1)
        for nums in itertools.combinations_with_replacement(values, self.num_numbers):
            for target in range(self.min_target, self.max_target + 1):
                if self._accept(nums, target, split):
                    yield nums, target

    def _fill_exhaustively(
        self,
        missing: int,
        split: str,
        seen: set[tuple[tuple[int, ...], int]],
        rng: random.Random,
        attempts: int,
    ) -> list[tuple[tuple[int, ...], int]]:
        """``missing`` more instances drawn from the enumerated pool, or raise ValueError."""
        if not self._enumerable():
            raise ValueError(
                f"{self!r}: found only {len(seen)} distinct {split} problems in {attempts} "
                f"draws, {missing} short; widen the number/target ranges or relax min_steps"
            )
        pool = [key for key in self._enumerate(split) if key not in seen]
        if len(pool) < missing:
            raise ValueError(
                f"{self!r}: only {len(seen) + len(pool)} distinct {split} problems exist, "
                f"{len(seen) + missing} requested"
            )
        logger.debug("countdown: sampler stalled after %d draws; filling %d from a pool of %d",
                     attempts, missing, len(pool))
        rng.shuffle(pool)
        filled = []
        for nums, target in pool[:missing]:
            shown = list(nums)
            rng.shuffle(shown)
            filled.append((tuple(shown), target))
        return filled

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


def _solving_moves(state: tuple[int, ...], target: int, need: int | None) -> list[Move]:
    """Moves that keep the target reachable (in exactly ``need`` steps if given)."""
    good = []
    for move in _moves(state):
        if move[3] == target:
            if need is None or need == 1:
                good.append(move)
            continue
        further = fewest_steps(apply_move(state, move), target)
        if further is not None and (need is None or further == need - 1):
            good.append(move)
    return good

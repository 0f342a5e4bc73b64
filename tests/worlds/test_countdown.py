"""Tests of the Countdown world: generator, solver, step parser, verifier, oracle, traces."""

from __future__ import annotations

import collections
import functools
import itertools
import random

import pytest

from rest_mcts.worlds import (
    CountdownWorld,
    Problem,
    Question,
    StepCheck,
    World,
    apply_move,
    format_step,
    legal_moves,
    parse_question,
    solutions,
    solve,
    SPLITS,
    split_of,
)

WORLD = CountdownWorld()
Q = Question(id="q", text="Make 23 from 6 4 5 1")
S1 = "Step 1: 6 * 4 = 24 (left: 24 5 1)\n"
S2 = "Step 2: 24 - 1 = 23 (left: 23 5)\n"


@functools.lru_cache(maxsize=None)
def brute_fewest(numbers: tuple[int, ...], target: int) -> int | None:
    """Independent brute force: fewest steps to produce ``target`` (no shared code)."""
    best = None
    for i, j in itertools.permutations(range(len(numbers)), 2):
        a, b = numbers[i], numbers[j]
        rest = tuple(x for k, x in enumerate(numbers) if k not in (i, j))
        values = [a + b, a * b]
        if a > b:
            values.append(a - b)
        if a % b == 0:
            values.append(a // b)
        for v in values:
            if v == target:
                return 1
            if rest:
                d = brute_fewest(tuple(sorted(rest + (v,))), target)
                if d is not None and (best is None or d + 1 < best):
                    best = d + 1
    return best


def check(steps: list[str], step: str, question: Question = Q) -> StepCheck:
    return WORLD.check_step(question, steps, step)


# --- questions ---------------------------------------------------------------------------


def test_world_satisfies_protocol_and_formats() -> None:
    world: World = WORLD
    assert world.name == "countdown"
    assert WORLD.make_question((6, 4, 5, 1), 23, "q") == Q
    assert format_step(1, 6, "*", 4, 24, (24, 5, 1)) == S1
    assert parse_question(Q) == ((6, 4, 5, 1), 23)
    assert parse_question("  Make 7 from 2 9\n") == ((2, 9), 7)


@pytest.mark.parametrize(
    "text",
    ["Make 23 with 6 4 5", "Make 23 from", "Make 23 from 6", "Make x from 1 2", "23 from 1 2",
     "Make 0 from 1 2", "Make 5 from 0 2", "Make 5 from 1 -2", "Make 5 from 1 2 and 3"],
)
def test_parse_question_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="countdown question"):
        parse_question(text)


def test_make_problem_has_gold_and_optimal_reference() -> None:
    problem = WORLD.make_problem((6, 4, 5, 1), 23, "p")
    assert problem.gold == "23"
    assert problem.reference_steps == (S1, S2)
    assert WORLD.is_correct(problem, list(problem.reference_steps))
    with pytest.raises(ValueError, match="no solution"):
        WORLD.make_problem((1, 1), 5, "bad")


# --- generator ---------------------------------------------------------------------------


def test_generate_is_deterministic_and_prefix_stable() -> None:
    a = WORLD.generate(60, seed=3)
    assert a == WORLD.generate(60, seed=3)
    assert a[:20] == WORLD.generate(20, seed=3)
    assert a != WORLD.generate(60, seed=4)
    assert [p.id for p in a[:2]] == ["countdown-train-000000", "countdown-train-000001"]
    assert WORLD.generate(5, seed=0, split="test")[4].id == "countdown-test-000004"
    assert WORLD.generate(0, seed=0) == []


def test_generated_problems_are_solvable_distinct_and_within_knobs() -> None:
    world = CountdownWorld(num_numbers=3, min_number=2, max_number=9, min_target=10,
                           max_target=60)
    problems = world.generate(200, seed=1, split="train")
    canon = set()
    for p in problems:
        numbers, target = parse_question(p.question)
        assert len(numbers) == 3 and all(2 <= x <= 9 for x in numbers)
        assert 10 <= target <= 60 and p.gold == str(target)
        assert split_of(numbers, target) == "train"
        assert world.is_correct(p, list(p.reference_steps))
        assert world.distance(p.question, []) == len(p.reference_steps) >= 1
        canon.add((tuple(sorted(numbers)), target))
    assert len(canon) == 200


def test_splits_are_disjoint() -> None:
    world = CountdownWorld(num_numbers=4)
    keys = {}
    for split in SPLITS:
        problems = world.generate(300, seed=0, split=split)
        keys[split] = {(tuple(sorted(parse_question(p.question)[0])), int(p.gold))
                       for p in problems}
        assert len(keys[split]) == 300
    for a, b in itertools.combinations(SPLITS, 2):
        assert not keys[a] & keys[b], (a, b)


def test_split_shares_follow_the_hash_buckets() -> None:
    """Every instance lies in one pool; the pools hold about 10/10/10/30/40% of them."""
    counts = collections.Counter(
        split_of(nums, t) for nums in itertools.combinations_with_replacement(range(1, 11), 3)
        for t in range(1, 101))
    total = sum(counts.values())
    expected = {"test": 0.1, "val": 0.1, "d_v0": 0.1, "bootstrap": 0.3, "train": 0.4}
    assert set(counts) == set(SPLITS)
    for split, share in expected.items():
        assert abs(counts[split] / total - share) < 0.02, (split, counts[split] / total)


def test_guided_random_traces_keep_the_target_reachable_more_often() -> None:
    world = CountdownWorld(num_numbers=4, max_target=200, min_steps=3)
    problems = world.generate(150, seed=0, split="bootstrap")

    def first_step_reachable(guided: float) -> float:
        rng = random.Random(0)
        hits = 0
        for p in problems:
            trace = world.random_trace(p.question, rng, guided=guided)
            assert world.check_path(p.question, trace).legal
            hits += world.reachable(p.question, trace[:1])
        return hits / len(problems)

    none, half, full = (first_step_reachable(g) for g in (0.0, 0.5, 1.0))
    assert full == 1.0
    assert none < 0.3 < half < 0.8
    rng = random.Random(0)
    assert all(world.is_correct(p, world.random_trace(p.question, rng, guided=1.0))
               for p in problems)


def test_four_numbers_and_min_steps() -> None:
    world = CountdownWorld(num_numbers=4, min_steps=3)
    for p in world.generate(100, seed=7):
        numbers, target = parse_question(p.question)
        assert len(numbers) == 4
        assert len(p.reference_steps) == 3
        assert world.distance(p.question, []) == 3
        assert brute_fewest(tuple(sorted(numbers)), target) == 3
    easy = CountdownWorld(num_numbers=4, max_steps=1)
    assert all(len(p.reference_steps) == 1 for p in easy.generate(50, seed=7))


def test_generate_raises_when_too_few_problems_exist() -> None:
    world = CountdownWorld(num_numbers=2, max_number=4, max_target=20)
    available = world.count_problems("train")
    assert 0 < available < 60
    got = world.generate(available, seed=0)  # exhausts the pool exactly
    assert len({(tuple(sorted(parse_question(p.question)[0])), p.gold) for p in got}) == available
    with pytest.raises(ValueError, match="distinct train problems exist"):
        world.generate(available + 1, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"num_numbers": 1}, "num_numbers"), ({"min_number": 0}, "min_number"),
     ({"min_number": 5, "max_number": 4}, "max_number"), ({"min_target": 0}, "min_target"),
     ({"min_target": 9, "max_target": 8}, "max_target"), ({"min_steps": 0}, "min_steps"),
     ({"min_steps": 3}, "min_steps"), ({"min_steps": 2, "max_steps": 1}, "max_steps"),
     ({"num_numbers": 2.5}, "num_numbers")],
)
def test_knob_validation_names_the_argument(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CountdownWorld(**kwargs)


def test_generate_rejects_bad_split_and_n() -> None:
    with pytest.raises(ValueError, match="split"):
        WORLD.generate(3, seed=0, split="dev")
    with pytest.raises(ValueError, match="n must be"):
        WORLD.generate(-1, seed=0)


# --- solver ------------------------------------------------------------------------------


def test_solver_known_cases() -> None:
    assert solve((6, 4, 5, 1), 23) == [S1, S2]
    assert solve((2, 3), 6) == ["Step 1: 3 * 2 = 6 (left: 6)\n"]
    assert solve((3, 3, 8, 8), 24) == ["Step 1: 8 * 3 = 24 (left: 24 3 8)\n"]  # not all used
    assert solve((1, 5, 5, 5), 24) == ["Step 1: 5 * 5 = 25 (left: 25 1 5)\n",
                                       "Step 2: 25 - 1 = 24 (left: 24 5)\n"]
    assert solve((2, 2, 5), 9) == ["Step 1: 2 + 2 = 4 (left: 4 5)\n",
                                   "Step 2: 5 + 4 = 9 (left: 9)\n"]


def test_solver_unsolvable_returns_none() -> None:
    assert solve((1, 1), 5) is None
    assert solve((5, 3), 5) is None  # the target is given but no step produces it
    assert solve((2, 3, 7), 100) is None
    assert solutions((1, 1, 1), 10) == []


def test_solutions_shortest_and_all() -> None:
    assert solutions((1, 2, 3), 6) == [["Step 1: 3 * 2 = 6 (left: 6 1)\n"]]
    every = solutions((1, 2, 3), 6, shortest=False)
    assert len(every) == 8
    assert ["Step 1: 2 + 1 = 3 (left: 3 3)\n", "Step 2: 3 + 3 = 6 (left: 6)\n"] in every
    assert solutions((1, 2, 3), 6, max_count=3, shortest=False) == every[:3]
    question = WORLD.make_question((1, 2, 3), 6, "q")
    problem = WORLD.make_problem((1, 2, 3), 6, "q")
    assert all(WORLD.is_correct(problem, s) for s in every)
    assert all(WORLD.distance(question, s) == 0 for s in every)


def test_solver_agrees_with_brute_force() -> None:
    rng = random.Random(0)
    for _ in range(300):
        numbers = tuple(rng.randint(1, 10) for _ in range(rng.choice((2, 3, 4))))
        target = rng.randint(1, 60)
        found = solve(numbers, target)
        expected = brute_fewest(tuple(sorted(numbers)), target)
        assert (None if found is None else len(found)) == expected
        if found is not None:
            assert WORLD.is_correct(WORLD.make_problem(numbers, target, "x"), found)


def test_legal_moves_are_distinct_and_multiset_aware() -> None:
    assert legal_moves((5, 5, 2)) == [(5, "+", 5, 10), (5, "*", 5, 25), (5, "/", 5, 1),
                                      (5, "+", 2, 7), (5, "-", 2, 3), (5, "*", 2, 10)]
    assert legal_moves((4,)) == []
    assert apply_move((5, 3, 5, 2), (5, "+", 2, 7)) == (7, 3, 5)


# --- step parser -------------------------------------------------------------------------


def test_legal_steps_and_finishing() -> None:
    assert check([], S1) == StepCheck(legal=True, finished=False)
    assert check([S1], S2) == StepCheck(legal=True, finished=True, answer="23")
    last = check([S1], "Step 2: 24 + 5 = 29 (left: 29 1)")
    assert last == StepCheck(legal=True, finished=False)
    wrong_end = check([S1, "Step 2: 24 + 5 = 29 (left: 29 1)"], "Step 3: 29 - 1 = 28 (left: 28)")
    assert wrong_end == StepCheck(legal=True, finished=True, answer="28")


@pytest.mark.parametrize(
    ("step", "error"),
    [("6 * 4 = 24 (left: 24 5 1)", "malformed"),
     ("Step 1: 6 * 4 = 24", "malformed"),
     ("Step 1: 6 * 4 = 24 (left: 24 5 1) and more", "malformed"),
     ("Step one: 6 * 4 = 24 (left: 24 5 1)", "malformed"),
     ("Step 1: six * 4 = 24 (left: 24 5 1)", "malformed"),
     ("", "malformed"),
     ("Step 2: 6 * 4 = 24 (left: 24 5 1)", "wrong step number 2 (expected 1)"),
     ("Step 1: 6 x 4 = 24 (left: 24 5 1)", "unknown operator 'x'"),
     ("Step 1: 6 ^ 4 = 1296 (left: 1296 5 1)", "unknown operator '^'"),
     ("Step 1: 6.5 * 4 = 26 (left: 26 5 1)", "bad number '6.5'"),
     ("Step 1: 6 * -4 = -24 (left: -24 5 1)", "bad number '-4'"),
     ("Step 1: 6 * 7 = 42 (left: 42 4 5 1)", "operand not available"),
     ("Step 1: 6 + 6 = 12 (left: 12 4 5 1)", "operand not available"),
     ("Step 1: 6 * 4 = 25 (left: 25 5 1)", "wrong arithmetic (6 * 4 = 24, not 25)"),
     ("Step 1: 6 * 4 = 24.0 (left: 24 5 1)", "wrong arithmetic"),
     ("Step 1: 4 - 6 = -2 (left: -2 5 1)", "non-positive result"),
     ("Step 1: 4 - 6 = 2 (left: 2 5 1)", "non-positive result"),
     ("Step 1: 5 - 5 = 0 (left: 0 6 4 1)", "operand not available"),
     ("Step 1: 6 / 4 = 1.5 (left: 1.5 5 1)", "non-integer result"),
     ("Step 1: 6 / 4 = 1 (left: 1 5 1)", "non-integer result"),
     ("Step 1: 6 * 4 = 24 (left: 24 5)", "wrong left list (expected 24 5 1)"),
     ("Step 1: 6 * 4 = 24 (left: 24 5 1 4)", "wrong left list"),
     ("Step 1: 6 * 4 = 24 (left: 24 5 2)", "wrong left list"),
     ("Step 1: 6 * 4 = 24 (left: 24 5 x)", "wrong left list"),
     ("Step 1: 6 * 4 = 24 (left: )", "wrong left list")],
)
def test_illegal_steps(step: str, error: str) -> None:
    result = check([], step)
    assert not result.legal and not result.finished and result.answer is None
    assert error in result.error


def test_multiset_operands() -> None:
    q = Question(id="m", text="Make 11 from 5 5 1")
    assert check([], "Step 1: 5 + 5 = 10 (left: 10 1)", q).legal
    assert check([], "Step 1: 5 / 5 = 1 (left: 1 1)", q).legal
    assert "non-positive result (5 - 5 = 0)" in check([], "Step 1: 5 - 5 = 0 (left: 0 1)", q).error
    step = "Step 1: 5 + 5 = 10 (left: 10 1)\n"
    assert check([step], "Step 2: 10 + 1 = 11 (left: 11)", q).finished
    assert "operand not available" in check([step], "Step 2: 10 + 5 = 15 (left: 15 1)", q).error
    single = Question(id="s", text="Make 11 from 5 6 1")
    assert "operand not available" in check([], "Step 1: 5 + 5 = 10 (left: 10 6 1)", single).error


def test_step_after_finished_path_is_illegal() -> None:
    after = check([S1, S2], "Step 3: 23 + 5 = 28 (left: 28)")
    assert after == StepCheck(legal=False, error="step after finished path")
    two = Question(id="t", text="Make 50 from 3 4")
    only = "Step 1: 4 + 3 = 7 (left: 7)\n"  # one number left: finished, wrong
    assert check([], only, two) == StepCheck(legal=True, finished=True, answer="7")
    assert check([only], "Step 2: 7 * 7 = 49 (left: 49)", two).error == "step after finished path"
    assert WORLD.check_path(two, [only, "Step 2: 7 * 7 = 49 (left: 49)"]).error == (
        "step after finished path")


def test_whitespace_newlines_and_left_order_tolerated() -> None:
    assert check([], "  Step 1: 6 * 4 = 24 (left: 24 5 1)  \n").legal
    assert check([], "Step 1:6*4=24 (left:24 5 1)").legal
    assert check([], "Step 1: 4 * 6 = 24 (left: 24 5 1)").legal  # commutative order
    assert check([], "Step 1: 6 * 4 = 24 (left: 1 5 24)").legal
    reordered = "Step 1: 6 * 4 = 24 (left: 5 1 24)"
    assert check([reordered], S2) == StepCheck(legal=True, finished=True, answer="23")
    assert WORLD.state(Q, [reordered]) == (5, 1, 24)
    assert check([S1.rstrip("\n")], S2.rstrip("\n")).finished


def test_illegal_prefix_makes_next_step_illegal() -> None:
    result = check(["Step 1: 6 * 4 = 25 (left: 25 5 1)"], S2)
    assert not result.legal and result.error.startswith("earlier step illegal: wrong arithmetic")


def test_check_path_and_state() -> None:
    assert WORLD.check_path(Q, []) == StepCheck(legal=True, finished=False)
    assert WORLD.check_path(Q, [S1, S2]) == StepCheck(legal=True, finished=True, answer="23")
    bad = WORLD.check_path(Q, ["Step 1: 6 * 4 = 24 (left: 24 5)", S2])
    assert not bad.legal and "wrong left list" in bad.error
    assert WORLD.state(Q, []) == (6, 4, 5, 1)
    assert WORLD.state(Q, [S1]) == (24, 5, 1)
    assert WORLD.state(Q, [S1, S2]) == (23, 5)
    with pytest.raises(ValueError, match="illegal countdown path: wrong step number"):
        WORLD.state(Q, [S2])


# --- verifier ----------------------------------------------------------------------------


def test_verifier_and_extract_answer() -> None:
    problem = Problem(question=Q, gold="23")
    assert WORLD.is_correct(problem, [S1, S2])
    assert not WORLD.is_correct(problem, [S1])  # unfinished
    assert not WORLD.is_correct(problem, [])
    wrong = [S1, "Step 2: 24 + 5 = 29 (left: 29 1)\n", "Step 3: 29 - 1 = 28 (left: 28)\n"]
    assert not WORLD.is_correct(problem, wrong)  # finished off-target
    assert not WORLD.is_correct(problem, [S1, "Step 2: 24 - 1 = 23 (left: 23 4)\n"])  # illegal
    assert not WORLD.is_correct(problem, [S1, S2, "Step 3: 23 + 5 = 28 (left: 28)\n"])
    assert WORLD.extract_answer(Q, [S1, S2]) == "23"
    assert WORLD.extract_answer(Q, wrong) == "28"
    assert WORLD.extract_answer(Q, [S1]) is None
    assert WORLD.extract_answer(Q, ["garbage"]) is None


# --- oracle ------------------------------------------------------------------------------


def test_distance_basic_cases() -> None:
    assert WORLD.distance(Q, []) == 2
    assert WORLD.distance(Q, [S1]) == 1
    assert WORLD.distance(Q, [S1, S2]) == 0
    dead = "Step 1: 6 + 4 = 10 (left: 10 5 1)\n"  # 10 5 1 cannot make 23
    assert WORLD.distance(Q, [dead]) is None and not WORLD.reachable(Q, [dead])
    assert WORLD.reachable(Q, [S1])
    assert WORLD.distance(Q, ["Step 1: 6 * 4 = 25 (left: 25 5 1)"]) is None  # illegal
    wrong = [S1, "Step 2: 24 + 5 = 29 (left: 29 1)\n", "Step 3: 29 - 1 = 28 (left: 28)\n"]
    assert WORLD.distance(Q, wrong) is None  # finished off-target
    given = Question(id="g", text="Make 5 from 5 3 1")
    assert WORLD.distance(given, []) == 1  # 5 * 1: the target is given but needs a step


def test_distance_equals_solver_length_at_root() -> None:
    for p in CountdownWorld(num_numbers=4).generate(100, seed=11):
        assert WORLD.distance(p.question, []) == len(solve(*parse_question(p.question)))


def _next_distances(question: Question, steps: list[str]) -> list[int | None]:
    state = WORLD.state(question, steps)
    k = len(steps) + 1
    return [WORLD.distance(question, steps + [format_step(k, *m, apply_move(state, m))])
            for m in legal_moves(state)]


def test_distance_bellman_consistency_on_random_paths() -> None:
    rng = random.Random(5)
    for i in range(150):
        numbers = tuple(rng.randint(1, 9) for _ in range(rng.choice((3, 4))))
        target = rng.randint(1, 40)
        question = Question(id=f"b{i}", text=f"Make {target} from " + " ".join(map(str, numbers)))
        assert WORLD.distance(question, []) == brute_fewest(tuple(sorted(numbers)), target)
        path = WORLD.random_trace(question, rng)
        for k in range(len(path)):
            prefix = path[:k]
            here = WORLD.distance(question, prefix)
            nxt = [d for d in _next_distances(question, prefix) if d is not None]
            assert here == (1 + min(nxt) if nxt else None)
            state = WORLD.state(question, prefix)
            assert here == brute_fewest(tuple(sorted(state)), target)


# --- traces ------------------------------------------------------------------------------


def test_random_traces_are_legal_and_finished() -> None:
    rng = random.Random(1)
    problems = WORLD.generate(100, seed=2) + CountdownWorld(num_numbers=4).generate(100, seed=2)
    lengths = set()
    for p in problems:
        trace = WORLD.random_trace(p.question, rng)
        result = WORLD.check_path(p.question, trace)
        assert result.legal and result.finished
        assert all(line.endswith("\n") for line in trace)
        assert WORLD.is_correct(p, trace) == (result.answer == p.gold)
        lengths.add(len(trace))
    assert lengths == {1, 2, 3}


def test_correct_traces_are_correct_and_varied() -> None:
    rng = random.Random(2)
    problem = WORLD.make_problem((6, 4, 5, 1), 23, "p")
    traces = {tuple(WORLD.correct_trace(problem, rng)) for _ in range(200)}
    assert all(WORLD.is_correct(problem, list(t)) for t in traces)
    assert len(traces) == len(solutions((6, 4, 5, 1), 23, shortest=False)) == 3
    shortest = {tuple(WORLD.correct_trace(Q, rng, shortest=True)) for _ in range(20)}
    assert shortest == {(S1, S2)}
    for p in CountdownWorld(num_numbers=4).generate(100, seed=9):
        assert WORLD.is_correct(p, WORLD.correct_trace(p, rng))
        assert WORLD.is_correct(p, WORLD.correct_trace(p.question.text, rng))
    with pytest.raises(ValueError, match="no solution"):
        WORLD.correct_trace(Question(id="u", text="Make 5 from 1 1"), rng)


def test_traces_are_reproducible_from_the_seed() -> None:
    a = [WORLD.random_trace(Q, random.Random(8)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert WORLD.correct_trace(Q, random.Random(8)) == WORLD.correct_trace(Q, random.Random(8))

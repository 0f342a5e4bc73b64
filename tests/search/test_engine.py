"""Tests of the batching search engine (scripted fake backends, plus one tiny HF model)."""

from __future__ import annotations

import random
import time
from typing import Callable, Sequence

import pytest

from rest_mcts.backends.base import Completion, GenerationOutput, SamplingParams
from rest_mcts.prompts import policy_prompt
from rest_mcts.search import baselines
from rest_mcts.search.configs import BestOfNConfig, BFSConfig, SelfConsistencyConfig
from rest_mcts.search.engine import SearchEngine, SearchError, derive_seed
from rest_mcts.search.requests import Generate, Score, SearchResult
from rest_mcts.worlds.countdown import CountdownWorld, apply_move, format_step, legal_moves

WORLD = CountdownWorld()
SAMPLED = SamplingParams(n=2, temperature=1.0, max_new_tokens=5)


# ---------------------------------------------------------------------------- fakes
class FakePolicy:
    """A PolicyBackend returning ``respond(prompt, params, i)`` as completion i; records calls."""

    def __init__(self, respond: Callable[[str, SamplingParams, int], str], delay: float = 0.0):
        self.respond = respond
        self.delay = delay
        self.calls: list[tuple[list[str], SamplingParams]] = []
        self.seeds: list[list[int] | None] = []
        self.generated_tokens = 0
        self.prompt_tokens = 0

    def generate(
        self, prompts: Sequence[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[GenerationOutput]:
        self.calls.append((list(prompts), params))
        self.seeds.append(None if seeds is None else list(seeds))
        time.sleep(self.delay)
        outputs = []
        for prompt in prompts:
            texts = [self.respond(prompt, params, i) for i in range(params.n)]
            completions = tuple(Completion(t, len(t) + 1, "stop") for t in texts)
            outputs.append(GenerationOutput(completions, prompt_tokens=len(prompt)))
            self.generated_tokens += sum(c.num_tokens for c in completions)
            self.prompt_tokens += len(prompt)
        return outputs


class FakeScorer:
    """A ValueScorer returning ``value(question, steps)``; records calls."""

    def __init__(self, value: Callable[[str, tuple[str, ...]], float]):
        self.value = value
        self.calls: list[list[tuple[str, tuple[str, ...]]]] = []

    def score(self, items):
        self.calls.append([(q, tuple(s)) for q, s in items])
        return [self.value(q, tuple(s)) for q, s in items]


def echo(prompt: str, params: SamplingParams, i: int) -> str:
    return f"{prompt}->{i}"


def countdown_respond(prompt: str, params: SamplingParams, i: int) -> str:
    """Deterministic Countdown policy: legal next steps (step mode) or random full traces."""
    question, *steps = prompt.splitlines(keepends=True)
    if "\n" in params.stop:
        state = WORLD.state(question.strip(), steps)
        moves = legal_moves(state)
        if not moves:
            return "Step 9: 1 + 1 = 2 (left: 2)\n"
        move = moves[(3 * i + len(steps)) % len(moves)]
        return format_step(len(steps) + 1, *move, apply_move(state, move))
    rng = random.Random(f"{prompt}|{i}")
    return "".join(WORLD.random_trace(question.strip(), rng))


def countdown_value(question: str, steps: tuple[str, ...]) -> float:
    distance = WORLD.distance(question, steps)
    return 0.05 if distance is None else 1.0 / (1.0 + distance)


def echo_search(key: str, rounds: int, params: SamplingParams = SAMPLED, score: bool = False):
    """Asks ``rounds`` Generates (one prompt each), optionally one Score of two items."""
    texts = []
    for r in range(rounds):
        outputs = yield Generate((f"{key}|{r}",), params)
        texts.append([c.text for c in outputs[0].completions])
    values = None
    if score:
        values = yield Score(((key, ("a",)), (key, ("a", "b"))))
    return SearchResult(answer=key, info={"texts": texts, "values": values})


def expected_texts(key: str, rounds: int, n: int = 2) -> list[list[str]]:
    return [[f"{key}|{r}->{i}" for i in range(n)] for r in range(rounds)]


def engine(policy=None, scorer=None, **kwargs) -> SearchEngine:
    return SearchEngine(policy or FakePolicy(echo), scorer, progress=False, **kwargs)


# ---------------------------------------------------------------------------- batching
def test_requests_of_many_questions_merge_into_one_call_per_round():
    policy, scorer = FakePolicy(echo), FakeScorer(lambda q, s: len(s) / 10)
    eng = engine(policy, scorer)
    jobs = [(f"q{i}", echo_search(f"q{i}", 3, score=True)) for i in range(20)]
    results = eng.run_all(jobs)
    assert [len(prompts) for prompts, _ in policy.calls] == [20, 20, 20]
    assert [len(items) for items in scorer.calls] == [40]
    assert eng.stats["policy_calls"] == 3 and eng.stats["scorer_calls"] == 1
    for key, result in results.items():
        assert result.info["texts"] == expected_texts(key, 3)
        assert result.info["values"] == [0.1, 0.2]
        assert result.costs.policy_calls == 3
        assert result.costs.scorer_calls == 1
        assert result.costs.prm_calls == 2


def test_answers_go_back_to_the_right_question_in_ragged_batches():
    policy = FakePolicy(echo)
    eng = engine(policy, FakeScorer(lambda q, s: 0.5))
    rounds = {f"k{i}": i % 4 for i in range(13)}
    results = eng.run_all((k, echo_search(k, r, score=r % 2 == 1)) for k, r in rounds.items())
    assert set(results) == set(rounds)
    for key, result in results.items():
        assert result.answer == key
        assert result.info["texts"] == expected_texts(key, rounds[key])
    assert [len(p) for p, _ in policy.calls] == [9, 6, 3]  # questions still generating


def _row_seed(engine_seed: int, key: str, request: int, prompt: int = 0) -> int:
    return derive_seed(derive_seed(engine_seed, key, request), prompt)


def test_only_equal_params_merge_and_seeds_come_from_the_engine():
    greedy = SamplingParams(n=2, temperature=0.0, max_new_tokens=5)
    policy = FakePolicy(echo)
    eng = engine(policy, seed=7)
    jobs = [
        ("a", echo_search("a", 2, SamplingParams(n=2, temperature=1.0, max_new_tokens=5, seed=5))),
        ("b", echo_search("b", 2, SamplingParams(n=2, temperature=1.0, max_new_tokens=5, seed=9))),
        ("c", echo_search("c", 2, greedy)),
    ]
    results = eng.run_all(jobs)
    batches = [prompts for prompts, _ in policy.calls]
    assert batches == [["a|0", "b|0"], ["c|0"], ["a|1", "b|1"], ["c|1"]]
    # the search's own seed is dropped; each prompt row gets its question's seed
    assert all(params.seed is None for _, params in policy.calls)
    assert policy.seeds == [
        [_row_seed(7, "a", 0), _row_seed(7, "b", 0)], [_row_seed(7, "c", 0)],
        [_row_seed(7, "a", 1), _row_seed(7, "b", 1)], [_row_seed(7, "c", 1)],
    ]
    assert results["c"].costs.policy_calls == 2


def test_row_seeds_depend_on_question_request_and_prompt_only():
    def multi(key: str):
        yield Score(())  # an empty request still counts: the Generate below is request 1
        yield Generate((f"{key}/x", f"{key}/y", f"{key}/z"), SAMPLED)
        yield Generate((f"{key}/w",), SAMPLED)
        return SearchResult(answer=key)

    def seeds(seed: int, concurrency: int, keys: list[str]) -> dict[str, int]:
        policy = FakePolicy(echo)
        eng = engine(policy, FakeScorer(lambda q, s: 0.0), seed=seed, concurrency=concurrency)
        eng.run_all((key, multi(key)) for key in keys)
        prompts = [p for call, _ in policy.calls for p in call]
        return dict(zip(prompts, [s for call in policy.seeds for s in call]))

    alone = seeds(3, 1, ["q0", "q1", "q2"])
    assert alone == seeds(3, 16, ["q2", "q0", "q1"])  # order and concurrency: no matter
    assert alone["q1/y"] == _row_seed(3, "q1", 1, 1)
    assert alone["q1/w"] == _row_seed(3, "q1", 2, 0)
    assert len(set(alone.values())) == len(alone)
    assert alone != seeds(4, 16, ["q0", "q1", "q2"])


# ---------------------------------------------------------------------------- scheduling
def test_results_stream_out_as_each_search_finishes():
    policy = FakePolicy(echo)
    jobs = [("slow", echo_search("slow", 5)), ("fast", echo_search("fast", 1))]
    stream = engine(policy).run(jobs)
    key, _ = next(stream)
    assert key == "fast" and len(policy.calls) == 1
    key, result = next(stream)
    assert key == "slow" and len(policy.calls) == 5
    assert result.info["texts"] == expected_texts("slow", 5)
    with pytest.raises(StopIteration):
        next(stream)


def test_concurrency_limits_active_searches_and_pulls_jobs_lazily():
    state = {"active": 0, "max_active": 0, "pulled": 0}

    def counted(key: str, rounds: int):
        state["active"] += 1
        state["max_active"] = max(state["max_active"], state["active"])
        result = yield from echo_search(key, rounds)
        state["active"] -= 1
        return result

    def jobs():
        for i in range(10):
            state["pulled"] += 1
            yield f"q{i}", counted(f"q{i}", 1 + i % 3)

    policy = FakePolicy(echo)
    stream = engine(policy, concurrency=3).run(jobs(), total=10)
    next(stream)
    assert state["pulled"] <= 3
    results = dict(stream)
    assert len(results) == 9 and state["max_active"] == 3
    assert all(len(prompts) <= 3 for prompts, _ in policy.calls)


def test_a_search_that_returns_at_once_and_empty_requests_need_no_backend_call():
    def instant():
        return SearchResult(answer="now")
        yield  # pragma: no cover - makes this a generator

    def empty():
        outputs = yield Generate((), SAMPLED)
        values = yield Score(())
        return SearchResult(info={"outputs": outputs, "values": values})

    policy = FakePolicy(echo)
    results = engine(policy).run_all([("i", instant()), ("e", empty())])
    assert results["i"].answer == "now"
    assert results["e"].info == {"outputs": [], "values": []}
    assert policy.calls == [] and results["e"].costs.policy_calls == 0


def test_abandoning_the_stream_closes_the_running_searches():
    closed = []

    def closable(key: str, rounds: int):
        try:
            return (yield from echo_search(key, rounds))
        finally:
            closed.append(key)

    stream = engine().run([("long", closable("long", 9)), ("short", closable("short", 1))])
    assert next(stream)[0] == "short"
    stream.close()
    assert closed == ["short", "long"]


# ---------------------------------------------------------------------------- costs and timing
def test_costs_per_question_add_up_to_backend_totals():
    policy, scorer = FakePolicy(echo), FakeScorer(lambda q, s: 0.3)
    eng = engine(policy, scorer, concurrency=4)
    results = eng.run_all((f"q{i}", echo_search(f"q{i}", 1 + i % 3, score=True)) for i in range(9))
    costs = [r.costs for r in results.values()]
    assert sum(c.policy_tokens for c in costs) == policy.generated_tokens
    assert policy.generated_tokens == eng.stats["policy_tokens"]
    assert sum(c.prompt_tokens for c in costs) == policy.prompt_tokens
    assert policy.prompt_tokens == eng.stats["prompt_tokens"]
    assert sum(c.prm_calls for c in costs) == sum(len(items) for items in scorer.calls) == 18
    assert sum(c.policy_calls for c in costs) == sum(len(p) for p, _ in policy.calls)
    assert all(c.wall_seconds > 0 for c in costs)


def test_overhead_accounting_is_sane_and_excludes_the_callers_time():
    policy = FakePolicy(echo, delay=0.01)
    eng = engine(policy, FakeScorer(lambda q, s: 0.5))
    for _ in eng.run((f"q{i}", echo_search(f"q{i}", 2, score=True)) for i in range(4)):
        time.sleep(0.1)  # the caller writing results: not engine time
    stats = eng.stats
    assert stats["policy_seconds"] >= 0.02
    assert stats["policy_seconds"] + stats["scorer_seconds"] <= stats["total_seconds"] < 0.3
    assert 0.0 <= stats["overhead_share"] <= 1.0
    assert stats["overhead_share"] == pytest.approx(
        1 - (stats["policy_seconds"] + stats["scorer_seconds"]) / stats["total_seconds"]
    )


# ---------------------------------------------------------------------------- errors
def test_an_exception_inside_a_search_names_its_key():
    def failing(key: str):
        yield Generate((key,), SAMPLED)
        raise ValueError("boom")

    jobs = [("ok", echo_search("ok", 3)), ("bad-7", failing("bad-7"))]
    with pytest.raises(SearchError, match="bad-7.*boom") as info:
        engine().run_all(jobs)
    assert isinstance(info.value.__cause__, ValueError)


def test_score_without_a_scorer_is_a_clear_error():
    with pytest.raises(SearchError, match="'q1'.*no value scorer"):
        engine().run_all([("q1", echo_search("q1", 1, score=True))])


def test_protocol_violations_are_errors():
    def yields_junk():
        yield "not a request"

    def returns_junk():
        yield Generate(("x",), SAMPLED)
        return {"answer": 1}

    with pytest.raises(SearchError, match="'j'.*yielded str"):
        engine().run_all([("j", yields_junk())])
    with pytest.raises(SearchError, match="'r'.*returned dict"):
        engine().run_all([("r", returns_junk())])
    with pytest.raises(SearchError, match="duplicate search key 'd'"):
        engine().run_all([("d", echo_search("d", 1)), ("d", echo_search("d", 1))])
    with pytest.raises(ValueError, match="concurrency"):
        SearchEngine(FakePolicy(echo), concurrency=0)


# ---------------------------------------------------------------------------- determinism
def _fingerprint(result: SearchResult) -> tuple:
    return (
        result.steps, result.answer, result.finished, result.value, result.tree,
        result.costs.policy_tokens, result.costs.prompt_tokens, result.costs.prm_calls,
    )


def test_concurrency_does_not_change_results_with_a_deterministic_policy():
    questions = [p.question for p in WORLD.generate(6, seed=0, split="test")]

    def jobs():
        for q in questions:
            yield f"cot/{q.id}", baselines.cot(q, WORLD, max_new_tokens=64)
            yield f"bon/{q.id}", baselines.best_of_n(
                q, WORLD, BestOfNConfig(n=3, temperature=1.0), max_new_tokens=64
            )
            yield f"bfs/{q.id}", baselines.bfs(
                q, WORLD, BFSConfig(branch=3, beam_width=2, max_depth=3, temperature=1.0,
                                    max_step_tokens=24),
            )

    runs = {}
    for concurrency in (1, 16):
        eng = engine(FakePolicy(countdown_respond), FakeScorer(countdown_value),
                     concurrency=concurrency)
        runs[concurrency] = {k: _fingerprint(r) for k, r in eng.run(jobs())}
    assert runs[1] == runs[16]
    assert len(runs[1]) == 18


# ---------------------------------------------------------------------------- real backend
def test_engine_with_the_hf_backend_on_a_tiny_model():
    from rest_mcts.backends.hf_policy import HFPolicyBackend
    from rest_mcts.models import build_char_tokenizer, build_tiny_causal_lm

    tokenizer = build_char_tokenizer()
    model = build_tiny_causal_lm(tokenizer, hidden_size=32, num_layers=1, num_heads=4, seed=0)
    questions = [p.question for p in WORLD.generate(4, seed=1, split="test")]

    def jobs():
        for q in questions:
            yield f"cot/{q.id}", baselines.cot(q, WORLD, max_new_tokens=12)
            yield f"sc/{q.id}", baselines.self_consistency(
                q, WORLD, SelfConsistencyConfig(n=2, temperature=1.0), max_new_tokens=12
            )

    def run_once():
        backend = HFPolicyBackend(model=model, tokenizer=tokenizer)
        eng = SearchEngine(backend, progress=False, seed=11)
        results = eng.run_all(jobs())
        return backend, eng, results

    backend, eng, results = run_once()
    assert backend.stats["calls"] == eng.stats["policy_calls"] == 2  # greedy + sampled
    assert backend.stats["prompts"] == 8
    costs = [r.costs for r in results.values()]
    assert sum(c.policy_tokens for c in costs) == backend.stats["generated_tokens"]
    assert sum(c.prompt_tokens for c in costs) == backend.stats["prompt_tokens"]
    for q in questions:
        sample = results[f"sc/{q.id}"].tree["samples"][0]
        assert isinstance(sample["text"], str) and sample["tokens"] <= 12
    assert policy_prompt(questions[0].text) == questions[0].text + "\n"
    _, _, again = run_once()
    assert {k: r.tree for k, r in again.items()} == {k: r.tree for k, r in results.items()}


# ---------------------------------------------------------------------------- value memo
def repeat_score_search(key: str):
    """Scores [a, a, b], then [b, c]: with the memo only a, b, then c reach the scorer."""
    first = yield Score(((key, ("a",)), (key, ("a",)), (key, ("b",))))
    second = yield Score(((key, ("b",)), (key, ("c",))))
    return SearchResult(answer=key, info={"values": [first, second]})


@pytest.mark.parametrize("cache_values", [True, False])
def test_value_memo_scores_each_item_once_per_question(cache_values):
    value = {("a",): 0.1, ("b",): 0.2, ("c",): 0.3}
    scorer = FakeScorer(lambda q, s: value[s] + (0.5 if q == "q1" else 0.0))
    eng = engine(scorer=scorer, cache_values=cache_values)
    results = eng.run_all([(f"q{i}", repeat_score_search(f"q{i}")) for i in range(2)])
    for key, result in results.items():
        bump = 0.5 if key == "q1" else 0.0
        expected = [[0.1 + bump, 0.1 + bump, 0.2 + bump], [0.2 + bump, 0.3 + bump]]
        assert [pytest.approx(got) for got in result.info["values"]] == expected
        # duplicates inside one request are always scored once; across requests only
        # without the memo
        assert result.costs.prm_calls == (3 if cache_values else 4)
    scored = [item for call in scorer.calls for item in call]
    assert len(scored) == (6 if cache_values else 8)
    assert len(set(scored)) == 6  # questions never share memo entries
    assert eng.stats["scorer_cache_hits"] == (4 if cache_values else 2)

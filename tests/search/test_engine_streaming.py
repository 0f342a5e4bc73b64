"""The engine's ``streaming`` schedule (for servers that batch continuously): the same
answers as ``rounds``, and a question whose answers are back goes on without waiting for
a slow request of another question."""

from __future__ import annotations

import threading

import pytest

from rest_mcts.backends.mock import MockPolicyBackend
from rest_mcts.backends.openai_backend import OpenAIPolicyBackend
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.oracle_scorer import OracleScorer
from rest_mcts.search.registry import make_search
from rest_mcts.worlds import CountdownWorld

from tests.helpers.openai_server import FakeServer

WORLD = CountdownWorld(num_numbers=4)
PROBLEMS = WORLD.generate(10, seed=3)


def policy(server, schedule: str) -> OpenAIPolicyBackend:
    return OpenAIPolicyBackend(base_urls=server.url, max_retries=0, schedule=schedule,
                               api_key_env=None)


def summary(results):
    return {k: (r.steps, r.answer, r.finished, r.costs.policy_tokens, r.costs.prm_calls)
            for k, r in results.items()}


@pytest.mark.parametrize("name", ["mcts_star", "self_consistency", "bfs"])
def test_streaming_gives_the_answers_rounds_give(name):
    node = {"name": name, "iterations": 6} if name == "mcts_star" else {"name": name}
    search = make_search(node, WORLD, max_solution_tokens=128)
    jobs = lambda: ((p.id, search(p.question)) for p in PROBLEMS)  # noqa: E731
    expected = summary(SearchEngine(MockPolicyBackend(seed=0), OracleScorer(WORLD),
                                    concurrency=10, progress=False).run_all(jobs()))
    with FakeServer("vllm") as server:
        for concurrency in (3, 10):
            streamed = policy(server, "streaming")
            engine = SearchEngine(streamed, OracleScorer(WORLD), concurrency=concurrency,
                                  progress=False)
            assert engine.schedule == "streaming"  # taken from the backend
            assert summary(engine.run_all(jobs())) == expected
            streamed.close()


@pytest.mark.timeout(120)
def test_a_held_back_request_does_not_hold_the_other_questions():
    """One question's requests are held by the server until every other question has
    finished: under streaming they all finish (under rounds each round would wait)."""
    slow, *others = PROBLEMS[:5]
    search = make_search({"name": "mcts_star", "iterations": 4}, WORLD, max_solution_tokens=128)
    release = threading.Event()

    def hold(body: dict) -> None:
        if slow.question.text in body["prompt"]:
            assert release.wait(60), "the held request was never released"

    with FakeServer("vllm") as server:
        server.before_answer = hold
        streamed = policy(server, "streaming")
        engine = SearchEngine(streamed, OracleScorer(WORLD), concurrency=5, progress=False)
        order = []
        for key, _ in engine.run(((p.id, search(p.question)) for p in [slow, *others])):
            order.append(key)
            if len(order) == len(others):
                release.set()
        streamed.close()
    assert sorted(order[:-1]) == sorted(p.id for p in others) and order[-1] == slow.id


def test_streaming_needs_a_backend_that_serves_concurrent_calls():
    with pytest.raises(ValueError, match="backend=openai"):
        SearchEngine(MockPolicyBackend(seed=0), schedule="streaming")
    with pytest.raises(ValueError, match="schedule must be one of"):
        SearchEngine(MockPolicyBackend(seed=0), schedule="eager")
    with pytest.raises(ValueError, match="backend.schedule"):
        OpenAIPolicyBackend(schedule="eager")


def test_a_failing_search_stops_a_streaming_run_naming_it():
    from rest_mcts.search.engine import SearchError
    from rest_mcts.search.requests import Generate
    from rest_mcts.backends.base import SamplingParams

    def broken(question):
        yield Generate((question.text,), SamplingParams(n=1, max_new_tokens=8))
        raise RuntimeError("boom")

    with FakeServer("vllm") as server:
        streamed = policy(server, "streaming")
        engine = SearchEngine(streamed, None, concurrency=2, progress=False)
        with pytest.raises(SearchError, match="'q1' failed: RuntimeError: boom"):
            engine.run_all([("q1", broken(PROBLEMS[0].question))])
        streamed.close()

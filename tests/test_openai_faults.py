"""Faults between `backend=openai` / `prm=openai` and real servers: a proxy on 127.0.0.1
answers 429 and 5xx a few times, or never answers, or the port is closed."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from rest_mcts.backends.base import SamplingParams
from rest_mcts.backends.openai_backend import OpenAIPolicyBackend
from rest_mcts.backends.openai_client import RetryPolicy, ServerError
from rest_mcts.backends.openai_scorer import OpenAIValueScorer
from rest_mcts.prompts import policy_prompt
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.registry import make_search
from rest_mcts.worlds import CountdownWorld

from .openai_server import FakeServer, FaultProxy

WORLD = CountdownWorld(num_numbers=4)
PROBLEMS = WORLD.generate(8, seed=1)
STEP = SamplingParams(n=2, temperature=1.0, max_new_tokens=64, stop=("\n",))
FAST = {"backoff_base": 0.01, "backoff_max": 0.05}


@pytest.fixture
def server():
    with FakeServer("vllm") as s:
        yield s


def test_backoff_doubles_up_to_the_cap_and_honours_retry_after():
    policy = RetryPolicy(max_retries=6, backoff_base=0.5, backoff_max=5.0)
    assert [policy.delay(k) for k in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(1, retry_after=3.0) == 3.0 and policy.delay(1, retry_after=60) == 5.0
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)


def test_429_and_500_are_retried_with_backoff(server, caplog):
    with FaultProxy(server.root, faults=[429, 500, 503]) as proxy:
        policy = OpenAIPolicyBackend(base_urls=proxy.url, concurrency=1, max_retries=5, **FAST)
        prompt = policy_prompt(PROBLEMS[0].question.text)
        with caplog.at_level(logging.WARNING, logger="rest_mcts.backends.openai_client"):
            (out,) = policy.generate([prompt], STEP, seeds=[3])
    assert len(out.completions) == 2
    assert [status for _, status in proxy.seen] == [429, 500, 503, 200]
    assert policy.pool.stats["retries"] == 3 and len(server.requests) == 1
    waits = [r.getMessage().rsplit(" in ", 1)[1] for r in caplog.records]
    assert waits == ["0.01 s", "0.02 s", "0.04 s"]
    assert all(proxy.url + "/completions: HTTP" in r.getMessage() for r in caplog.records)


def test_a_retry_goes_to_the_next_server(server):
    with FaultProxy(server.root, faults=[503]) as bad, FaultProxy(server.root) as good:
        policy = OpenAIPolicyBackend(base_urls=[bad.url, good.url], concurrency=1, **FAST)
        policy.generate([policy_prompt(PROBLEMS[0].question.text)], STEP, seeds=[1])
    assert bad.seen == [("/v1/completions", 503)] and good.seen == [("/v1/completions", 200)]


def test_the_search_completes_through_faults_each_question_once(server):
    search = make_search({"name": "mcts_star", "iterations": 3}, WORLD, 128)

    def run(policy_url: str, scorer_url: str) -> tuple[list, dict, int]:
        policy = OpenAIPolicyBackend(base_urls=policy_url, concurrency=4, **FAST)
        scorer = OpenAIValueScorer(base_urls=scorer_url, **FAST)
        engine = SearchEngine(policy, scorer, concurrency=8, progress=False)
        done = list(engine.run((p.id, search(p.question)) for p in PROBLEMS))
        retries = policy.pool.stats["retries"] + scorer.pool.stats["retries"]
        return [k for k, _ in done], {k: (r.steps, r.answer) for k, r in done}, retries

    with FaultProxy(server.root, faults=[429, 500, 429, 502, 500]) as proxy:
        keys, answers, retries = run(proxy.url, proxy.root)
    assert sorted(keys) == sorted(p.id for p in PROBLEMS)  # each question answered once
    statuses = [status for _, status in proxy.seen]
    assert sorted(s for s in statuses if s != 200) == [429, 429, 500, 500, 502]
    assert retries == 5
    _, clean, no_retries = run(server.url, server.root)  # the same answers without faults
    assert clean == answers and no_retries == 0


def test_after_the_last_retry_one_line_names_the_url_and_status(server):
    with FaultProxy(server.root, faults=[500] * 10) as proxy:
        policy = OpenAIPolicyBackend(base_urls=proxy.url, max_retries=2, **FAST)
        with pytest.raises(ServerError) as err:
            policy.generate([policy_prompt(PROBLEMS[0].question.text)], STEP, seeds=[1])
    message = str(err.value)
    assert message.startswith(f"{proxy.url}/completions: HTTP 500") and "\n" not in message
    assert message.endswith("after 3 attempts") and len(proxy.seen) == 3


def test_a_hanging_server_times_out_and_the_error_names_the_url():
    with FaultProxy("http://127.0.0.1:9", hang=True) as proxy:
        policy = OpenAIPolicyBackend(base_urls=proxy.url, timeout=0.4, max_retries=1, **FAST)
        search = make_search({"name": "cot"}, WORLD, 64)
        engine = SearchEngine(policy, None, concurrency=2, progress=False)
        start = time.perf_counter()
        with pytest.raises(ServerError) as err:
            engine.run_all((p.id, search(p.question)) for p in PROBLEMS[:2])
        seconds = time.perf_counter() - start
    message = str(err.value)
    assert message.startswith(f"{proxy.url}/completions: no answer within backend.timeout=0.4 s")
    assert "\n" not in message and seconds < 5
    assert len(proxy.seen) >= 2  # the first attempt and its retry


def test_a_closed_port_is_a_connection_error_naming_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    scorer = OpenAIValueScorer(base_urls=url, max_retries=1, **FAST)
    with pytest.raises(ServerError, match=rf"^{url}/classify: ConnectError: .* after 2 attempts$"):
        scorer.score([("Make 10 from 5 5", ())])

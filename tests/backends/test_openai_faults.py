"""Faults between `backend=openai` / `prm=openai` and real servers: a proxy on 127.0.0.1
answers 429 and 5xx a few times, or never answers, or the port is closed; a server trickles
its answer a byte at a time, or answers JSON of the wrong shape."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rest_mcts.backends.base import SamplingParams
from rest_mcts.backends.openai_backend import OpenAIPolicyBackend
from rest_mcts.backends.openai_client import AnswerShapeError, RetryPolicy, ServerError, ServerPool
from rest_mcts.config import ConfigError
from rest_mcts.backends.openai_scorer import OpenAIValueScorer
from rest_mcts.prompts import policy_prompt
from rest_mcts.search.engine import SearchEngine
from rest_mcts.search.registry import make_search
from rest_mcts.worlds import CountdownWorld

from tests.helpers.openai_server import FakeServer, FaultProxy

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


def test_a_fatal_error_cuts_the_pools_other_requests_in_flight():
    """Four requests hang (timeout 120 s); a fifth, on another thread, is refused (401): the
    hung call ends within a second or two with the 401's line, and later calls fail at once."""
    prompt = policy_prompt(PROBLEMS[0].question.text)
    hung: list[Exception] = []

    def hung_call(policy: OpenAIPolicyBackend) -> None:
        try:
            policy.generate([prompt], SamplingParams(n=4, temperature=1.0, max_new_tokens=8),
                            seeds=[1])
        except Exception as err:  # noqa: BLE001 -- handed to the test
            hung.append(err)

    with FaultProxy("http://127.0.0.1:9", hang=True, hang_seconds=600) as proxy:
        policy = OpenAIPolicyBackend(base_urls=proxy.url, timeout=120, concurrency=8,
                                     n_per_request=1, **FAST)
        caller = threading.Thread(target=hung_call, args=(policy,), daemon=True)
        try:
            caller.start()
            deadline = time.perf_counter() + 10
            while len(proxy.seen) < 4 and time.perf_counter() < deadline:
                time.sleep(0.01)
            assert len(proxy.seen) == 4
            proxy.faults.append(401)
            with pytest.raises(ServerError, match=r"/completions: HTTP 401") as refused:
                policy.generate([prompt], STEP, seeds=[2])
            start = time.perf_counter()
            caller.join(timeout=10)
            assert not caller.is_alive() and time.perf_counter() - start < 3
            assert len(hung) == 1 and str(hung[0]) == str(refused.value)
            sent = len(proxy.seen)
            with pytest.raises(ServerError, match=r"HTTP 401"):
                policy.generate([prompt], STEP, seeds=[3])
            assert len(proxy.seen) == sent  # the later call sent nothing
        finally:
            policy.close()


def test_a_pool_ended_by_a_wrong_shape_answer_refuses_with_that_error_and_class():
    """Every request after the first failure reports that failure, class and all: an
    AnswerShapeError stays a ConfigError (run.py: exit 2) whichever request surfaces first."""
    pool = ServerPool("http://127.0.0.1:9", retry=RetryPolicy(max_retries=0))
    try:
        pool.abort(AnswerShapeError("http://x/v1/completions: the answer has no choices"))
        pool.abort(ServerError("a later failure is not kept"))
        with pytest.raises(AnswerShapeError, match=r"^http://x/v1/completions: the answer has"):
            pool.post("/completions", {})
        assert pool.stats["requests"] == 0
    finally:
        pool.close()


def test_a_closed_port_is_a_connection_error_naming_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    scorer = OpenAIValueScorer(base_urls=url, max_retries=1, **FAST)
    with pytest.raises(ServerError, match=rf"^{url}/classify: ConnectError: .* after 2 attempts$"):
        scorer.score([("Make 10 from 5 5", ())])


# ---- a deadline per attempt; answers of the wrong shape --------------------------------------
class TrickleServer:
    """A server on 127.0.0.1 that sends each answer one byte every ``interval`` seconds:
    the whole answer (``headers_too``) or its body after the headers at once. Each byte
    comes well within any read timeout, so only a deadline on the whole attempt stops it."""

    def __init__(self, body: bytes, interval: float, headers_too: bool) -> None:
        self.head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        self.body, self.interval, self.headers_too = body, interval, headers_too
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.requests += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += conn.recv(65536)
            answer = self.head + self.body
            if not self.headers_too:
                conn.sendall(self.head)
                answer = self.body
            try:
                for i in range(len(answer)):
                    if self.stop.is_set():
                        return
                    conn.sendall(answer[i:i + 1])
                    time.sleep(self.interval)
            except OSError:  # the client gave up and closed the connection
                return

    def __enter__(self) -> "TrickleServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("headers_too", [True, False], ids=["headers", "body"])
def test_a_trickling_server_is_cut_off_at_the_timeout(headers_too):
    """One byte every 0.1 s: about 8 s for the whole answer without a deadline; with
    timeout=1 each of the 2 attempts ends after 1 s."""
    body = json.dumps({"ok": True, "pad": " " * 60}).encode()
    with TrickleServer(body, 0.1, headers_too) as server:
        pool = ServerPool(server.url, timeout=1.0, retry=RetryPolicy(max_retries=1, **FAST))
        start = time.perf_counter()
        try:
            with pytest.raises(ServerError) as err:
                pool.post("/v1/completions", {"prompt": "x"})
        finally:
            seconds = time.perf_counter() - start
            pool.close()
    assert str(err.value) == (f"{server.url}/v1/completions: no answer within backend.timeout=1 "
                              "s (deadline) after 2 attempts")
    assert 2.0 <= seconds < 7.0 and server.requests == 2  # no deadline: 2 x ~8 s


def test_a_slow_but_steady_answer_within_the_timeout_is_kept():
    with TrickleServer(b'{"ok": true}', 0.02, headers_too=False) as server:
        pool = ServerPool(server.url, timeout=5.0, retry=RetryPolicy(max_retries=0))
        try:
            assert pool.post("/v1/completions", {}) == (f"{server.url}/v1/completions",
                                                        {"ok": True})
        finally:
            pool.close()


class _Answers(BaseHTTPRequestHandler):
    """Answers every POST with HTTP 200 and the class's ``answer`` (bytes)."""

    answer = b"{}"

    def do_POST(self) -> None:  # noqa: N802 -- http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("answer, message", [
    ([1, 2], "the answer is a JSON list, not an object"),
    (None, "the answer is a JSON null, not an object"),
    ({"choices": "none", "usage": {"completion_tokens": 3}},
     "the answer does not have the expected fields (AttributeError: 'str' object has no "
     "attribute 'get')"),
    ({"choices": [{"text": "x"}], "usage": {"completion_tokens": "three"}},
     "the answer does not have the expected fields (ValueError: invalid literal for int() "
     "with base 10: 'three')"),
    ({"choices": []}, "the answer has no choices"),
    ("not json", "HTTP 200 but the answer is not JSON"),
])
def test_an_answer_of_the_wrong_shape_is_one_line_naming_the_url(answer, message):
    handler = type("Handler", (_Answers,), {
        "answer": answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    policy = OpenAIPolicyBackend(base_urls=url, max_retries=3, **FAST)
    try:
        with pytest.raises(AnswerShapeError) as err:
            policy.generate([policy_prompt(PROBLEMS[0].question.text)], STEP, seeds=[1])
    finally:
        policy.close()
        server.shutdown()
        server.server_close()
    assert str(err.value).startswith(f"{url}/completions: {message}")
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ServerError)
    assert policy.pool.stats["retries"] == 0  # an answer of another shape is not retried


def test_a_scorer_answer_of_the_wrong_shape_names_the_url():
    handler = type("Handler", (_Answers,), {"answer": b'{"data": [{"probs": 0.5}, 7]}'})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    scorer = OpenAIValueScorer(base_urls=url, **FAST)
    try:
        with pytest.raises(AnswerShapeError, match=rf"^{url}/classify: the answer does not have "
                                                   r"the expected fields \(AttributeError"):
            scorer.score([("Make 10 from 5 5", ()), ("Make 10 from 5 5", ("5 + 5 = 10\n",))])
    finally:
        scorer.close()
        server.shutdown()
        server.server_close()

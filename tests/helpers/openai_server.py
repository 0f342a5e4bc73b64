"""A tiny OpenAI-compatible server and a fault-injecting proxy, on 127.0.0.1, for tests.

:class:`FakeServer` answers ``POST /v1/completions``, ``/v1/chat/completions`` and
``/classify`` over real HTTP (stdlib ``http.server``, one thread per request). Its text comes
from the scripted :class:`~rest_mcts.backends.mock.MockPolicyBackend` run with the request's
``seed`` as the row seed, so an answer is reproducible and equals what ``backend=mock``
writes for that seed; like a real server it leaves the stop string out of the text and says
``finish_reason`` ``stop`` (also for an end of text), ``length`` at ``max_tokens``.

* ``flavour="vllm"``: honours ``n``, reports the matched stop string as ``stop_reason``.
* ``flavour="llamacpp"``: ignores ``n`` (one choice per answer) and reports no stop string.

``/classify`` answers the value ``value_of(text)`` (deterministic, may lie outside [0, 1])
as vLLM's pooling runner does, with a sigmoid applied unless ``use_activation`` is false.
Every request is recorded (path, JSON body, headers); ``reply`` set, every completion is
that text (an LLM judge's verdict); ``before_answer`` set, it sees (and may hold back) every
completion request first. :class:`FaultProxy` forwards to an
upstream server after answering a scripted list of statuses first, or hangs.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from rest_mcts.backends.base import SamplingParams
from rest_mcts.backends.mock import MockPolicyBackend


def default_value(text: str) -> float:
    """A deterministic raw 'value' of a text in [-0.25, 1.25]."""
    digest = hashlib.sha256(text.encode()).digest()
    return round(-0.25 + 1.5 * digest[0] / 255, 6)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # (socketserver's 5 resets connections under 32 in flight)


class _Base:
    """Start/stop of a threaded HTTP server on a free port of 127.0.0.1."""

    def _serve(self, handler: type) -> None:
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL (``.../v1``)."""
        return self.root + "/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class FakeServer(_Base):
    """See the module docstring. ``requests``: (path, body, headers) of each request."""

    def __init__(
        self,
        flavour: str = "vllm",
        value_of: Callable[[str], float] = default_value,
        answer_rate: float = 0.4,
    ) -> None:
        assert flavour in ("vllm", "llamacpp")
        self.flavour = flavour
        self.value_of = value_of
        self.policy = MockPolicyBackend(seed=0, answer_rate=answer_rate)
        self.requests: list[tuple[str, dict, dict]] = []
        self.reply: str | None = None  # set: every completion is this text (an LLM judge)
        # set: called with each completion request's body before it is answered (may block)
        self.before_answer: Callable[[dict], None] | None = None
        self._lock = threading.Lock()
        self._serve(_FakeHandler)

    def bodies(self, path: str) -> list[dict]:
        return [body for p, body, _ in self.requests if p == path]

    # ------------------------------------------------------------------ answers
    def complete(self, path: str, body: dict) -> dict:
        chat = path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        n = int(body.get("n", 1)) if self.flavour == "vllm" else 1
        params = SamplingParams(
            n=n,
            temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)),
            max_new_tokens=int(body.get("max_tokens", 16)),
            stop=tuple(stops),
        )
        seed = body.get("seed")
        with self._lock:  # the mock's own generator is not thread-safe
            (out,) = self.policy.generate([prompt], params, seeds=None if seed is None else [seed])
        if self.reply is not None:
            out = type(out)(tuple(type(c)(self.reply, len(self.reply), "eos")
                                  for c in out.completions), out.prompt_tokens)
        choices = []
        for index, completion in enumerate(out.completions):
            text, matched = completion.text, None
            if completion.finish_reason == "stop":
                matched = next(s for s in stops if s and text.endswith(s))
                text = text[: -len(matched)]
            choice: dict[str, Any] = {
                "index": index,
                "finish_reason": "length" if completion.finish_reason == "length" else "stop",
            }
            if self.flavour == "vllm":
                choice["stop_reason"] = matched
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choices.append(choice)
        generated = sum(c.num_tokens for c in out.completions)
        return {
            "id": "cmpl-test",
            "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model", "fake"),
            "choices": choices,
            "usage": {"prompt_tokens": out.prompt_tokens, "completion_tokens": generated,
                      "total_tokens": out.prompt_tokens + generated},
        }

    def classify(self, body: dict) -> dict:
        inputs = body["input"]
        inputs = [inputs] if isinstance(inputs, str) else inputs
        raw = body.get("use_activation") is False
        data = []
        for index, text in enumerate(inputs):
            value = self.value_of(text)
            value = value if raw else 1 / (1 + math.exp(-value))
            data.append({"index": index, "label": "LABEL_0", "probs": [value], "num_classes": 1})
        tokens = sum(len(text) for text in inputs)
        return {"id": "classify-test", "object": "list", "model": body.get("model", "fake"),
                "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


class _FakeHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 -- http.server's name
        server: FakeServer = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with server._lock:
            server.requests.append((self.path, body, dict(self.headers)))
        if self.path in ("/v1/completions", "/v1/chat/completions"):
            if server.before_answer is not None:
                server.before_answer(body)  # e.g. hold some requests back
            answer = server.complete(self.path, body)
        elif self.path == "/classify":
            answer = server.classify(body)
        else:
            _send(self, 404, {"error": {"message": f"no route {self.path}"}})
            return
        _send(self, 200, answer)


def _send(handler: BaseHTTPRequestHandler, status: int, answer: Any, headers=None) -> None:
    data = json.dumps(answer).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


HANG = "hang"  # a FaultProxy fault: hold the request unanswered (see its hang_seconds)


class FaultProxy(_Base):
    """Forwards POSTs to ``upstream`` (a root URL), after answering ``faults`` first.

    Args:
        upstream: root URL of the real server.
        faults: statuses answered, one per request, before requests are forwarded
            (e.g. ``[429, 500, 500]``); :data:`HANG` holds that request unanswered.
        hang: never answer once ``faults`` are used up (each request waits ``hang_seconds``,
            then the connection drops).
        retry_after: ``Retry-After`` header value sent with the fault answers.

    Attributes:
        seen: (path, status answered) of every request, in order.
    """

    def __init__(
        self,
        upstream: str,
        faults: list[int | str] | None = None,
        hang: bool = False,
        hang_seconds: float = 30.0,
        retry_after: str | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = list(faults or [])
        self.hang = hang
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        self.seen: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._serve(_ProxyHandler)

    def close(self) -> None:
        self._release.set()
        super().close()


class _ProxyHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        proxy: FaultProxy = self.server.owner  # type: ignore[attr-defined]
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with proxy._lock:
            fault = proxy.faults.pop(0) if proxy.faults else None
            hang = fault == HANG or (fault is None and proxy.hang)
            proxy.seen.append((self.path, 0 if hang else fault or 200))
        if hang:
            proxy._release.wait(proxy.hang_seconds)
            return
        if fault is not None:
            headers = {"Retry-After": proxy.retry_after} if proxy.retry_after else None
            _send(self, fault, {"error": {"message": f"injected {fault}"}}, headers)
            return
        request = urllib.request.Request(
            proxy.upstream + self.path, data=data, method="POST",
            headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, payload = err.code, err.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


"""HTTP to OpenAI-compatible servers: a URL pool served round-robin, with retries.

Shared by ``backend=openai`` (:mod:`rest_mcts.backends.openai_backend`) and ``prm=openai``
(:mod:`rest_mcts.backends.openai_scorer`). One :class:`ServerPool` holds one ``httpx``
client (thread-safe, pooled connections) and a thread pool of ``concurrency`` workers, so
the requests of one backend call go out side by side.

Which server: every request *attempt* takes the next base URL in turn (round-robin over
``base_urls``, the data-parallel servers), so a retry goes to the next server.

Timeout: ``timeout`` seconds of wall clock per attempt, all of it (connecting, sending,
waiting, and reading every byte of the answer). httpx's own timeouts bound each network
operation alone, so a server that trickles a byte a second would hold a request for ever;
each attempt therefore runs as a coroutine on one process-wide event loop
(:func:`_event_loop`) under ``asyncio.wait_for``, which cancels it at the deadline. A timed-out
attempt is retried like a transport error.

Retries (:class:`RetryPolicy`): HTTP 408, 429 and 5xx answers and transport errors
(connection refused or reset, timeouts) are retried up to ``max_retries`` times, waiting
``backoff_base * 2**k`` seconds before retry ``k + 1`` (at most ``backoff_max``; a longer
``Retry-After`` header is honoured up to ``backoff_max``). After the last retry, or at once
for any other 4xx, :class:`ServerError` is raised with one line naming the URL and the
status (or the transport error).

A failure for good ends the pool: the first :class:`ServerError` (or :meth:`ServerPool.abort`,
which the backends call when an answer cannot be read, and :meth:`ServerPool.close`) cancels
every attempt still in flight, cuts short any backoff wait, and makes every later request
raise at once, all with that first error's line and class (an :class:`AnswerShapeError`
stays one, so ``run.py`` exits with status 2 whichever request reports it). A run whose one server refuses a request
(HTTP 401) while its other requests hang thus stops in a moment with the 401's line, not
after ``timeout`` seconds of waiting for answers nobody would use.

An answer that is JSON of the wrong shape (not what an OpenAI-compatible server answers on
that endpoint) is :class:`AnswerShapeError`: no retry, one line naming the URL, and
``run.py`` exits with status 2 (a setting to fix: the URL, the endpoint), not 1.

The API key: read from the environment variable *named* by ``api_key_env`` when the pool is
built and kept only in the HTTP client's headers; it is in no config, repr, log line or
error message. A server (or a proxy) may echo the request's headers in an error body, which
warnings and :class:`ServerError` quote: the key is registered with
:func:`rest_mcts.utils.secrets.protect`, so every quoted text, error message and log record
has it replaced (:func:`rest_mcts.utils.secrets.redact`).

Why ``httpx`` and not the ``openai`` SDK: the three endpoints used (``/v1/completions``,
``/v1/chat/completions`` and vLLM's ``/classify``, which the SDK does not have) are plain
JSON posts; the answers carry server extensions outside the SDK's types (vLLM's
``stop_reason``, SGLang's ``matched_stop``); and retries must move to the next server of the
pool and end in one line naming the URL, which the SDK's own retry loop (per client, one
URL) does not do. ``httpx`` gives the timeouts, pooled keep-alive connections and
thread-safety; the retry policy is ours and tested (``tests/backends/test_openai_faults.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import threading
import time
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from rest_mcts.config import ConfigError
from rest_mcts.utils.secrets import protect, redact

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


class ServerError(RuntimeError):
    """A request to a server failed for good; the message is one line naming the URL, with
    any registered secret redacted (:func:`rest_mcts.utils.secrets.redact`)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(str(message)))


class AnswerShapeError(ServerError, ConfigError):
    """A server answered (HTTP 2xx) with something that is not an OpenAI-compatible answer for
    the endpoint: not JSON, not an object, or missing or mistyped fields. One line naming the
    URL; a :class:`~rest_mcts.config.ConfigError` too, so ``run.py`` exits with status 2."""


@contextlib.contextmanager
def answer_shape(url: str, answer: Any) -> Iterator[None]:
    """Around the reading of one decoded ``answer`` from ``url``: an answer that is no JSON
    object, or whose fields are missing or of the wrong type (the reader's KeyError,
    TypeError, ...), becomes one :class:`AnswerShapeError` line naming the URL."""
    if not isinstance(answer, dict):
        kind = type(answer).__name__.replace("NoneType", "null")
        raise AnswerShapeError(f"{url}: the answer is a JSON {kind}, not an object")
    try:
        yield
    except ServerError:
        raise
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as err:
        raise AnswerShapeError(f"{url}: the answer does not have the expected fields "
                               f"({type(err).__name__}: {_one_line(str(err))})") from None


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    Attributes:
        max_retries: retries after the first attempt (0: none).
        backoff_base: seconds before the first retry; doubled for each further one.
        backoff_max: the longest wait between two attempts (also caps ``Retry-After``).
    """

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must be >= 0")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        wait = self.backoff_base * 2 ** (retry - 1)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.backoff_max)


def as_url_list(base_urls: str | Sequence[str], option: str) -> tuple[str, ...]:
    """``base_urls`` as a tuple of URLs without trailing slashes.

    Raises:
        ValueError: empty, or an entry is not an ``http(s)://`` URL (names ``option``).
    """
    urls = [base_urls] if isinstance(base_urls, str) else list(base_urls or ())
    urls = [str(url).strip().rstrip("/") for url in urls]
    if not urls:
        raise ValueError(f"{option} must list at least one server URL")
    for url in urls:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"{option}: {url!r} is not an http(s):// URL")
    return tuple(urls)


class ServerPool:
    """Round-robin JSON posts to a list of servers, with retries and bounded concurrency.

    Attributes:
        base_urls: the servers, in round-robin order.
        timeout: seconds of wall clock one request attempt may take, all of it (module
            docstring).
        retry: the :class:`RetryPolicy`.
        stats: running totals: ``requests`` (attempts), ``retries``, ``seconds`` (summed over
            requests) and ``requests_per_url``.
    """

    def __init__(
        self,
        base_urls: str | Sequence[str],
        *,
        api_key_env: str | None = None,
        timeout: float = 300.0,
        concurrency: int = 32,
        retry: RetryPolicy = RetryPolicy(),
        option: str = "backend",
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        """Args:
            base_urls: one URL or a list (each request attempt takes the next).
            api_key_env: NAME of the environment variable holding the API key (sent as
                ``Authorization: Bearer``); None, or the variable unset: no key is sent.
            timeout: seconds of wall clock per request attempt (connect to last byte).
            concurrency: most requests in flight at once.
            retry: the retry policy.
            option: config prefix named in errors (``backend``, ``prm.scorer``).
            sleep: the waiting function (tests may record the waits); None: a wait that
                :meth:`abort` cuts short.
        """
        import httpx

        if timeout <= 0:
            raise ValueError(f"{option}.timeout must be > 0, got {timeout}")
        if concurrency < 1:
            raise ValueError(f"{option}.concurrency must be >= 1, got {concurrency}")
        self.base_urls = as_url_list(base_urls, f"{option}.base_urls")
        self.timeout = float(timeout)
        self.retry = retry
        self.option = option
        self.api_key_env = api_key_env or None
        self._halt = threading.Event()  # set by abort(): stop waiting, stop sending
        self._sleep = sleep or self._halt.wait
        self._failure: ServerError | None = None  # the error that ended the pool
        self._inflight: set[Future] = set()  # attempts running on _event_loop()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        self.has_api_key = bool(key)
        if key:
            headers["Authorization"] = f"Bearer {key}"
            protect(key)  # out of every log record and error message from now on
        del key
        self._http = httpx.AsyncClient(  # used on _event_loop() only
            headers=headers,
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._workers = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="openai")
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.stats: dict[str, Any] = {
            "requests": 0, "retries": 0, "seconds": 0.0,
            "requests_per_url": {url: 0 for url in self.base_urls},
        }
        # httpx logs every request at INFO: one line per step proposal would flood the logs
        if logging.getLogger("httpx").level == logging.NOTSET:
            logging.getLogger("httpx").setLevel(logging.WARNING)

    def __repr__(self) -> str:
        return (
            f"ServerPool(base_urls={list(self.base_urls)}, api_key_env={self.api_key_env!r}, "
            f"timeout={self.timeout})"
        )

    # ------------------------------------------------------------------ requests
    def submit(self, path: str, body: dict[str, Any]) -> "Future[tuple[str, dict[str, Any]]]":
        """:meth:`post` on a worker thread."""
        return self._workers.submit(self.post, path, body)

    def post(self, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """POST ``body`` as JSON to ``<next base URL><path>``, retrying as the policy says.

        Returns:
            (the URL that answered, the decoded JSON answer).

        Raises:
            ServerError: the last attempt failed, or a 4xx other than 408/429 came back, or
                the answer is not JSON (one line naming the URL); or the pool was ended by
                an earlier such error (its line, see :meth:`abort`).
        """
        try:
            return self._post(path, body)
        except ServerError as err:
            self.abort(err)
            raise

    def abort(self, error: ServerError) -> None:
        """End the pool after a failure for good: cancel the attempts in flight, cut short the
        backoff waits, and refuse later requests, each with a copy of ``error`` (same class,
        same line; the first error given is kept)."""
        with self._lock:
            if self._failure is None:
                self._failure = error
            inflight, self._inflight = list(self._inflight), set()
        self._halt.set()
        for future in inflight:
            future.cancel()  # cancels the coroutine on the loop; its connection is closed

    def _post(self, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        import httpx

        attempts = 1 + self.retry.max_retries
        for attempt in range(1, attempts + 1):
            url = self._next_url() + path
            start = time.perf_counter()
            retry_after = None
            try:
                response = self._attempt(url, body)
            except (httpx.TransportError, TimeoutError) as err:
                failure = _transport_failure(err, self.timeout, self.option)
            else:
                if response.status_code < 300:
                    self._count(url, start)
                    try:
                        return url, response.json()
                    except ValueError:
                        raise AnswerShapeError(
                            f"{url}: HTTP {response.status_code} but the answer is not JSON: "
                            f"{_one_line(response.text)}"
                        ) from None
                failure = f"HTTP {response.status_code} ({_one_line(response.text)})"
                if response.status_code not in RETRY_STATUSES:
                    self._count(url, start)
                    raise ServerError(f"{url}: {failure}{self._key_hint(response.status_code)}")
                retry_after = _retry_after(response.headers.get("retry-after"))
            self._count(url, start)
            if attempt == attempts:
                tries = f" after {attempts} attempts" if attempts > 1 else ""
                raise ServerError(f"{url}: {failure}{tries}")
            wait = self.retry.delay(attempt, retry_after)
            with self._lock:
                self.stats["retries"] += 1
            logger.warning("%s: %s; retry %d/%d in %.2f s", url, failure, attempt,
                           self.retry.max_retries, wait)
            self._sleep(wait)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop the worker threads, cancel the requests in flight, close the connections."""
        self.abort(ServerError(f"{self.option}: the server pool was closed"))
        self._workers.shutdown(wait=False, cancel_futures=True)
        closing = asyncio.run_coroutine_threadsafe(self._http.aclose(), _event_loop())
        with contextlib.suppress(Exception):
            closing.result(timeout=10)

    def _attempt(self, url: str, body: dict[str, Any]) -> Any:
        """One POST, whole (the answer's body read), within ``timeout`` seconds of wall clock.

        Raises:
            TimeoutError: the deadline passed (the request is cancelled, its connection closed).
            httpx.TransportError: the connection failed.
            ServerError: the pool was ended (:meth:`abort`) before or during the attempt.
        """
        async def send() -> Any:
            return await asyncio.wait_for(self._http.post(url, json=body), self.timeout)

        with self._lock:
            if self._failure is not None:
                raise self._ended()
            future = asyncio.run_coroutine_threadsafe(send(), _event_loop())
            self._inflight.add(future)
        try:
            return future.result()
        except CancelledError:
            if self._failure is None:
                raise ServerError(f"{url}: the request was cancelled") from None
            raise self._ended() from None
        finally:
            with self._lock:
                self._inflight.discard(future)

    # ------------------------------------------------------------------ helpers
    def _ended(self) -> ServerError:
        """A copy of the error that ended the pool (:meth:`abort`), for one more request."""
        failure = self._failure
        assert failure is not None
        return type(failure)(str(failure))

    def _next_url(self) -> str:
        with self._lock:
            return self.base_urls[next(self._turn) % len(self.base_urls)]

    def _count(self, url: str, start: float) -> None:
        base = next((b for b in self.base_urls if url.startswith(b)), None)
        with self._lock:
            self.stats["requests"] += 1
            self.stats["seconds"] += time.perf_counter() - start
            if base is not None:
                self.stats["requests_per_url"][base] += 1

    def _key_hint(self, status: int) -> str:
        if status not in (401, 403):
            return ""
        if not self.api_key_env:
            return f" (no API key sent: set {self.option}.api_key_env)"
        state = "set" if self.has_api_key else "unset"
        return f" (API key from ${self.api_key_env}, which is {state})"


_LOOP: tuple[int, asyncio.AbstractEventLoop] | None = None
_LOOP_LOCK = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    """The process's event loop for server requests, running in a daemon thread (started on
    first use, and again in a forked child, which inherits no running thread)."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="openai-http", daemon=True).start()
            _LOOP = (os.getpid(), loop)
        return _LOOP[1]


def _one_line(text: str, limit: int = 200) -> str:
    """``text`` (a server's words) on one line, secrets redacted before it is cut to
    ``limit`` characters (a cut must not leave a piece of a key)."""
    flat = " ".join(redact(str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: ignored, the backoff decides
        return None


def _transport_failure(err: Exception, timeout: float, option: str) -> str:
    import httpx

    if isinstance(err, (httpx.TimeoutException, TimeoutError)):
        kind = "deadline" if isinstance(err, TimeoutError) else type(err).__name__
        return f"no answer within {option}.timeout={timeout:g} s ({kind})"
    return f"{type(err).__name__}: {_one_line(str(err)) or 'connection failed'}"

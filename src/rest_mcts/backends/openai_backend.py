"""``backend=openai``: the policy behind any OpenAI-compatible server.

``vllm serve``, SGLang, llama.cpp's server or a hosted API: each prompt becomes a request to
``<base URL>/completions`` (``endpoint: completions``, the default) or, for chat-only
servers, ``<base URL>/chat/completions`` with the prompt as one user message
(``endpoint: chat``; render prompts without a chat template then, ``model.chat_template:
false``, or the template is applied twice). Requests go round-robin over ``base_urls`` with
at most ``concurrency`` in flight, and are retried as :mod:`rest_mcts.backends.openai_client`
says.

Sampling: ``n``, ``temperature``, ``top_p``, ``max_tokens`` and ``stop`` as in
:class:`~rest_mcts.backends.base.SamplingParams`; the request asking for samples ``j ..`` of
prompt ``i`` carries ``seed = row seed`` when ``j == 0``, else ``derive_seed(row seed, j)``
(row seeds: :func:`~rest_mcts.backends.base.row_seeds`), so the samples of a prompt depend on
its row seed alone, whichever other prompts share the call (as far as the server's own
sampling is reproducible for a seed). A server that returns fewer than the choices asked
(llama.cpp ignores ``n``) is asked again for the rest, until there are ``n``;
``n_per_request`` splits ``n`` up front instead (1 for such servers: the requests then go
out side by side). Greedy decoding asks for one completion and repeats it ``n`` times, as
the HF backend does.

Answers are mapped to :class:`~rest_mcts.backends.base.Completion`:

* ``num_tokens``: ``usage.completion_tokens``, the tokens the server generated (the
  token budgets count these). A request's total is exact; with several choices in one
  answer it is shared out in proportion to the texts' lengths (exactly per choice when the
  choice has ``token_ids``, e.g. vLLM's ``return_token_ids``). An answer without ``usage``
  is an error.
* ``prompt_tokens``: ``usage.prompt_tokens``.
* ``finish_reason``: ``length`` -> ``"length"``. A stop string is kept at the end of the
  text: when the server reports which one matched (vLLM's ``stop_reason``, SGLang's
  ``matched_stop``) it is appended (unless the text already ends with it, e.g. vLLM's
  ``include_stop_str_in_output``), ``"stop"``; a ``stop`` answer with nothing reported
  (llama.cpp, OpenAI) counts as the stop string when exactly one was asked for (then it is
  appended, so a step still ends in its newline), else as ``"eos"``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Mapping, Sequence

from rest_mcts.backends.base import (
    Completion,
    GenerationOutput,
    SamplingParams,
    derive_seed,
    row_seeds,
)
from rest_mcts.backends.openai_client import (
    AnswerShapeError,
    RetryPolicy,
    ServerError,
    ServerPool,
    answer_shape,
)
from rest_mcts.backends.registry import Capabilities, register_policy

ENDPOINTS = {"completions": "/completions", "chat": "/chat/completions"}
SCHEDULES = ("rounds", "streaming")


@register_policy("openai", Capabilities(needs_model=False, must_close=True))
class OpenAIPolicyBackend:
    """A :class:`~rest_mcts.backends.base.PolicyBackend` on OpenAI-compatible servers.

    ``generate`` may be called from several threads at once (``concurrent_calls``): the
    ``streaming`` schedule of the search engine does so.

    Attributes:
        pool: the servers (:class:`~rest_mcts.backends.openai_client.ServerPool`).
        model: the ``model`` field of every request (None: left out).
        endpoint: ``"completions"`` or ``"chat"``.
        stats: running totals: ``calls``, ``prompts``, ``completions``, ``requests``,
            ``topped_up`` (requests for choices a server left out), ``prompt_tokens``,
            ``generated_tokens`` and ``seconds``.
    """

    concurrent_calls = True

    def __init__(
        self,
        base_urls: str | Sequence[str] = "http://127.0.0.1:8000/v1",
        model: str | None = None,
        endpoint: str = "completions",
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 32,
        timeout: float = 300.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        n_per_request: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
        model_path: str | None = None,
        schedule: str = "streaming",
    ) -> None:
        """Args:
            base_urls: server URL(s) up to and including ``/v1``, served round-robin.
            model: the served model's name (vLLM: ``--served-model-name``, by default the
                path it serves); None leaves the field out.
            endpoint: ``completions`` or ``chat`` (chat-only servers).
            api_key_env: NAME of the environment variable holding the API key (never the
                key itself); None or unset: no key is sent.
            concurrency: most requests in flight at once.
            timeout: seconds a request may take before it is retried.
            max_retries: retries of a request after HTTP 408/429/5xx or a transport error.
            backoff_base: seconds before the first retry (doubling after each).
            backoff_max: longest wait between retries.
            n_per_request: most choices asked for in one request (None: all ``n``).
            extra_body: more request fields, e.g. ``{top_k: 20}`` or vLLM's
                ``{include_stop_str_in_output: true}``.
            model_path: ignored (a configured backend may be handed one).
            schedule: how the search engine sends this backend its requests: ``rounds``
                (each round's requests merged into one call) or ``streaming`` (each search's
                requests sent as it makes them; see :mod:`rest_mcts.search.engine`).
        """
        if endpoint not in ENDPOINTS:
            raise ValueError(
                f"backend.endpoint must be one of {sorted(ENDPOINTS)}, got {endpoint!r}"
            )
        if n_per_request is not None and n_per_request < 1:
            raise ValueError(f"backend.n_per_request must be >= 1 (or null), got {n_per_request}")
        if schedule not in SCHEDULES:
            raise ValueError(f"backend.schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.model = model or None
        self.endpoint = endpoint
        self.n_per_request = n_per_request
        self.extra_body = dict(extra_body or {})
        self.schedule = schedule
        self._stats_lock = threading.Lock()  # generate may run on several threads at once
        self.pool = ServerPool(
            base_urls, api_key_env=api_key_env, timeout=timeout, concurrency=concurrency,
            retry=RetryPolicy(max_retries, backoff_base, backoff_max), option="backend",
        )
        self.stats: dict[str, float] = {
            "calls": 0, "prompts": 0, "completions": 0, "requests": 0, "topped_up": 0,
            "prompt_tokens": 0, "generated_tokens": 0, "seconds": 0.0,
        }

    def __repr__(self) -> str:
        return (
            f"OpenAIPolicyBackend(model={self.model!r}, endpoint={self.endpoint!r}, {self.pool!r})"
        )

    def close(self) -> None:
        """Close the connections and stop the worker threads."""
        self.pool.close()

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        seeds: Sequence[int] | None = None,
    ) -> list[GenerationOutput]:
        """``params.n`` completions per prompt, in prompt order (see the module docstring).

        Raises:
            ServerError: a request failed for good (one line naming the URL).
            AnswerShapeError: a server answered with no choices, no ``usage`` or another
                shape of JSON (a ServerError too; one line naming the URL).
        """
        if not prompts:
            return []
        start = time.perf_counter()
        rows = row_seeds(len(prompts), params, seeds)
        want = 1 if params.greedy else params.n
        per_request = min(want, self.n_per_request or want)
        slots: list[list[Completion | None]] = [[None] * want for _ in prompts]
        prompt_tokens = [0] * len(prompts)
        pending: dict[Future, tuple[int, int, int]] = {}

        def ask(i: int, first: int, count: int) -> None:
            seed = None
            if rows is not None and not params.greedy:
                seed = rows[i] if first == 0 else derive_seed(rows[i], first)
            body = self._body(prompts[i], params, count, seed)
            pending[self.pool.submit(ENDPOINTS[self.endpoint], body)] = (i, first, count)

        for i in range(len(prompts)):
            for first in range(0, want, per_request):
                ask(i, first, min(per_request, want - first))
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i, first, count = pending.pop(future)
                    url, answer = future.result()
                    got, prompt_tokens[i] = self._parse(url, answer, params)
                    got = got[:count]
                    slots[i][first : first + len(got)] = got
                    if len(got) < count:  # a server that ignores n: ask for the rest
                        with self._stats_lock:
                            self.stats["topped_up"] += 1
                        ask(i, first + len(got), count - len(got))
        except ServerError as err:  # e.g. an answer of the wrong shape: the run is over
            self.pool.abort(err)
            raise
        finally:
            for future in pending:
                future.cancel()
        outputs = []
        for i, found in enumerate(slots):
            completions = tuple(c for c in found if c is not None)
            if params.greedy:
                completions = completions * params.n
            outputs.append(GenerationOutput(completions, prompt_tokens=prompt_tokens[i]))
        self._count(outputs, time.perf_counter() - start)
        return outputs

    # ------------------------------------------------------------------ one request
    def _body(self, prompt: str, params: SamplingParams, n: int, seed: int | None) -> dict:
        body: dict[str, Any] = {
            "n": n,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if self.model:
            body["model"] = self.model
        if self.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if params.stop:
            body["stop"] = list(params.stop)
        if seed is not None:
            body["seed"] = int(seed)
        body.update(self.extra_body)
        return body

    def _parse(
        self, url: str, answer: Mapping[str, Any], params: SamplingParams
    ) -> tuple[list[Completion], int]:
        """The completions of one answer, in choice order, and its prompt token count
        (:class:`AnswerShapeError` naming the URL for an answer of another shape)."""
        with answer_shape(url, answer):
            choices = sorted(answer.get("choices") or [], key=lambda c: c.get("index", 0))
            if not choices:
                raise AnswerShapeError(f"{url}: the answer has no choices")
            usage = answer.get("usage") or {}
            total = usage.get("completion_tokens")
            if total is None:
                raise AnswerShapeError(
                    f"{url}: the answer has no usage.completion_tokens (token budgets need it)"
                )
            texts = [_choice_text(choice, self.endpoint) for choice in choices]
            counts = _token_counts(choices, texts, int(total))
            completions = []
            for choice, text, tokens in zip(choices, texts, counts):
                text, reason = _finish(text, choice, params.stop)
                completions.append(Completion(text=text, num_tokens=tokens, finish_reason=reason))
            return completions, int(usage.get("prompt_tokens") or 0)

    def _count(self, outputs: list[GenerationOutput], seconds: float) -> None:
        with self._stats_lock:
            self._add(outputs, seconds)

    def _add(self, outputs: list[GenerationOutput], seconds: float) -> None:
        self.stats["calls"] += 1
        self.stats["prompts"] += len(outputs)
        self.stats["completions"] += sum(len(o.completions) for o in outputs)
        self.stats["requests"] = self.pool.stats["requests"]
        self.stats["prompt_tokens"] += sum(o.prompt_tokens for o in outputs)
        self.stats["generated_tokens"] += sum(c.num_tokens for o in outputs for c in o.completions)
        self.stats["seconds"] += seconds


def _choice_text(choice: Mapping[str, Any], endpoint: str) -> str:
    if endpoint == "chat":
        return str((choice.get("message") or {}).get("content") or "")
    return str(choice.get("text") or "")


def _token_counts(
    choices: Sequence[Mapping[str, Any]], texts: Sequence[str], total: int
) -> list[int]:
    """Generated tokens of each choice: ``len(token_ids)`` where a choice has them, else the
    answer's total shared out by text length (largest remainders; the sum is ``total``)."""
    if all(isinstance(c.get("token_ids"), list) for c in choices):
        return [len(c["token_ids"]) for c in choices]
    if len(choices) == 1:
        return [total]
    weights = [len(text) for text in texts]
    if not any(weights):
        weights = [1] * len(texts)
    scale = sum(weights)
    shares = [total * w / scale for w in weights]
    counts = [int(share) for share in shares]
    order = sorted(range(len(shares)), key=lambda k: counts[k] - shares[k])
    for k in order[: total - sum(counts)]:
        counts[k] += 1
    return counts


def _finish(text: str, choice: Mapping[str, Any], stops: Sequence[str]) -> tuple[str, str]:
    """(text with its stop string, finish reason) of one choice (module docstring)."""
    reason = choice.get("finish_reason")
    if reason == "length":
        return text, "length"
    stops = [stop for stop in stops if stop]
    if any(text.endswith(stop) for stop in stops):
        return text, "stop"
    reported = [key for key in ("stop_reason", "matched_stop") if key in choice]
    matched = next((choice[key] for key in reported if isinstance(choice[key], str)), None)
    if matched is not None and matched in stops:
        return text + matched, "stop"
    if reason == "stop" and not reported and len(stops) == 1:
        return text + stops[0], "stop"
    return text, "eos"

"""``prm=openai``: the value model (PRM) behind ``vllm serve --runner pooling``.

The trained value model (a sequence-classification model with one output, as
``stage=train_prm`` saves it) served by vLLM's pooling runner answers ``POST /classify``
(vLLM 0.32.0, ``vllm/entrypoints/pooling/classify``)::

    request:  {"model": "<name>", "input": ["<text>", ...], "use_activation": false}
    answer:   {"data": [{"index": 0, "label": ..., "probs": [<value>], "num_classes": 1}, ...],
               "usage": {...}}

``use_activation: false`` asks for the raw regression output (vLLM's default applies a
sigmoid to a one-label classifier); the value is read at the last token (vLLM's pooler for
decoder classifiers), and clamped to [0, 1], as :class:`~rest_mcts.backends.hf_scorer.HFValueScorer`
does. Each input is :func:`rest_mcts.prompts.prm_input` of the (question, steps) pair, the
text the HF scorer tokenises (the server adds the special tokens, ``add_special_tokens``).
Items go in requests of at most ``max_batch_size`` inputs, side by side, round-robin over
``base_urls`` (server roots: the path is ``/classify``), with the retries of
:mod:`rest_mcts.backends.openai_client`.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

from rest_mcts.backends.openai_client import (
    AnswerShapeError,
    RetryPolicy,
    ServerError,
    ServerPool,
    answer_shape,
)
from rest_mcts.backends.registry import Capabilities, register_scorer
from rest_mcts.prompts import prm_input


@register_scorer("openai", Capabilities(needs_model=False, must_close=True))
class OpenAIValueScorer:
    """A :class:`~rest_mcts.backends.base.ValueScorer` on a served classification model.

    Attributes:
        pool: the servers.
        model: the ``model`` field of every request (None: left out).
        path: the endpoint path (``/classify``).
        max_batch_size: most inputs per request.
        stats: running totals: ``calls``, ``items``, ``requests``, ``prompt_tokens``
            (``usage.prompt_tokens``) and ``seconds``.
    """

    def __init__(
        self,
        base_urls: str | Sequence[str] = "http://127.0.0.1:8001",
        model: str | None = None,
        path: str = "/classify",
        api_key_env: str | None = "OPENAI_API_KEY",
        max_batch_size: int = 64,
        concurrency: int = 8,
        timeout: float = 300.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        extra_body: Mapping[str, Any] | None = None,
        model_path: str | None = None,
    ) -> None:
        """Args:
            base_urls: server root URL(s) (no ``/v1``), served round-robin.
            model: the served model's name; None leaves the field out.
            path: the classification endpoint.
            api_key_env: NAME of the environment variable holding the API key.
            max_batch_size: most inputs per request.
            concurrency: most requests in flight at once.
            timeout: seconds a request may take before it is retried.
            max_retries: retries after HTTP 408/429/5xx or a transport error.
            backoff_base: seconds before the first retry (doubling after each).
            backoff_max: longest wait between retries.
            extra_body: more request fields (e.g. ``truncate_prompt_tokens``).
            model_path: ignored (a configured scorer may be handed one).
        """
        if max_batch_size < 1:
            raise ValueError(f"prm.scorer.max_batch_size must be >= 1, got {max_batch_size}")
        if not path.startswith("/"):
            raise ValueError(f"prm.scorer.path must start with '/', got {path!r}")
        self.model = model or None
        self.path = path
        self.max_batch_size = max_batch_size
        self.extra_body = dict(extra_body or {})
        self.pool = ServerPool(
            base_urls, api_key_env=api_key_env, timeout=timeout, concurrency=concurrency,
            retry=RetryPolicy(max_retries, backoff_base, backoff_max), option="prm.scorer",
        )
        self.stats: dict[str, float] = {
            "calls": 0, "items": 0, "requests": 0, "prompt_tokens": 0, "seconds": 0.0,
        }

    def __repr__(self) -> str:
        return f"OpenAIValueScorer(model={self.model!r}, path={self.path!r}, {self.pool!r})"

    def close(self) -> None:
        """Close the connections and stop the worker threads."""
        self.pool.close()

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """Values in [0, 1] for each (question, steps so far) pair, in order.

        Raises:
            ServerError: a request failed for good, or an answer does not hold one value
                per input (one line naming the URL).
        """
        if not items:
            return []
        start = time.perf_counter()
        texts = [prm_input(question, steps) for question, steps in items]
        chunks = [
            texts[first : first + self.max_batch_size]
            for first in range(0, len(texts), self.max_batch_size)
        ]
        futures = [self.pool.submit(self.path, self._body(chunk)) for chunk in chunks]
        values: list[float] = []
        try:
            for chunk, future in zip(chunks, futures):
                url, answer = future.result()
                values.extend(self._parse(url, answer, len(chunk)))
        except ServerError as err:  # e.g. an answer of the wrong shape: the run is over
            self.pool.abort(err)
            raise
        finally:
            for future in futures:
                future.cancel()
        self.stats["calls"] += 1
        self.stats["items"] += len(items)
        self.stats["requests"] = self.pool.stats["requests"]
        self.stats["seconds"] += time.perf_counter() - start
        return values

    def _body(self, texts: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"input": texts, "use_activation": False}
        if self.model:
            body["model"] = self.model
        body.update(self.extra_body)
        return body

    def _parse(self, url: str, answer: Mapping[str, Any], expected: int) -> list[float]:
        with answer_shape(url, answer):
            data = sorted(answer.get("data") or [], key=lambda row: row.get("index", 0))
            if len(data) != expected:
                raise AnswerShapeError(f"{url}: {len(data)} values for {expected} inputs")
            values = []
            for row in data:
                probs = row.get("probs")
                if not isinstance(probs, list) or len(probs) != 1:
                    count = len(probs) if isinstance(probs, list) else 0
                    raise AnswerShapeError(
                        f"{url}: the model has {count} outputs; a PRM (value model) has one"
                    )
                values.append(min(1.0, max(0.0, float(probs[0]))))
            usage = answer.get("usage") or {}
            self.stats["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            return values

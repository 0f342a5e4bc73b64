"""The two small protocols that every model backend implements.

A *policy backend* turns a batch of prompts into completions; a *value scorer* turns a
batch of (question, partial solution) pairs into values in [0, 1]. Search code talks only
to these protocols, so an HF model on a CPU, a vLLM engine on a GPU or an
OpenAI-compatible server are interchangeable (`backend=hf|vllm|openai`).

Seeding. A sampled completion is a function of (model, prompt, settings, the prompt's *row
seed*, the sample's index among the prompt's ``n``) and of nothing else: not of the other
prompts in the call, their lengths (padding), the backend's batch size or chunking, or the
order of calls. A caller gives the row seeds either one per prompt
(``generate(prompts, params, seeds=[...])``, what the search engine does: it derives them
from (run seed, question, request index, prompt index)) or through the single
``SamplingParams.seed`` of the call, from which prompt ``i`` gets ``derive_seed(seed, i)``
(:func:`row_seeds`). With neither, the seeds come from the backend's running generator.
Greedy decoding ignores seeds. Backends whose engine takes one seed per request (vLLM's and
OpenAI's ``seed``) pass the row seed of each prompt; the HF backend draws each sample's
randomness from a counter-based stream keyed by (row seed, sample index, step).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

FINISH_REASONS = ("stop", "eos", "length")


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings for one batched generation call.

    Attributes:
        n: completions per prompt (``num_return_sequences`` / vLLM ``n``).
        temperature: 0 means greedy decoding.
        top_p: nucleus sampling mass (1.0 = off). No top-k is applied.
        max_new_tokens: hard cap on generated tokens per completion.
        stop: stop strings; a completion ends right after the first one it produces, and
            the stop string is kept at the end of the text.
        seed: seed of the whole call (prompt ``i`` samples with ``derive_seed(seed, i)``);
            ignored when ``generate`` is given per-prompt ``seeds``; ``None`` (and no
            ``seeds``): the backend's running generator.
    """

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class Completion:
    """One generated continuation.

    Attributes:
        text: the generated text (stop string included when it ended on one; no prompt,
            no special tokens).
        num_tokens: generated tokens that ``text`` stands for (the policy-token cost).
        finish_reason: ``"stop"`` (a stop string), ``"eos"`` (end-of-sequence token) or
            ``"length"`` (``max_new_tokens`` reached).
    """

    text: str
    num_tokens: int
    finish_reason: str

    def __post_init__(self) -> None:
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"Completion.finish_reason must be one of {FINISH_REASONS}")


@dataclass(frozen=True)
class GenerationOutput:
    """The completions for one prompt, plus the prompt's length in tokens."""

    completions: tuple[Completion, ...]
    prompt_tokens: int


class PolicyBackend(Protocol):
    """Generates continuations for many prompts in one call."""

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        seeds: Sequence[int] | None = None,
    ) -> list[GenerationOutput]:
        """Return one :class:`GenerationOutput` (``params.n`` completions) per prompt, in order.

        Args:
            prompts: prompt texts.
            params: sampling settings shared by every prompt.
            seeds: one row seed per prompt (overrides ``params.seed``); the ``n`` samples of
                prompt ``i`` depend on ``seeds[i]`` alone, whatever else is in the call.
        """
        ...


class ValueScorer(Protocol):
    """Scores partial solutions: the process reward / value model (PRM) of the paper."""

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """Values in [0, 1] for each (question text, steps so far) pair, in order."""
        ...


def greedy_texts(backend: PolicyBackend, max_new_tokens: int = 4) -> Callable[[list[str]], list[str]]:
    """A plain ``generate`` callable on ``backend``: prompt texts -> one greedy completion text
    each (what :class:`~rest_mcts.answers.judge.LLMJudge` takes).

    Args:
        backend: any policy backend.
        max_new_tokens: tokens each answer may have.
    """
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens)

    def generate(prompts: list[str]) -> list[str]:
        return [out.completions[0].text for out in backend.generate(list(prompts), params)]

    return generate


def derive_seed(*parts: int | str) -> int:
    """A reproducible 31-bit seed from ``parts`` (ints and strings; order matters).

    Used for the engine's request seeds ``(run seed, question key, request index)`` and for
    row seeds ``(request or call seed, prompt index)``.
    """
    text = json.dumps(["rest-mcts", *parts], separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def row_seeds(
    num_prompts: int, params: SamplingParams, seeds: Sequence[int] | None
) -> list[int] | None:
    """The row seed of each prompt of a call: ``seeds`` if given, else one derived from
    ``params.seed`` per prompt index, else None (the backend's running generator).

    Raises:
        ValueError: ``seeds`` does not have one seed per prompt.
    """
    if seeds is not None:
        if len(seeds) != num_prompts:
            raise ValueError(f"got {len(seeds)} seeds for {num_prompts} prompts")
        return [int(seed) for seed in seeds]
    if params.seed is not None:
        return [derive_seed(params.seed, index) for index in range(num_prompts)]
    return None

"""A scripted policy backend (``backend=mock``): searches run in seconds, with no model.

It reads the prompt and writes plausible steps:

* **Countdown** (the prompt's first line is ``Make <target> from <n1> <n2> ...``): it
  replays the steps already in the prompt, then writes a random legal step on the numbers
  left (``Step k: a op b = c (left: ...)``); with probability ``wrong_rate`` the step's
  arithmetic is off by one (an illegal step). A whole solution goes on until the path is
  finished (or a wrong step is written).
* **Text worlds** (any other prompt): ``Step k: ...`` lines, ``k`` one past the highest
  ``Step j:`` in the prompt; from step 2 on, with probability ``answer_rate`` (always at
  step ``max_steps``) the line is ``Step k: The answer is N.`` with ``N`` a number from the
  prompt (or a small random one).

Like a real backend it stops at the first stop string (kept), cuts at ``max_new_tokens``
(``finish_reason="length"``) and ends otherwise with ``"eos"``; one token is one character.
Greedy decoding (``temperature == 0``) depends on the prompt only and repeats one completion
``n`` times. Sampling draws completion ``j`` of a prompt from a generator seeded by
(row seed, ``j``, prompt): the row seed of prompt ``i`` follows
:func:`rest_mcts.backends.base.row_seeds` (``seeds[i]``, else one derived from
``params.seed`` and ``i``), else the next draw of the backend's own generator (``seed``).
"""

from __future__ import annotations

import random
import re
import time
from typing import Sequence

from rest_mcts.backends.base import Completion, GenerationOutput, SamplingParams, row_seeds
from rest_mcts.backends.registry import Capabilities, register_policy
from rest_mcts.worlds.countdown import apply_move, format_step, legal_moves, parse_question

_COUNTDOWN = re.compile(r"\s*Make\s+\d+\s+from\s+\d+(?:\s+\d+)+\s*")
_LEFT = re.compile(r"\(\s*left\s*:\s*([\d\s]*)\)")
_STEP_NUMBER = re.compile(r"Step\s*(\d+)\s*[:.]", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])\d{1,6}(?![\w.])")
_FILLER = (
    "Let me restate what is given.",
    "Write down the quantities we need.",
    "Combine the two quantities found so far.",
    "Check the intermediate result.",
)


@register_policy("mock", Capabilities(needs_model=False))
class MockPolicyBackend:
    """A scripted :class:`~rest_mcts.backends.base.PolicyBackend` (see the module docstring).

    Attributes:
        stats: running totals: ``calls``, ``prompts``, ``completions``, ``prompt_tokens``,
            ``generated_tokens`` and ``seconds`` (one token = one character).
    """

    def __init__(
        self,
        seed: int = 0,
        wrong_rate: float = 0.2,
        answer_rate: float = 0.4,
        max_steps: int = 4,
        model_path: str | None = None,
    ) -> None:
        """Args:
            seed: seeds the generator used when a call gives no seed.
            wrong_rate: chance that a Countdown step has wrong arithmetic.
            answer_rate: chance that a text step (from step 2 on) states the answer.
            max_steps: a text solution states its answer at this step at the latest.
            model_path: ignored (a configured backend may be handed one).
        """
        if not 0.0 <= wrong_rate <= 1.0:
            raise ValueError(f"wrong_rate must be in [0, 1], got {wrong_rate}")
        if not 0.0 <= answer_rate <= 1.0:
            raise ValueError(f"answer_rate must be in [0, 1], got {answer_rate}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.wrong_rate = wrong_rate
        self.answer_rate = answer_rate
        self.max_steps = max_steps
        self._rng = random.Random(seed)
        self.stats: dict[str, float] = {
            "calls": 0, "prompts": 0, "completions": 0,
            "prompt_tokens": 0, "generated_tokens": 0, "seconds": 0.0,
        }

    def generate(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        seeds: Sequence[int] | None = None,
    ) -> list[GenerationOutput]:
        """``params.n`` scripted completions per prompt, in prompt order.

        Args:
            prompts: prompt texts.
            params: sampling settings (``n``, ``temperature``, ``max_new_tokens``, ``stop``).
            seeds: one seed per prompt (sampling only), or None.
        """
        rows = row_seeds(len(prompts), params, seeds)
        start = time.perf_counter()
        outputs = []
        for i, prompt in enumerate(prompts):
            if params.greedy:
                one = self._complete(prompt, random.Random(f"greedy|{prompt}"), params)
                completions = (one,) * params.n
            else:
                row = rows[i] if rows is not None else self._rng.getrandbits(64)
                completions = tuple(
                    self._complete(prompt, random.Random(f"{row}|{j}|{prompt}"), params)
                    for j in range(params.n)
                )
            outputs.append(GenerationOutput(completions, prompt_tokens=len(prompt)))
        self.stats["calls"] += 1
        self.stats["prompts"] += len(prompts)
        self.stats["completions"] += sum(len(o.completions) for o in outputs)
        self.stats["prompt_tokens"] += sum(o.prompt_tokens for o in outputs)
        self.stats["generated_tokens"] += sum(c.num_tokens for o in outputs for c in o.completions)
        self.stats["seconds"] += time.perf_counter() - start
        return outputs

    # ----- one completion ---------------------------------------------------------------

    def _complete(self, prompt: str, rng: random.Random, params: SamplingParams) -> Completion:
        lines = self._countdown(prompt, rng) if _is_countdown(prompt) else self._text(prompt, rng)
        text = "".join(lines)
        cut = _first_stop_end(text, params.stop)
        reason = "eos"
        if cut is not None:
            text, reason = text[:cut], "stop"
        if len(text) > params.max_new_tokens:
            text, reason = text[: params.max_new_tokens], "length"
        return Completion(text=text, num_tokens=len(text), finish_reason=reason)

    def _countdown(self, prompt: str, rng: random.Random) -> list[str]:
        """Steps from the state the prompt's steps reach until the path is finished."""
        first, _, rest = prompt.partition("\n")
        numbers, target = parse_question(first)
        done = [line for line in rest.splitlines() if line.strip()]
        state = tuple(numbers)
        if done:  # the last step's `left` list is the state (the search extends legal paths)
            match = _LEFT.search(done[-1])
            state = tuple(int(x) for x in match.group(1).split()) if match else ()
        lines: list[str] = []
        k = len(done)
        while len(state) > 1:
            moves = legal_moves(state)
            if not moves:
                break
            k += 1
            a, op, b, result = rng.choice(moves)
            left = apply_move(state, (a, op, b, result))
            if rng.random() < self.wrong_rate:  # off-by-one arithmetic: an illegal step
                wrong = result + 1
                lines.append(format_step(k, a, op, b, wrong, (wrong,) + left[1:]))
                break
            lines.append(format_step(k, a, op, b, result, left))
            state = left
            if result == target:
                break
        return lines or [f"Step {k + 1}: no move left\n"]  # an illegal step

    def _text(self, prompt: str, rng: random.Random) -> list[str]:
        """``Step k: ...`` lines until one states ``The answer is N.``"""
        done = [int(m) for m in _STEP_NUMBER.findall(prompt)]
        k = max(done, default=0)
        candidates = _NUMBER.findall(prompt) or [str(rng.randint(0, 99))]
        lines: list[str] = []
        while True:
            k += 1
            if k >= self.max_steps or (k > 1 and rng.random() < self.answer_rate):
                lines.append(f"Step {k}: The answer is {rng.choice(candidates)}.\n")
                return lines
            lines.append(f"Step {k}: {rng.choice(_FILLER)}\n")


def _is_countdown(prompt: str) -> bool:
    return _COUNTDOWN.fullmatch(prompt.partition("\n")[0]) is not None


def _first_stop_end(text: str, stops: Sequence[str]) -> int | None:
    """End (exclusive) of the earliest stop string in ``text``, or None."""
    ends = [text.find(stop) + len(stop) for stop in stops if stop and stop in text]
    return min(ends) if ends else None

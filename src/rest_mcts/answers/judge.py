"""An optional LLM judge of answer equivalence (the paper's verification prompt).

Used only when ``verify.judge`` is configured: the rule-based checker decides first, and the
judge is asked only about pairs the rules call unequal. The judge must answer ``1`` (equal)
or ``0``; any other answer counts as "not equal" and is logged.

The judge takes a plain ``generate`` callable (prompt texts -> one greedy answer text each),
not a backend, so this module knows nothing of the backends;
:func:`rest_mcts.backends.base.greedy_texts` turns a policy backend into one.
"""

from __future__ import annotations

import logging
from typing import Callable

logger = logging.getLogger(__name__)

#: prompt texts -> one answer text per prompt, in order (greedy decoding expected)
GenerateTexts = Callable[[list[str]], list[str]]


def parse_judgement(text: str) -> bool | None:
    """``True`` for an answer ``1``, ``False`` for ``0``, None for anything else (strict:
    the answer, stripped of whitespace and a final full stop, must be that one character)."""
    answer = text.strip().rstrip(".").strip()
    if answer == "1":
        return True
    if answer == "0":
        return False
    return None


class LLMJudge:
    """Asks a language model whether a solution reaches the gold answer.

    Args:
        generate: prompt texts -> one answer text per prompt (e.g.
            ``greedy_texts(backend, max_new_tokens=4)``; the answer is one character).
        prompts: a :class:`~rest_mcts.prompting.PromptFormat` for the judge model (renders
            the ``verify`` template with its chat template).
    """

    def __init__(self, generate: GenerateTexts, prompts) -> None:
        if not callable(generate):
            raise TypeError(
                "LLMJudge takes a generate callable (prompts -> texts); wrap a policy backend "
                "with rest_mcts.backends.base.greedy_texts"
            )
        self.generate = generate
        self.prompts = prompts
        self.calls = 0

    def equal(self, solution: str, gold: str) -> bool:
        """The judge's verdict; an unparseable answer is False."""
        (text,) = self.generate([self.prompts.verify_prompt(solution, gold)])
        self.calls += 1
        verdict = parse_judgement(text)
        if verdict is None:
            logger.warning("LLM judge answered %r (expected 0 or 1): counted as not equal", text[:40])
            return False
        return verdict

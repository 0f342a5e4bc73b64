"""An optional LLM judge of answer equivalence (the paper's verification prompt).

Used only when ``verify.judge`` names a policy backend: the rule-based checker decides
first, and the judge is asked only about pairs the rules call unequal. The judge must answer
``1`` (equal) or ``0``; any other answer counts as "not equal" and is logged.
"""

from __future__ import annotations

import logging

from rest_mcts.backends.base import SamplingParams

logger = logging.getLogger(__name__)


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
    """Asks a policy backend whether a solution reaches the gold answer.

    Args:
        backend: any :class:`~rest_mcts.backends.base.PolicyBackend`.
        prompts: a :class:`~rest_mcts.prompting.PromptFormat` for the judge model (renders
            the ``verify`` template with its chat template).
        max_new_tokens: tokens the judge may write (the answer is one character).
    """

    def __init__(self, backend, prompts, max_new_tokens: int = 4) -> None:
        self.backend = backend
        self.prompts = prompts
        self.params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens)
        self.calls = 0

    def equal(self, solution: str, gold: str) -> bool:
        """The judge's verdict (greedy); an unparseable answer is False."""
        (out,) = self.backend.generate([self.prompts.verify_prompt(solution, gold)], self.params)
        self.calls += 1
        verdict = parse_judgement(out.completions[0].text)
        if verdict is None:
            logger.warning("LLM judge answered %r (expected 0 or 1): counted as not equal",
                           out.completions[0].text[:40])
            return False
        return verdict

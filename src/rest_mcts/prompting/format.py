"""Prompts for natural-language worlds, rendered with the model's own chat template.

A policy prompt is one user message (a template filled with the question) followed by the
start of the assistant's answer, so the model continues the answer:

* ``style="continue"`` (default): the user message is the ``cot`` template; the assistant's
  answer so far is the steps already taken, one ``Step i: ...`` line each, then
  ``Step k:`` for the step to write. The policy writes the rest of that line, and the search
  cuts it at the newline. Every prompt of a question shares the prefix up to its steps.
* ``style="propose"``: the user message is the paper's next-step expansion template with the
  existing steps inside it; the assistant's answer starts ``Next step:``.
* ``style="lines"``: the user message is the question as it is; the assistant's answer so far
  is the steps as they are, one line each. For worlds whose steps carry their own format
  (Countdown's ``Step k: a + b = c (left: ...)``): the plain format inside a chat template.

A self-critic hint (the critic's ``Analysis: ...``, MCTS* with ``search.self_critic=llm``)
enters the expansion prompt: ``propose`` uses the paper's expansion-with-analysis template
(``expansion_hint``, slots ``{question}``, ``{steps}``, ``{hint}``); ``continue`` adds the
``hint`` template's line to the end of the user message.

Chat models (``chat_template`` true, or ``auto`` when the tokenizer has one) are rendered by
``tokenizer.apply_chat_template(messages, add_generation_prompt=True)``: the special tokens
are the tokenizer's own, never written here. A beginning-of-sequence token that the template
writes is dropped from the text when the tokenizer adds it again on encoding (so it is not
doubled). Models without a chat template use a plain-text template (``plain_template``, e.g.
``metamath_alpaca``) with ``{instruction}`` where the user message goes.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from rest_mcts.data.steps import format_step
from rest_mcts.prompting.templates import fill, load_template

logger = logging.getLogger(__name__)

STYLES = ("continue", "propose", "lines")
NO_STEPS = "(none)"


def _as_bool_or_auto(value: Any) -> bool | str:
    if isinstance(value, str) and value.lower() == "auto":
        return "auto"
    if isinstance(value, str):
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"chat_template must be true, false or auto, got {value!r}")
    return bool(value)


class PromptFormat:
    """Renders policy, self-critic and verification prompts for one model.

    Args:
        tokenizer: a tokenizer, or the model folder / GGUF file / hub id to load it from
            (lazily, on first use); None for models without one (plain templates only).
        chat_template: ``true`` (use the tokenizer's chat template; error if it has none),
            ``false`` (plain template) or ``auto`` (the chat template when there is one).
        style: ``continue``, ``propose`` or ``lines`` (see the module docstring).
        system: optional system message (chat models only), e.g. Qwen2.5-Math's
            "Please reason step by step, and put your final answer within \\boxed{}.".
        plain_template: template for models rendered without a chat template.
        cot_template, expansion_template, expansion_hint_template, hint_template,
            critic_template, verify_template: template names or files
            (``rest_mcts/prompt_templates``).
        trust_remote_code: passed when loading the tokenizer.
        revision: hub revision of a hub id ``tokenizer`` (``model.revision``); None: ``main``.
    """

    def __init__(
        self,
        tokenizer: Any = None,
        chat_template: bool | str = "auto",
        style: str = "continue",
        system: str | None = None,
        plain_template: str = "plain",
        cot_template: str = "cot",
        expansion_template: str = "expansion",
        expansion_hint_template: str = "expansion_hint",
        hint_template: str = "hint",
        critic_template: str = "critic",
        verify_template: str = "verify",
        trust_remote_code: bool = False,
        revision: str | None = None,
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        self.chat_template = _as_bool_or_auto(chat_template)
        self.style = style
        self.system = system
        self.trust_remote_code = trust_remote_code
        self.revision = revision
        self._tokenizer_source = tokenizer
        self._tokenizer = None if tokenizer is None or isinstance(tokenizer, str) else tokenizer
        self.templates = {
            "plain": load_template(plain_template),
            "cot": load_template(cot_template),
            "expansion": load_template(expansion_template),
            "expansion_hint": load_template(expansion_hint_template),
            "hint": load_template(hint_template),
            "critic": load_template(critic_template),
            "verify": load_template(verify_template),
        }

    # ------------------------------------------------------------------ tokenizer
    @property
    def tokenizer(self):
        """The tokenizer (loaded on first use from the folder, GGUF file or hub id given)."""
        if self._tokenizer is None and isinstance(self._tokenizer_source, str):
            from rest_mcts.models.factory import load_tokenizer

            self._tokenizer = load_tokenizer(
                self._tokenizer_source, trust_remote_code=self.trust_remote_code,
                revision=self.revision,
            )
        return self._tokenizer

    def uses_chat_template(self) -> bool:
        """Whether prompts go through ``apply_chat_template``.

        Raises:
            ValueError: ``chat_template=true`` but the tokenizer has no chat template.
        """
        if self.chat_template is False:
            return False
        tokenizer = self.tokenizer
        has_template = tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))
        if self.chat_template is True and not has_template:
            raise ValueError("chat_template=true but the model's tokenizer has no chat template")
        return has_template

    # ------------------------------------------------------------------ rendering
    def render(self, user: str, assistant_prefix: str = "") -> str:
        """One user turn and the start of the assistant's answer, as model input text."""
        if self.uses_chat_template():
            messages = [{"role": "user", "content": user}]
            if self.system:
                messages.insert(0, {"role": "system", "content": self.system})
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            text = self._drop_doubled_bos(text)
        else:
            text = fill(self.templates["plain"], instruction=user).rstrip() + "\n"
        return text + assistant_prefix

    def _drop_doubled_bos(self, text: str) -> str:
        bos = getattr(self.tokenizer, "bos_token", None)
        if not bos or not text.startswith(bos):
            return text
        ids = self.tokenizer("x")["input_ids"]
        adds_bos = bool(ids) and ids[0] == self.tokenizer.bos_token_id
        return text[len(bos):] if adds_bos else text

    @staticmethod
    def steps_block(steps: Sequence[str]) -> str:
        """The steps as ``Step i: ...`` lines (``(none)`` when there are none)."""
        if not steps:
            return NO_STEPS
        return "".join(format_step(i, s) for i, s in enumerate(steps, start=1)).rstrip("\n")

    def policy_prompt(
        self, question: str, steps: Sequence[str] = (), hint: str | None = None
    ) -> str:
        """Prompt for the next step (or, with a stop-free budget, the rest of the solution).

        Args:
            question: the problem text.
            steps: the steps so far.
            hint: the self-critic's analysis of ``steps`` (None: no hint), see the module
                docstring for where it goes.
        """
        hint = hint.strip() if hint else None
        if self.style == "lines":
            user = question.rstrip("\n")
            if hint:
                user += "\n" + fill(self.templates["hint"], hint=hint).rstrip()
            return self.render(user, "".join(s if s.endswith("\n") else s + "\n" for s in steps))
        if self.style == "propose":
            slots = {"question": question, "steps": self.steps_block(steps)}
            if hint:
                user = fill(self.templates["expansion_hint"], **slots, hint=hint)
            else:
                user = fill(self.templates["expansion"], **slots)
            return self.render(user.rstrip(), "Next step:")
        user = fill(self.templates["cot"], question=question).rstrip()
        if hint:
            user += "\n" + fill(self.templates["hint"], hint=hint).rstrip()
        done = "".join(format_step(i, s) for i, s in enumerate(steps, start=1))
        return self.render(user, done + f"Step {len(steps) + 1}:")

    def critic_prompt(self, question: str, steps: Sequence[str]) -> str:
        """The self-critic prompt: 'Problem solved' or 'Analysis: <hint>'."""
        user = fill(self.templates["critic"], question=question, steps=self.steps_block(steps))
        return self.render(user.rstrip())

    def verify_prompt(self, solution: str, gold: str) -> str:
        """The answer-verification prompt for an LLM judge ('1' equal, '0' not)."""
        return self.render(fill(self.templates["verify"], solution=solution, gold=gold).rstrip())

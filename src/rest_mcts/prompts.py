"""The text formats shared by generation, scoring and training (one function each).

Every place that turns a question and steps into model input goes through here, so the
policy sees at training time exactly what it sees at search time, and the PRM likewise.
"""

from __future__ import annotations

from typing import Any, Sequence


def policy_prompt(
    question: str, steps: Sequence[str] = (), fmt: Any = None, hint: str | None = None
) -> str:
    """Prompt for the policy: the question on its own line, then the steps so far.

    Each step is one line ending in a newline, so the next step is generated from the start
    of a fresh line and a step ends at the newline stop string.

    With ``fmt`` (a world's :class:`~rest_mcts.prompting.PromptFormat`, see
    :func:`prompt_format`), the prompt is the format's instead: the paper's templates through
    the model's chat template (natural-language worlds). Countdown has none: plain format.
    ``hint`` (a self-critic's analysis) needs a format: the plain format has no place for it.
    """
    if fmt is not None:
        return fmt.policy_prompt(question, steps, hint=hint) if hint else fmt.policy_prompt(
            question, steps
        )
    if hint:
        raise ValueError("a self-critic hint needs a prompt format (natural-language worlds)")
    return question.rstrip("\n") + "\n" + "".join(_as_line(s) for s in steps)


def prompt_format(world: Any) -> Any:
    """The world's prompt format (``world.prompt_format``), or None for the plain format."""
    return getattr(world, "prompt_format", None)


def prm_input(question: str, steps: Sequence[str]) -> str:
    """Input of the value model (PRM) for the partial solution p_k = [s_1..s_k]."""
    return policy_prompt(question, steps)


def _as_line(step: str) -> str:
    return step if step.endswith("\n") else step + "\n"


def split_steps(text: str) -> list[str]:
    """Split generated solution text into steps (one per line, newline kept).

    Blank lines are dropped; a last line without a newline (cut by a token limit) is kept as
    a step, so that a truncated step is judged (and found illegal) rather than ignored.
    """
    return [line for line in text.splitlines(keepends=True) if line.strip()]


def first_line(text: str) -> str:
    """A proposed step: the text up to and including its first newline (all of it if none)."""
    head, newline, _ = text.partition("\n")
    return head + newline

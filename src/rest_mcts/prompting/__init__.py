"""The paper's prompts for natural-language tasks, rendered with the model's chat template.

* :mod:`templates`: the prompt files in ``rest_mcts/prompt_templates/`` and their filling;
* :mod:`format`: :class:`PromptFormat`, which turns (question, steps) into a policy prompt,
  a self-critic prompt or a verification prompt, through ``tokenizer.apply_chat_template``
  for chat models (or a plain-text template for base models such as MetaMath);
* :mod:`critic`: strict parsing of the self-critic's answer.

Countdown does not use this package: its plain format lives in ``rest_mcts.prompts``.
"""

from rest_mcts.prompting.critic import CriticVerdict, parse_critic
from rest_mcts.prompting.format import PromptFormat
from rest_mcts.prompting.templates import fill, load_template

__all__ = ["CriticVerdict", "PromptFormat", "fill", "load_template", "parse_critic"]

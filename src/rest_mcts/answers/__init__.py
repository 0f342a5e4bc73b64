"""Final answers: extraction from solution text and equivalence checking by answer type.

* :mod:`~rest_mcts.answers.extract` finds the final answer a solution states
  (``\\boxed{...}``, GSM8K's ``#### n``, "The answer is ...", a choice letter);
* :mod:`~rest_mcts.answers.check` decides whether two answers are equal for one answer type
  (``math``: math-verify, ``gsm8k``/``numeric``: numbers with a relative tolerance,
  ``choice``: letters);
* :mod:`~rest_mcts.answers.judge` asks an LLM with the paper's verification prompt (optional);
* :mod:`~rest_mcts.answers.rewrite` writes a LaTeX answer differently but equivalently (for
  measuring the checker).
"""

from rest_mcts.answers.check import ANSWER_TYPES, AnswerChecker, answers_equal
from rest_mcts.answers.extract import extract_final_answer, last_boxed

__all__ = ["ANSWER_TYPES", "AnswerChecker", "answers_equal", "extract_final_answer", "last_boxed"]

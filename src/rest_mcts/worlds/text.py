"""Natural-language reasoning worlds (MATH, GSM8K, SciBench, GPQA, ...) backed by a dataset.

Step convention (one for all text worlds): a step is one line; the policy writes it after a
``Step k:`` prefix (see :mod:`rest_mcts.prompting.format`), and the prefix is optional in
the step text. A step is *legal* when it has some text besides the prefix and comes before
any finished step. A path is *finished* by the first step that states a final answer, by
one of the conventions of :func:`rest_mcts.answers.extract.extract_final_answer`:
``\\boxed{...}``, ``#### <n>`` or ``The answer is ...``; that answer is the path's answer.

The gold answer is used only by :meth:`TextReasoningWorld.is_correct` (the verifier), with
the answer checker for the dataset's answer type (math-verify for ``math``, numbers for
``gsm8k``/``numeric``, letters for ``choice``) and, if configured, an LLM judge.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from rest_mcts.answers.check import DEFAULT_REL_TOL, AnswerChecker
from rest_mcts.answers.extract import extract_final_answer
from rest_mcts.data.load import DatasetSpec, load_records
from rest_mcts.data.records import ProblemRecord
from rest_mcts.data.steps import strip_step_prefix
from rest_mcts.worlds.base import Problem, Question, StepCheck

logger = logging.getLogger(__name__)

_EMPTY = StepCheck(legal=False, error="empty step")
_AFTER_FINISH = StepCheck(legal=False, error="step after the final answer")


class TextReasoningWorld:
    """A dataset of natural-language problems (implements :class:`~rest_mcts.worlds.base.World`).

    Args:
        name: the world's (dataset's) name.
        dataset: the ``DatasetSpec`` fields (``format``, ``answer_type``, ``path`` or
            ``hub_id``, ``split``, ``shard``, ``num_shards``, ``limit``, ...).
        prompts: the :class:`~rest_mcts.prompting.PromptFormat` of the policy model; search
            renders its prompts through it (``prompt_format``).
        rel_tol: relative tolerance of ``numeric`` answers.
        judge: an optional LLM judge's generate callable, prompt texts -> answer texts
            (``verify.judge``; e.g. ``rest_mcts.backends.base.greedy_texts`` on a backend).
        judge_prompts: the judge model's PromptFormat (default: ``prompts``).
    """

    def __init__(
        self,
        *,
        name: str,
        dataset: Mapping[str, Any],
        prompts=None,
        rel_tol: float = DEFAULT_REL_TOL,
        judge=None,
        judge_prompts=None,
    ) -> None:
        spec = dict(dataset)
        spec.setdefault("name", name)
        if "hub_configs" in spec and spec["hub_configs"] is not None:
            spec["hub_configs"] = tuple(spec["hub_configs"])
        self.name = name
        self.spec = DatasetSpec(**spec)
        self.prompt_format = prompts
        llm_judge = None
        if judge is not None:
            from rest_mcts.answers.judge import LLMJudge

            llm_judge = LLMJudge(judge, judge_prompts or prompts)
        self.checker = AnswerChecker(self.spec.answer_type, rel_tol=rel_tol, judge=llm_judge)
        self._records: dict[tuple[str, int], list[ProblemRecord]] = {}
        self._types: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"TextReasoningWorld(name={self.name!r}, spec={self.spec!r})"

    # --- problems -----------------------------------------------------------------------
    def records(self, split: str, seed: int = 0) -> list[ProblemRecord]:
        """The selected records of a split (read once per split and seed)."""
        key = (split, seed)
        if key not in self._records:
            records = load_records(self.spec, split, seed=seed)
            self._records[key] = records
            self._types.update({r.id: r.answer_type for r in records})
        return self._records[key]

    def generate(self, n: int, seed: int, split: str = "train") -> list[Problem]:
        """The first ``n`` selected problems of ``split`` (shuffled by ``seed`` if configured).

        Raises:
            ValueError: the split holds fewer than ``n`` problems.
        """
        records = self.records(split, seed)
        if n > len(records):
            raise ValueError(f"{self.name}: {n} problems asked, the {split} selection has {len(records)}")
        return [r.to_problem() for r in records[:n]]

    def count_problems(self, split: str, seed: int = 0) -> int:
        """How many problems the selection of ``split`` holds."""
        return len(self.records(split, seed))

    # --- steps -----------------------------------------------------------------------------
    def check_step(self, question: Question | str, steps: Sequence[str], step: str) -> StepCheck:
        """Legal when non-empty (besides a ``Step k:`` prefix) and no earlier step finished;
        finished when the step states a final answer (never needs the gold answer)."""
        prior = self.check_path(question, steps)
        if not prior.legal:
            return StepCheck(legal=False, error=f"earlier step illegal: {prior.error}")
        if prior.finished:
            return _AFTER_FINISH
        return self._check_one(step)

    @staticmethod
    def _check_one(step: str) -> StepCheck:
        body = strip_step_prefix(step)
        if not body:
            return _EMPTY
        answer = extract_final_answer(body)
        return StepCheck(legal=True, finished=answer is not None, answer=answer)

    def check_path(self, question: Question | str, steps: Sequence[str]) -> StepCheck:
        """The check of the first illegal step, else of the last (empty path: legal, open)."""
        check = StepCheck(legal=True)
        for step in steps:
            if check.finished:
                return _AFTER_FINISH
            check = self._check_one(step)
            if not check.legal:
                return check
        return check

    def extract_answer(self, question: Question | str, steps: Sequence[str]) -> str | None:
        """The final answer of a legal finished path, else None."""
        check = self.check_path(question, steps)
        return check.answer if check.legal and check.finished else None

    # --- verifier ------------------------------------------------------------------------
    def is_correct(self, problem: Problem, steps: Sequence[str]) -> bool:
        """Does this finished path state an answer equal to the gold (by answer type)?"""
        answer = self.extract_answer(problem.question, steps)
        if answer is None:
            return False
        kind = self._types.get(problem.id, self.spec.answer_type)
        return self.checker.equal(answer, problem.gold, kind, solution_text="".join(steps))

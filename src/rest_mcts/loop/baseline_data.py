"""Training data of the self-training baselines from budget-matched samples.

* ReST-EM (Singh et al. 2023, "Beyond Human Data"): the E-step keeps the sampled solutions
  whose final answer is verified correct (binary reward), :func:`rest_em_rows`; the M-step is
  the loop's policy SFT on them.
* DPO (Rafailov et al. 2023): preference pairs of one question, a solution judged correct
  (chosen) against one judged wrong (rejected), :func:`dpo_pairs`; never two correct or two
  wrong. The paper's Self-Rewarding baseline has the model judge its own samples; a tiny
  policy cannot judge, so the judgement is the verifier's (``stage.pair_judge=verifier``) or,
  on text worlds, the LLM judge's (``llm``, :func:`llm_verdicts`).

Samples are written to and read from ``samples.jsonl`` (:func:`sample_rows`), one line per
sample: ``{question_id, question, gold, text, steps, tokens, finished, answer, correct}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from rest_mcts.config import Knobs, knob
from rest_mcts.prompts import policy_prompt

PAIR_JUDGES = ("verifier", "llm")


def sample_rows(samples: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per sample of :class:`rest_mcts.search.budget_sampling.QuestionSamples`."""
    return [
        {"question_id": qs.problem.question.id, "question": qs.problem.question.text,
         "gold": qs.problem.gold, "text": s.text, "steps": list(s.steps), "tokens": s.tokens,
         "finished": s.finished, "answer": s.answer, "correct": s.correct}
        for qs in samples for s in qs.samples
    ]


def rest_em_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """D_G of ReST-EM: ``{question, steps, question_id}`` of every sample verified correct,
    each distinct step list once per question (the rest are dropped)."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    out = []
    for row in rows:
        key = (row["question_id"], tuple(row["steps"]))
        if row["correct"] and key not in seen:
            seen.add(key)
            out.append({"question": row["question"], "steps": list(row["steps"]),
                        "question_id": row["question_id"]})
    return out


def dpo_pairs(
    rows: Sequence[dict[str, Any]], verdicts: Sequence[bool], *, pairs_per_question: int,
    fmt: Any = None,
) -> list[dict[str, Any]]:
    """Preference pairs ``{question_id, prompt, chosen, rejected}``: per question, its
    distinct correct texts (by ``verdicts``, one per row) paired in turn with its distinct
    wrong texts, at most ``pairs_per_question`` pairs (each correct and each wrong text is
    used before any is used twice); a question with no correct or no wrong sample gives none.
    ``prompt`` is the policy's prompt of the question (``fmt``: the world's prompt format)."""
    if len(verdicts) != len(rows):
        raise ValueError(f"got {len(verdicts)} verdicts for {len(rows)} samples")
    by_question: dict[str, tuple[str, list[str], list[str]]] = {}
    for row, good in zip(rows, verdicts):
        question, right, wrong = by_question.setdefault(row["question_id"],
                                                        (row["question"], [], []))
        side = right if good else wrong
        if row["text"] not in side:
            side.append(row["text"])
    pairs = []
    for qid, (question, right, wrong) in by_question.items():
        if not right or not wrong:
            continue
        prompt = policy_prompt(question, (), fmt)
        n = min(pairs_per_question, max(len(right), len(wrong)))
        for i in range(n):
            chosen, rejected = right[i % len(right)], wrong[i % len(wrong)]
            pairs.append({"question_id": qid, "prompt": prompt, "chosen": chosen,
                          "rejected": rejected})
    return pairs


def llm_verdicts(rows: Sequence[dict[str, Any]], judge: Any) -> list[bool]:
    """The LLM judge's verdict on each sample (``judge``: an
    :class:`rest_mcts.answers.judge.LLMJudge`): its stated final answer (``answer``) against
    the gold answer; a sample that states none is wrong."""
    verdicts = []
    for row in rows:
        answer = row.get("answer")
        verdicts.append(bool(answer is not None and judge.equal(answer, str(row["gold"]))))
    return verdicts


@dataclass(frozen=True)
class DPOSettings(Knobs):
    """``stage.dpo``: the DPO baseline's pairs and loss.

    Attributes:
        beta: DPO's beta (Rafailov et al. 2023, Eq. 7): how strongly the policy is held to
            its reference (the policy at the start of the iteration).
        pairs_per_question: preference pairs per question at most (:func:`dpo_pairs`).
    """

    beta: float = knob(0.1, low=0, low_open=True)
    pairs_per_question: int = knob(4, low=1, integer=True)
    option: str = field(default="stage.dpo", repr=False)

    def knob_prefix_of(self) -> str:
        return self.option

"""Lightning callbacks for policy training."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import lightning as L

from rest_mcts.training.knobs import hf_model

log = logging.getLogger(__name__)


class GreedyAccuracyCallback(L.Callback):
    """After each validation run, the policy solves a few validation questions greedily
    and ``val/greedy_acc`` is logged (the exact verifier of the world judges the answers).

    Args:
        world: the world that parses steps and checks answers.
        problems: validation problems (with gold answers: used only to judge).
        tokenizer: the policy's tokenizer.
        max_new_tokens: token budget of a whole solution.
    """

    def __init__(self, world: Any, problems: Sequence[Any], tokenizer: Any, max_new_tokens: int):
        self.world = world
        self.problems = list(problems)
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self.problems:
            return
        from rest_mcts.backends import HFPolicyBackend, SamplingParams
        from rest_mcts.search.evaluation import judge_solution
        from rest_mcts.prompts import policy_prompt, prompt_format

        backend = HFPolicyBackend(model=hf_model(pl_module.model), tokenizer=self.tokenizer)
        fmt = prompt_format(self.world)
        prompts = [policy_prompt(p.question.text, (), fmt) for p in self.problems]
        outputs = backend.generate(prompts, SamplingParams(n=1, max_new_tokens=self.max_new_tokens))
        correct = sum(
            judge_solution(self.world, p, out.completions[0]).correct
            for p, out in zip(self.problems, outputs)
        )
        pl_module.log("val/greedy_acc", correct / len(self.problems), prog_bar=True)

"""The self-training baselines (stage.method=rest_em|dpo): their data, DPO, the equal budget,
and the loop end to end on experiment=debug."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rest_mcts.backends.base import Completion, GenerationOutput, derive_seed
from rest_mcts.loop.baseline_data import dpo_pairs, llm_verdicts, rest_em_rows, sample_rows
from rest_mcts.search.budget_sampling import keep_sample, sample_to_budget
from rest_mcts.utils.io import read_jsonl
from rest_mcts.worlds.base import Problem, Question
from rest_mcts.worlds.countdown import CountdownWorld, format_question, format_step

from tests.helpers.paths import ROOT

WORLD = CountdownWorld()
PROBLEM = Problem(Question("p24", format_question([2, 3, 4], 24)), gold="24")
RIGHT_STEPS = [format_step(1, 2, "*", 3, 6, [6, 4]), format_step(2, 6, "*", 4, 24, [24])]
RIGHT = "".join(RIGHT_STEPS)  # each step ends in a newline
WRONG = format_step(1, 2, "+", 3, 5, [5, 4]) + format_step(2, 5, "+", 4, 9, [9])
ILLEGAL = "so 7 * 7 = 49"


class ScriptedPolicy:
    """A policy whose sample i of a question is ``texts[seed of i % len(texts)]``, each
    costing ``tokens``: every call's rows and seeds are recorded."""

    def __init__(self, texts: list[str], tokens: int):
        self.texts, self.tokens, self.calls = texts, tokens, []

    def generate(self, prompts, params, seeds=None):
        self.calls.append(list(seeds))
        return [GenerationOutput((Completion(self.texts[s % len(self.texts)], self.tokens,
                                             "eos"),), 10) for s in seeds]


def scripted(texts: list[str], tokens: int = 10) -> ScriptedPolicy:
    return ScriptedPolicy(texts, tokens)


# ---------------------------------------------------------------------------- ReST-EM
def test_rest_em_keeps_only_the_verified_correct_samples():
    policy = scripted([RIGHT, WRONG, ILLEGAL, RIGHT])
    samples = sample_to_budget(policy, WORLD, [PROBLEM], tokens_per_question=120,
                               temperature=1.0, max_new_tokens=64, seed=0)
    rows = sample_rows(samples)
    assert {r["text"] for r in rows} == {RIGHT, WRONG, ILLEGAL}  # every kind was drawn
    judged = {r["text"]: r["correct"] for r in rows}
    assert judged == {RIGHT: True, WRONG: False, ILLEGAL: False}
    d_g = rest_em_rows(rows)
    assert d_g == [{"question": PROBLEM.question.text, "steps": RIGHT_STEPS,
                    "question_id": "p24"}]  # once, though drawn several times
    finished_wrong = [r for r in rows if r["text"] == WRONG][0]
    assert finished_wrong["finished"] and finished_wrong["answer"] == "9"
    assert rest_em_rows([{**finished_wrong}]) == []


# ---------------------------------------------------------------------------- DPO pairs
def _row(qid: str, text: str, correct: bool) -> dict:
    return {"question_id": qid, "question": f"question {qid}", "text": text, "correct": correct,
            "gold": "1", "answer": "1" if correct else "2"}


def test_dpo_pairs_are_always_one_correct_against_one_wrong():
    rows = [_row("a", "a-right-1", True), _row("a", "a-wrong-1", False),
            _row("a", "a-right-2", True), _row("a", "a-wrong-2", False),
            _row("a", "a-wrong-3", False), _row("a", "a-wrong-1", False),  # a repeat
            _row("b", "b-right", True), _row("b", "b-right-2", True),      # no wrong one
            _row("c", "c-wrong", False), _row("c", "c-wrong-2", False),    # no right one
            _row("d", "d-right", True), _row("d", "d-wrong", False)]
    verdicts = [r["correct"] for r in rows]
    pairs = dpo_pairs(rows, verdicts, pairs_per_question=4)
    good = {r["text"] for r in rows if r["correct"]}
    bad = {r["text"] for r in rows if not r["correct"]}
    assert pairs and all(p["chosen"] in good and p["rejected"] in bad for p in pairs)
    assert all(p["chosen"][0] == p["rejected"][0] == p["question_id"] for p in pairs)
    by_q = {q: [(p["chosen"], p["rejected"]) for p in pairs if p["question_id"] == q]
            for q in "abcd"}
    assert by_q["b"] == [] and by_q["c"] == []  # never two correct, never two wrong
    assert by_q["d"] == [("d-right", "d-wrong")]
    assert len(by_q["a"]) == 3 == len(set(by_q["a"]))  # each wrong text used once
    assert {r for _, r in by_q["a"]} == {"a-wrong-1", "a-wrong-2", "a-wrong-3"}
    assert len(dpo_pairs(rows, verdicts, pairs_per_question=1)) == 2
    assert pairs[0]["prompt"].startswith("question a")


def test_dpo_pairs_follow_the_judge_not_the_verifier():
    """With stage.pair_judge=llm the judge's verdicts decide the sides."""
    rows = [_row("a", "x", True), _row("a", "y", False)]

    class Judge:  # an LLMJudge stand-in that believes the opposite of the verifier
        def equal(self, solution, gold):
            return solution != gold

    verdicts = llm_verdicts(rows, Judge())
    assert verdicts == [False, True]
    (pair,) = dpo_pairs(rows, verdicts, pairs_per_question=4)
    assert (pair["chosen"], pair["rejected"]) == ("y", "x")
    assert llm_verdicts([{**rows[0], "answer": None}], Judge()) == [False]  # no answer: wrong


# ---------------------------------------------------------------------------- DPO training
@pytest.mark.slow
def test_dpo_loss_falls_on_a_tiny_policy_and_its_reference_stays_frozen(tiny_policy, tmp_path):
    import copy

    import lightning as L
    import torch

    from rest_mcts.models.factory import load_causal_lm, load_tokenizer
    from rest_mcts.training.policy_dpo import PairDataModule, PolicyDPOModule, sequence_logps

    torch.manual_seed(0)
    tok = load_tokenizer(tiny_policy)
    pairs = [{"prompt": f"{a} {b}\n", "chosen": f"{a + b}\n", "rejected": f"{a - b}?\n"}
             for a in range(1, 5) for b in range(1, 5)]
    data = PairDataModule(pairs, tok, val_share=0.0, batch_size=8, max_length=64)
    model, reference = load_causal_lm(tiny_policy), load_causal_lm(tiny_policy)
    before = copy.deepcopy(reference.state_dict())
    module = PolicyDPOModule(model, reference, beta=0.5, lr=3e-3, warmup_ratio=0.0)

    def mean_loss() -> float:
        with torch.no_grad():
            module.model.eval()
            losses = [module._step(batch, "check").item() for batch in data.train_dataloader()]
            module.model.train()
        return sum(losses) / len(losses)

    module.log = lambda *a, **k: None  # outside a Trainer
    start = mean_loss()
    assert start == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-4)  # pi == ref
    del module.log
    trainer = L.Trainer(max_epochs=8, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    module.log = lambda *a, **k: None
    end = mean_loss()
    assert end < start - 0.1, (start, end)
    assert all(not p.requires_grad for p in module.reference.parameters())
    assert all(torch.equal(before[k], v) for k, v in module.reference.state_dict().items())
    ids = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert not ids & {id(p) for p in module.reference.parameters()}
    # the policy now prefers the chosen completions more than the reference does
    batch = next(iter(data.train_dataloader()))
    half = batch["input_ids"].shape[0] // 2
    with torch.no_grad():
        pol = sequence_logps(module.model, batch["input_ids"], batch["attention_mask"],
                             batch["labels"])
        ref = sequence_logps(module.reference, batch["input_ids"], batch["attention_mask"],
                             batch["labels"])
    assert ((pol[:half] - ref[:half]) > (pol[half:] - ref[half:])).float().mean() > 0.7


@pytest.mark.slow
def test_the_loop_s_dpo_steps_pair_the_samples_and_train_a_new_policy(compose_cfg, tiny_policy,
                                                                    tmp_path):
    """pairs_step (verifier) then dpo_step, as the loop runs them: a policy folder that
    differs from its start, whose manifest names the start as the reference; the start's
    folder is untouched."""
    import torch

    from rest_mcts.loop.algorithm import LoopSettings
    from rest_mcts.loop.baselines import dpo_step, pairs_step
    from rest_mcts.loop.d_v0 import InitPRMSettings
    from rest_mcts.models.factory import load_causal_lm
    from rest_mcts.runtime.context import Context
    from rest_mcts.training.settings import TrainSettings
    from rest_mcts.utils.io import write_jsonl

    ctx = Context.from_config(compose_cfg("~logger", "trainer.enable_progress_bar=false",
                                          f"model.path={tiny_policy}"))
    policy = scripted([RIGHT, WRONG, ILLEGAL], tokens=10)
    samples = sample_to_budget(policy, WORLD, [PROBLEM], tokens_per_question=60,
                               temperature=1.0, max_new_tokens=64, seed=0)
    write_jsonl(tmp_path / "samples.jsonl", sample_rows(samples))
    s = LoopSettings(init_prm=InitPRMSettings(), method="dpo",
                     sft=TrainSettings(group="policy", lr=3e-3, epochs=2, batch_size=4))
    data = pairs_step(ctx, s, str(tmp_path / "samples.jsonl"), tmp_path / "pairs", "unused")
    pairs = read_jsonl(data["pairs"])
    assert data["pairs/pairs"] == 2 == len(pairs)  # RIGHT against WRONG and ILLEGAL
    assert {p["chosen"] for p in pairs} == {RIGHT} and {p["rejected"] for p in pairs} == {
        WRONG, ILLEGAL}
    before = (tiny_policy / "model.safetensors").read_bytes()
    out = dpo_step(ctx, s, tmp_path / "policy", data, str(tiny_policy))
    assert out["model"] == str(tmp_path / "policy" / "model") and out["train/steps"] == 2
    manifest = json.loads((tmp_path / "policy" / "model" / "manifest.json").read_text())
    assert manifest["reference"] == str(tiny_policy) and manifest["beta"] == 0.1
    ids = torch.tensor([[1, 20, 30, 40, 50]])
    assert not torch.allclose(load_causal_lm(out["model"])(ids).logits,
                              load_causal_lm(tiny_policy)(ids).logits)
    assert (tiny_policy / "model.safetensors").read_bytes() == before
    empty = tmp_path / "none.jsonl"
    write_jsonl(empty, [])
    assert dpo_step(ctx, s, tmp_path / "p2", {"pairs": str(empty)}, "start") == {
        "model": "start", "train/steps": 0.0}


# ---------------------------------------------------------------------------- equal budget
def test_keep_sample_stops_nearest_the_target():
    assert keep_sample(0, 500, 100)  # the first sample always
    assert keep_sample(60, 30, 100) and keep_sample(60, 80, 100)  # 140 is as near as 60
    assert not keep_sample(60, 81, 100) and not keep_sample(100, 1, 100)


@pytest.mark.slow
@pytest.mark.parametrize("target", [37, 250, 1000])
def test_recorded_policy_tokens_per_question_match_the_target(tiny_policy, target):
    """A real (untrained) tiny policy samples to the budget: each question's recorded tokens
    are within 10% of the target (and within half a sample), and a question's samples do not
    depend on the other questions of the batch."""
    from rest_mcts.backends.hf_policy import HFPolicyBackend

    problems = WORLD.generate(3, seed=0, split="train")
    policy = HFPolicyBackend(str(tiny_policy), max_batch_size=64)
    out = sample_to_budget(policy, WORLD, problems, tokens_per_question=target,
                           temperature=1.0, max_new_tokens=24, seed=3)
    for q in out:
        lengths = [s.tokens for s in q.samples]
        assert abs(q.tokens - target) <= max(lengths) / 2 + 1e-9
        if target >= 10 * max(lengths):
            assert abs(q.tokens - target) <= 0.1 * target
    alone = sample_to_budget(policy, WORLD, problems[1:2], tokens_per_question=target,
                             temperature=1.0, max_new_tokens=24, seed=3)
    assert [s.text for s in alone[0].samples] == [s.text for s in out[1].samples]


def test_samples_draw_seeds_by_question_and_index():
    policy = scripted([RIGHT], tokens=10)
    sample_to_budget(policy, WORLD, [PROBLEM], tokens_per_question=45, temperature=1.0,
                     max_new_tokens=64, seed=7)
    drawn = [s for call in policy.calls for s in call]
    assert drawn[:5] == [derive_seed(7, "p24", i) for i in range(5)]


def test_the_budget_matches_a_rest_mcts_loop_folder(tmp_path):
    from rest_mcts.config import ConfigError
    from rest_mcts.loop.budget import BudgetSettings

    loop = tmp_path / "loop"
    (loop / "iter_1" / "search").mkdir(parents=True)
    (loop / "iter_1" / "search" / "manifest.json").write_text(json.dumps(
        {"step": "iter_1/search", "outputs": {"search/policy_tokens_per_question": 812.5}}))
    budget = BudgetSettings(match=str(loop))
    with pytest.raises(ConfigError, match="is not a loop folder"):
        budget.check("rest_em", 8)
    record = {"fingerprint": "x", "config": {"stage": {"train_problems": 8, "method": "dpo"}}}
    (loop / "loop_config.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="is a stage.method=dpo loop"):
        budget.check("rest_em", 8)
    del record["config"]["stage"]["method"]  # a rest_mcts loop's record has no method
    (loop / "loop_config.json").write_text(json.dumps(record))
    budget.check("rest_em", 8)
    assert budget.target(1) == 812.5
    with pytest.raises(ConfigError, match="no finished MCTS\\* search of iteration 2"):
        budget.target(2)
    with pytest.raises(ConfigError, match="stage.train_problems=8, this loop has 16"):
        budget.check("dpo", 16)
    with pytest.raises(ConfigError, match="needs one budget"):
        BudgetSettings().check("rest_em", 8)
    with pytest.raises(ConfigError, match="needs one budget"):
        BudgetSettings(match=str(loop), tokens_per_question=5).check("rest_em", 8)
    assert BudgetSettings(tokens_per_question=300).target(2) == 300.0


def test_baseline_options_are_checked_in_one_line(compose_cfg):
    from rest_mcts.config import ConfigError, from_node
    from rest_mcts.loop.baseline_data import DPOSettings
    from rest_mcts.stages.loop import loop_dir

    with pytest.raises(ConfigError, match="stage.dpo.beta"):
        DPOSettings(beta=0)
    with pytest.raises(ConfigError, match="stage.dpo.bta is not a setting"):
        from_node(DPOSettings, {"bta": 1}, strict="stage.dpo")
    cfg = compose_cfg("stage=loop")
    default = loop_dir(cfg)
    assert default.name.startswith("countdown-s0-")
    em = loop_dir(compose_cfg("stage=loop", "stage.method=rest_em",
                              "stage.budget.tokens_per_question=100"))
    assert em.name.startswith("countdown-rest_em-s0-") and em.name[-12:] != default.name[-12:]


def test_an_llm_pair_judge_needs_a_text_world(compose_cfg):
    from rest_mcts.config import ConfigError
    from rest_mcts.loop.algorithm import LoopSettings
    from rest_mcts.loop.baselines import check_baseline
    from rest_mcts.loop.budget import BudgetSettings
    from rest_mcts.loop.d_v0 import InitPRMSettings
    from rest_mcts.runtime.context import Context
    from rest_mcts.training.settings import TrainSettings

    ctx = Context.from_config(compose_cfg("data=countdown3"))
    s = LoopSettings(init_prm=InitPRMSettings(), sft=TrainSettings(group="policy", lr=1e-3),
                     method="dpo", budget=BudgetSettings(tokens_per_question=100))
    check_baseline(ctx, s)
    with pytest.raises(ConfigError, match="stage.pair_judge=llm needs a text world"):
        check_baseline(ctx, LoopSettings(**{**s.__dict__, "pair_judge": "llm"}))
    with pytest.raises(ConfigError, match="stage.method=dpo needs one budget"):
        check_baseline(ctx, LoopSettings(**{**s.__dict__, "budget": BudgetSettings()}))
    with pytest.raises(ConfigError, match="stage.method='sft' must be one of|stage.method=sft"):
        LoopSettings(**{**s.__dict__, "method": "sft"})


# ---------------------------------------------------------------------------- end to end
def _run(tmp_path: Path, *overrides: str) -> str:
    cmd = [sys.executable, str(ROOT / "run.py"), "experiment=debug", "threads=1",
           "trainer.enable_progress_bar=false", *overrides]
    env = {**__import__("os").environ, "REST_MCTS_ROOT": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_rest_em_and_dpo_loops_run_on_experiment_debug_at_rest_mcts_budget(tmp_path):
    """experiment=debug: the ReST-MCTS* loop, then ReST-EM and DPO matched to its measured
    search tokens per training question (one policy_0 for all three)."""
    _run(tmp_path, f"hydra.run.dir={tmp_path / 'r0'}", f"stage.dir={tmp_path / 'mcts'}")
    mcts = json.loads((tmp_path / "mcts" / "iter_1" / "search" / "manifest.json").read_text())
    target = mcts["outputs"]["search/policy_tokens_per_question"]
    for method, data_step in (("rest_em", "extract"), ("dpo", "pairs")):
        folder = tmp_path / method
        out = _run(tmp_path, f"hydra.run.dir={tmp_path / method}-run", f"stage.dir={folder}",
                   f"stage.method={method}", f"stage.budget.match={tmp_path / 'mcts'}")
        assert "| iter |" in out
        for step in ("iter_0/policy", "iter_0/eval_policy", "iter_0/eval_cot", "iter_1/sample",
                     f"iter_1/{data_step}", "iter_1/policy", "iter_1/eval_policy",
                     "iter_1/eval_cot"):
            assert (folder / step / "manifest.json").is_file(), step
        assert not (folder / "iter_0" / "prm").exists()  # no PRM, no search
        assert not (folder / "iter_1" / "search").exists()
        lines = (folder / "results.csv").read_text().splitlines()
        row = dict(zip(lines[0].split(","), lines[2].split(",")))
        assert float(row["data/budget_tokens"]) == pytest.approx(target)
        assert float(row["data/train_tokens_per_question"]) == pytest.approx(target, rel=0.1)
        assert 0 <= float(row["policy/greedy_acc"]) <= 1 and row["cot/acc"] != ""
        samples = read_jsonl(folder / "iter_1" / "sample" / "samples.jsonl")
        if method == "rest_em":
            d_g = read_jsonl(folder / "iter_1" / "extract" / "d_g.jsonl")
            correct = {tuple(r["steps"]) for r in samples if r["correct"]}
            assert {tuple(r["steps"]) for r in d_g} == correct
        else:
            pairs = read_jsonl(folder / "iter_1" / "pairs" / "pairs.jsonl")
            verdict = {(r["question_id"], r["text"]): r["correct"] for r in samples}
            assert all(verdict[p["question_id"], p["chosen"]]
                       and not verdict[p["question_id"], p["rejected"]] for p in pairs)
            trained = json.loads((folder / "iter_1" / "policy" / "manifest.json").read_text())
            if pairs:  # DPO ran and saved a new policy
                assert trained["outputs"]["train/steps"] > 0
                assert trained["outputs"]["model"] == str(folder / "iter_1" / "policy" / "model")
            else:  # the debug policy may find no correct sample: policy_1 is policy_0
                assert trained["outputs"]["model"] == trained["inputs"]["init"]
        again = _run(tmp_path, f"hydra.run.dir={tmp_path / method}-run2", f"stage.dir={folder}",
                     f"stage.method={method}", f"stage.budget.match={tmp_path / 'mcts'}")
        assert "step iter_1/sample: finished earlier, skipped" in again

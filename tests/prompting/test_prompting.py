"""Prompt templates, chat-template rendering, the self-critic parser, Countdown unchanged."""

from __future__ import annotations

import pytest

from rest_mcts.models.tokenizer import build_byte_tokenizer, build_char_tokenizer
from rest_mcts.prompting import PromptFormat, fill, load_template, parse_critic
from rest_mcts.prompting.critic import CriticParseError
from rest_mcts.prompts import policy_prompt, prompt_format


@pytest.fixture(scope="module")
def byte_tok():
    return build_byte_tokenizer()


def test_templates_load_and_fill_only_named_slots():
    cot = load_template("cot")
    assert "{question}" in cot and r"\boxed{...}" in cot
    filled = fill(cot, question="Q?")
    assert "Problem: Q?" in filled and r"\boxed{...}" in filled
    with pytest.raises(KeyError):
        fill(cot, steps="x")
    with pytest.raises(FileNotFoundError, match="shipped"):
        load_template("nope")
    for name in ("expansion", "expansion_hint", "hint", "critic", "verify", "metamath_alpaca",
                 "plain"):
        assert load_template(name).strip()
    assert "{hint}" in load_template("expansion_hint") and "{hint}" in load_template("hint")


@pytest.mark.parametrize("style", ["continue", "propose"])
def test_a_critic_hint_enters_the_policy_prompt(byte_tok, style):
    fmt = PromptFormat(byte_tok, style=style)
    plain = fmt.policy_prompt("Q?", ["x = 1\n"])
    hinted = fmt.policy_prompt("Q?", ["x = 1\n"], hint="  now add 2 ")
    assert "now add 2" in hinted and "now add 2" not in plain
    assert fmt.policy_prompt("Q?", ["x = 1\n"], hint=None) == plain
    assert hinted.endswith("Step 2:" if style == "continue" else "Next step:")
    if style == "propose":
        assert "Analysis: now add 2" in hinted and "Existing Steps:\nStep 1: x = 1" in hinted


def test_byte_tokenizer_covers_any_text_and_has_a_chat_template(byte_tok):
    text = "Héllo, 数学 \\frac{1}{2} ∞\n\tend"
    ids = byte_tok(text)["input_ids"]
    assert ids[0] == byte_tok.bos_token_id and byte_tok.unk_token_id not in ids
    assert byte_tok.decode(ids, skip_special_tokens=True) == text
    assert byte_tok.chat_template
    assert len(byte_tok.encode("<|user|>", add_special_tokens=False)) == 1


def test_policy_prompt_uses_the_chat_template_and_continues_the_answer(byte_tok):
    fmt = PromptFormat(byte_tok, chat_template=True)
    prompt = fmt.policy_prompt("What is 1+1?", [" 1+1 = 2\n"])
    expected_head = byte_tok.apply_chat_template(
        [{"role": "user", "content": fill(load_template("cot"), question="What is 1+1?").rstrip()}],
        tokenize=False, add_generation_prompt=True,
    )
    assert prompt == expected_head + "Step 1: 1+1 = 2\nStep 2:"
    assert prompt.startswith("<|user|>\n") and "<s>" not in prompt
    # every prompt of a question shares its prefix (continue style)
    assert prompt.startswith(fmt.policy_prompt("What is 1+1?")[: -len("Step 1:")])


def test_system_prompt_and_propose_style(byte_tok):
    fmt = PromptFormat(byte_tok, chat_template="auto", style="propose", system="Be brief.")
    prompt = fmt.policy_prompt("Q?", ["Step 1: a\n"])
    assert prompt.startswith("<|system|>\nBe brief.<|end|>\n<|user|>\n")
    assert "Existing Steps:\nStep 1: a<|end|>" in prompt and prompt.endswith("Next step:")
    assert "Existing Steps:\n(none)" in fmt.policy_prompt("Q?")


def test_plain_template_for_models_without_chat_template():
    fmt = PromptFormat(build_char_tokenizer(), chat_template="auto", plain_template="metamath_alpaca")
    prompt = fmt.policy_prompt("What is 1+1?")
    assert prompt.startswith("Below is an instruction")
    assert prompt.endswith("### Response: Let's think step by step.\nStep 1:")
    with pytest.raises(ValueError, match="no chat template"):
        PromptFormat(build_char_tokenizer(), chat_template=True).policy_prompt("Q?")
    assert PromptFormat(None, chat_template="auto").policy_prompt("Q?").endswith("Problem: Q?\nStep 1:")


def test_a_bos_written_by_the_template_is_not_doubled(byte_tok):
    import copy

    tok = copy.deepcopy(byte_tok)
    tok.chat_template = "{{ bos_token }}" + byte_tok.chat_template
    prompt = PromptFormat(tok, chat_template=True).policy_prompt("Q?")
    assert not prompt.startswith("<s>")
    ids = tok(prompt)["input_ids"]
    assert ids.count(tok.bos_token_id) == 1


def test_critic_and_verify_prompts(byte_tok):
    fmt = PromptFormat(byte_tok)
    critic = fmt.critic_prompt("Q?", ["x = 1\n"])
    assert "Problem solved" in critic and "Existing Steps:\nStep 1: x = 1" in critic
    assert critic.endswith("<|assistant|>\n")
    verify = fmt.verify_prompt("Step 1: The answer is 2", "2")
    assert "Text 1: Step 1: The answer is 2\nText 2: 2\nOutput:" in verify


@pytest.mark.parametrize(
    "answer, solved, hint",
    [
        ("Problem solved", True, None),
        (" problem solved.\n", True, None),
        ("Analysis: try factoring the quadratic.", False, "try factoring the quadratic."),
        ("analysis:\nuse x = 2", False, "use x = 2"),
    ],
)
def test_parse_critic_accepts_the_two_forms(answer, solved, hint):
    verdict = parse_critic(answer)
    assert verdict.solved is solved and verdict.hint == hint


@pytest.mark.parametrize(
    "answer",
    ["", "Solved", "The problem is solved", "Problem solved. Analysis: more", "Analysis:   ",
     "Analysis: problem solved", "I think: Problem solved"],
)
def test_parse_critic_rejects_anything_else(answer):
    with pytest.raises(CriticParseError):
        parse_critic(answer)


def test_countdown_prompts_are_unchanged():
    from rest_mcts.worlds.countdown import CountdownWorld

    world = CountdownWorld()
    assert prompt_format(world) is None
    steps = ["Step 1: 6 * 4 = 24 (left: 24 5)"]
    assert policy_prompt("Make 23 from 6 4 5", steps, prompt_format(world)) == (
        "Make 23 from 6 4 5\nStep 1: 6 * 4 = 24 (left: 24 5)\n"
    )


def test_lines_style_puts_the_plain_format_inside_the_chat_template(byte_tok):
    from rest_mcts.worlds.countdown import CountdownWorld

    fmt = PromptFormat(byte_tok, chat_template=True, style="lines")
    world = CountdownWorld(prompts=fmt)
    steps = ["Step 1: 6 * 4 = 24 (left: 24 5)", "Step 2: 24 - 5 = 19 (left: 19)\n"]
    head = byte_tok.apply_chat_template([{"role": "user", "content": "Make 19 from 6 4 5"}],
                                        tokenize=False, add_generation_prompt=True)
    prompt = policy_prompt("Make 19 from 6 4 5", steps, prompt_format(world))
    plain = policy_prompt("Make 19 from 6 4 5", steps)
    assert prompt == head + plain.partition("\n")[2]  # the steps as lines, as they are
    assert prompt.startswith(policy_prompt("Make 19 from 6 4 5", (), fmt))
    hinted = fmt.policy_prompt("Make 19 from 6 4 5", steps[:1], hint="subtract 5")
    assert "subtract 5" in hinted and hinted.endswith("Step 1: 6 * 4 = 24 (left: 24 5)\n")

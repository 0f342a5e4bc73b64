"""MCTS*'s self-critic (Zhang et al. 2024, App. C.1, Alg. 2 line 13; prompt in App. F).

Before a selected node is expanded, the paper's self-critic judges its partial solution:
either the path has reached a final answer, and the node becomes an End-of-Inference (EoI)
leaf that is never expanded, or the critic gives a short hint that goes into the node's
expansion prompt. The knob `self_critic` decides who answers:

* `world` (default): the world's step parser gives the verdict when a step is created
  (Countdown's final equation, a text step stating `\\boxed{...}`); no hint.
* `llm` (the paper): the policy itself, asked greedily with the paper's self-critic prompt
  (one short Generate request, batched by the engine with other questions' calls), answers
  `Problem solved` (EoI) or `Analysis: <hint>`. Paths the world already sees as finished
  are not asked (no legal step can follow them). An answer in neither form counts as "no
  verdict, no hint" (`critic_unparsed` in the result's info). The authors' code first looks
  for "answer is" or "\\boxed" and otherwise asks for "Problem solved / unsolved"; the
  paper's hint-giving critic is its optional "common" mode (PAPER.md §5, item 4).
* `off`: no critic; a path is known to be finished only when nothing legal follows it.

The verdict stays on the node: `node.critic` is `"end"` or the hint, and
`node.mcts.critic_status` says what the policy answered (`solved`, `hint`, `unparsed`).
"""

from __future__ import annotations

from typing import Generator

from rest_mcts.backends.base import SamplingParams
from rest_mcts.prompting.critic import CriticParseError, parse_critic
from rest_mcts.prompts import prompt_format
from rest_mcts.search.requests import Answer, Generate, Request
from rest_mcts.search.tree import Node, Tree
from rest_mcts.worlds.base import Question, World


def self_critic(
    tree: Tree,
    node: Node,
    world: World,
    question: Question,
    mode: str,
    max_tokens: int,
    ask: bool = True,
) -> Generator[Request, Answer, bool]:
    """The self-critic of Alg. 2 line 13: is `node`'s path at its end of inference?

    A path the world's parser finished when its step was created ends (unless `mode` is
    `off`: then the search does not look). Otherwise, with `mode="llm"` and `ask`, the
    policy is asked (:func:`ask_critic`); its hint, if any, is kept for the expansion
    prompt (:func:`critic_hint`).

    Args:
        tree: the search tree holding `node`.
        node: the selected leaf.
        world: step parser and prompt format of the task.
        question: the question.
        mode: `world`, `llm` or `off` (the `self_critic` knob).
        max_tokens: token cap of the policy's answer (`critic_max_tokens`).
        ask: whether the policy may be asked (MCTS* does not ask about a path at its depth
            cap: it is a dead end unless the world sees it finished).

    Returns:
        Whether the path ends here (the node is then marked ``critic="end"``).
    """
    if mode != "off" and node.terminal:
        node.critic = "end"
        return True
    if mode == "llm" and ask:
        return (yield from ask_critic(tree, node, world, question, critic_params(max_tokens)))
    return False


def critic_params(max_tokens: int) -> SamplingParams:
    """The self-critic's sampling: one greedy answer, short, cut at a blank line."""
    return SamplingParams(n=1, temperature=0.0, max_new_tokens=max_tokens, stop=("\n\n",))


def ask_critic(
    tree: Tree, node: Node, world: World, question: Question, params: SamplingParams
) -> Generator[Request, Answer, bool]:
    """Self-critic by the policy (the paper's prompt): has `node`'s path solved the problem?

    Asks once per node; the verdict stays on the node: `node.mcts.critic_status` is
    `solved`, `hint` or `unparsed`, `node.critic` is `"end"` or the hint. A `solved` path
    becomes terminal (its answer, if any, read by the world's parser). At the root (no steps)
    `Problem solved` is not believed and counts as unparsed. Returns whether the path ends.
    """
    if node.mcts.critic_status is not None:  # asked before (a widened node comes back)
        return node.critic == "end"
    fmt = prompt_format(world)
    (out,) = yield Generate((fmt.critic_prompt(question.text, tree.steps(node)),), params)
    completion = out.completions[0]
    node.mcts.critic_tokens = completion.num_tokens
    try:
        verdict = parse_critic(completion.text)
    except CriticParseError:
        verdict = None
    if verdict is None or (verdict.solved and node is tree.root):
        node.mcts.critic_status = "unparsed"
        node.mcts.critic_raw = completion.text[:200]
        return False
    if verdict.hint is not None:
        node.mcts.critic_status = "hint"
        node.critic = verdict.hint
        return False
    node.mcts.critic_status = "solved"
    node.critic = "end"
    check = world.check_path(question, tree.steps(node))
    node.terminal = node.legal
    node.answer = check.answer if check.legal and check.finished else None
    return True


def critic_hint(node: Node) -> str | None:
    """The self-critic's hint stored on `node` (None when there is none)."""
    return node.critic if node.mcts.critic_status == "hint" else None


def critic_stats(tree: Tree) -> dict[str, int]:
    """How often the policy was asked as critic, its verdicts and its tokens (per tree)."""
    asked = [n for n in tree.nodes if n.mcts.critic_status is not None]
    status = [n.mcts.critic_status for n in asked]
    return {
        "critic_calls": len(asked),
        "critic_solved": status.count("solved"),
        "critic_hints": status.count("hint"),
        "critic_unparsed": status.count("unparsed"),
        "critic_tokens": sum(n.mcts.critic_tokens for n in asked),
    }

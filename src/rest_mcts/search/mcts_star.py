"""MCTS* (Zhang et al. 2024, Section 3.2) for one question, as plain sequential logic.

Each iteration runs the paper's phases, each a short function below:

1. **selection**: descend from the root by UCT, v_C + c * sqrt(ln n_parent / n_C), to a
   leaf, skipping exhausted subtrees (dead ends are never selected twice);
2. **self-critic**: is the leaf's path finished (end of inference), and if not, what should
   the next step do? `self_critic` chooses who answers:
   * `world` (default): the world's step parser gives the verdict when a step is created
     (Countdown's final equation, a text step stating `\boxed{...}`); no hint;
   * `llm` (the paper): the policy itself, asked greedily with the paper's self-critic prompt
     (one short Generate request, batched by the engine with other questions' calls),
     answers `Problem solved` (the path ends here, not expanded) or `Analysis: <hint>` (the
     hint goes into this node's expansion prompt). Paths the world already sees as
     finished are not asked (no legal step can follow them). An answer in neither form
     counts as "no verdict, no hint" (`critic_unparsed` in the result's info);
   * `off`: no critic; a path is known to be finished only when nothing legal follows it;
3. **thought expansion**: if the leaf's value v_C < l (`end_gate`), ask the policy for b
   (`branch`) next steps and score each new child with the value model (PRM);
4. **greedy MC rollout** from the best new child: at each of `rollout_steps` steps sample
   `rollout_branch` continuations, score them, keep the best; then
   v_C <- alpha * v_C + (1 - alpha) * v_max;
5. **backpropagation**: every ancestor's value becomes the visit-weighted mean of its
   children's values, and its visit count grows by one.

The search stops when a finished node reaches v >= l, or after T (`iterations`) iterations;
the answer is the best-valued finished path (`answer_selection=best_leaf`) or the answer
with the largest summed value over finished paths (`value_vote`).

A leaf whose value already reaches l but whose path is not finished is not expanded with b
samples; it is continued by one greedy step (the paper stops the search at such a node and
returns it, which in a world with a structural end would return an unfinished answer).

The function is a generator: it ``yield``s requests (:class:`Generate`, :class:`Score`)
and receives the answers, so the engine can batch many questions' calls together. It sees
only the :class:`Question`, never the gold answer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Sequence

from rest_mcts.backends.base import SamplingParams
from rest_mcts.prompting.critic import CriticParseError, parse_critic
from rest_mcts.prompts import first_line, policy_prompt, prompt_format
from rest_mcts.search.configs import MCTSStarConfig
from rest_mcts.search.requests import Generate, Score, SearchGen, SearchResult, step_params
from rest_mcts.search.steps import expand_node
from rest_mcts.search.tree import Node, Tree
from rest_mcts.worlds.base import Question, World

# With widening, a node is taken as saturated after this many sampled expansions in a row
# that brought no new legal step (one unlucky batch of samples is not enough to give up on
# it); after one, when its steps are proposed greedily (the same ones would come again).
FRUITLESS_LIMIT = 4


def uct(child: Node, parent_visits: int, exploration_constant: float) -> float:
    """UCT score of a child: v_C + c * sqrt(ln n_parent / n_C) (paper, Section 3.2).

    An unvisited child scores +inf (ties among those broken by value in `select`).
    """
    if child.visits == 0:
        return math.inf
    return child.value + exploration_constant * math.sqrt(
        math.log(max(parent_visits, 1)) / child.visits
    )


def rollout_update(value: float, v_max: float, alpha: float) -> float:
    """The rollout update of the paper: v_C <- alpha * v_C + (1 - alpha) * v_max."""
    return alpha * value + (1 - alpha) * v_max


def visit_weighted_value(children: Sequence[Node]) -> float | None:
    """Backpropagated value: sum(n_c * v_c) / sum(n_c) over visited children (None if none)."""
    total = sum(c.visits for c in children)
    if total == 0:
        return None
    return sum(c.visits * c.value for c in children) / total


# ---------------------------------------------------------------------------- phases
def select(
    tree: Tree, exploration_constant: float, widen: bool = True, branch: int = 3
) -> Node | None:
    """Selection: from the root, follow the UCT-best non-exhausted child until a node that
    has not been expanded, or (with `widen`) a node due for another expansion.

    Progressive widening: an expanded node is expanded again (b more samples, kept only
    where new) when all its children are spent, or when its visits reach b * e^2 after e
    expansions, so that a node whose first b samples were all poor gets more chances as the
    search keeps coming back to it. Without `widen` each node is expanded once (the paper);
    a node whose children are all spent is then exhausted and selection restarts. Returns
    None when the whole tree is exhausted.
    """
    while not tree.root.exhausted:
        node = tree.root
        while node.expanded:
            options = [c for c in tree.children(node) if not c.exhausted]
            if widen and (not options or due_for_widening(node, branch)):
                return node
            if not options:
                break
            node = max(options, key=lambda c: (uct(c, node.visits, exploration_constant), c.value))
        if not node.expanded:
            return node
        mark_exhausted(tree, node)
    return None


def due_for_widening(node: Node, branch: int) -> bool:
    """Progressive widening schedule: expansion e + 1 once visits >= b * e^2 (never again
    once the node is saturated: FRUITLESS_LIMIT expansions brought nothing new). An expanded
    node counts at least one expansion (hand-built trees set `expanded` alone)."""
    expansions = max(node.mcts.expansions, 1)
    return not node.mcts.saturated and node.visits >= branch * expansions**2


def mark_exhausted(tree: Tree, node: Node, propagate: bool = True) -> None:
    """A node is exhausted when nothing is left to explore below it; with `propagate`, so
    is every ancestor all of whose children are exhausted (without widening nothing new can
    come from them)."""
    node.exhausted = True
    parent = tree.parent(node) if propagate else None
    while parent is not None and parent.expanded and all(c.exhausted for c in tree.children(parent)):
        parent.exhausted = True
        parent = tree.parent(parent)


def critic_says_end(node: Node, mode: str) -> bool:
    """End of inference known without asking: the world's step parser marked the path
    finished when the step was created (`node.terminal`). With the critic off the search
    does not look and only learns that a path is finished when nothing legal can follow."""
    if mode != "off" and node.terminal:
        node.critic = "end"
        return True
    return False


def critic_params(max_tokens: int) -> SamplingParams:
    """The self-critic's sampling: one greedy answer, short, cut at a blank line."""
    return SamplingParams(n=1, temperature=0.0, max_new_tokens=max_tokens, stop=("\n\n",))


def ask_critic(
    tree: Tree, node: Node, world: World, question: Question, params: SamplingParams
) -> SearchGen:
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


def expand(
    tree: Tree,
    node: Node,
    world: World,
    question: Question,
    params: SamplingParams,
    self_critic: str = "world",
    widen: bool = True,
) -> SearchGen:
    """Thought expansion: ask the policy for next steps of `node`'s path (with the
    self-critic's hint for it, if any), add the new distinct ones as children
    (`steps.expand_node`), and score the new legal children with the value model in one
    request. A node that yields nothing new and legal is exhausted. `self_critic` is the
    critic mode (`world`, `llm`, `off`): unless off, the world's parser ends paths."""
    prompt = policy_prompt(question.text, tree.steps(node), prompt_format(world), critic_hint(node))
    (out,) = yield Generate((prompt,), params)
    node.mcts.expansions += 1
    ends = self_critic != "off"
    children = expand_node(tree, node, out.completions, world, question, ends)
    legal = [c for c in children if c.legal]
    if legal:
        node.mcts.fruitless = 0
        values = yield Score(tuple((question.text, tree.steps(c)) for c in legal))
        for child, value in zip(legal, values):
            child.prm_score = child.value = float(value)
    else:  # nothing new and legal came out
        node.mcts.fruitless += 1
        limit = 1 if params.temperature == 0 else FRUITLESS_LIMIT
        if not widen or node.mcts.fruitless >= limit:
            node.mcts.saturated = True
            if all(c.exhausted for c in tree.children(node)):
                mark_exhausted(tree, node, propagate=not widen)  # nothing open below: spent
    return children


def greedy_rollout(
    tree: Tree,
    node: Node,
    world: World,
    question: Question,
    rollout_steps: int,
    params: SamplingParams,
) -> SearchGen:
    """Greedy MC rollout from `node`: at each step sample `params.n` continuations, score
    the legal ones, keep the best; returns v_max, the best value seen (0 if none)."""
    steps = list(tree.steps(node))
    v_max = 0.0
    for _ in range(rollout_steps):
        (out,) = yield Generate((policy_prompt(question.text, steps, prompt_format(world)),), params)
        legal = []
        for completion in out.completions:
            step = first_line(completion.text)
            check = world.check_step(question, steps, step)
            if check.legal:
                legal.append((step, check))
        if not legal:
            break
        values = yield Score(tuple((question.text, (*steps, s)) for s, _ in legal))
        best = max(range(len(legal)), key=lambda i: values[i])
        v_max = max(v_max, float(values[best]))
        steps.append(legal[best][0])
        if legal[best][1].finished:
            break
    return v_max


def backpropagate(tree: Tree, node: Node) -> None:
    """Backpropagation: from `node` up to the root, one more visit each, and the value of
    every expanded node becomes the visit-weighted mean of its children's values."""
    current: Node | None = node
    while current is not None:
        current.visits += 1
        if current.expanded:
            mean = visit_weighted_value(tree.children(current))
            if mean is not None:
                current.value = mean
        current = tree.parent(current)


def choose_answer(tree: Tree, answer_selection: str) -> Node:
    """The answer: best-valued finished node, or the answer with the largest summed value
    over finished nodes (`value_vote`). Without a finished node: the best-valued node.
    Finished paths that state no answer (ended by the LLM self-critic) are chosen only when
    no finished path states one."""
    finished = tree.finished()
    finished = [n for n in finished if n.answer is not None] or finished
    if not finished:
        candidates = [n for n in tree.nodes[1:] if n.legal] or [tree.root]
        return max(candidates, key=lambda n: (n.value, n.depth))
    if answer_selection == "value_vote":
        votes: dict[str | None, float] = defaultdict(float)
        for n in finished:
            votes[n.answer] += n.value
        winner = max(votes, key=votes.__getitem__)
        finished = [n for n in finished if n.answer == winner]
    return max(finished, key=lambda n: (n.value, n.prm_score or 0.0))


# ---------------------------------------------------------------------------- search
def mcts_star(
    question: Question, world: World, config: MCTSStarConfig | None = None
) -> SearchGen:
    """MCTS* for one question (see the module docstring for the phases).

    Args:
        question: the question (no gold answer: test-time search cannot read it).
        world: step parser / answer format of the task.
        config: the knobs (T, b, l, alpha, c, rollout, self-critic, widening, ...; see
            :class:`~rest_mcts.search.configs.MCTSStarConfig`); None: the defaults.

    Raises:
        TypeError: if ``question`` is not a Question or ``config`` not an MCTSStarConfig.
        ConfigError: if ``config`` does not suit ``world`` (``self_critic=llm`` without
            prompts).
    """
    if not isinstance(question, Question):
        raise TypeError(f"mcts_star takes a Question, got {type(question).__name__}")
    config = MCTSStarConfig() if config is None else config
    if not isinstance(config, MCTSStarConfig):
        raise TypeError(f"mcts_star takes an MCTSStarConfig, got {type(config).__name__}")
    config.check_world(world)
    mode, widen, end_gate = config.self_critic, config.widen, config.end_gate
    tree = Tree(question.id, question.text)
    expand_params = step_params(config.branch, config.temperature, config.max_step_tokens)
    exploit_params = step_params(1, 0.0, config.max_step_tokens)
    rollout_params = step_params(config.rollout_branch, config.temperature, config.max_step_tokens)
    ask_params = critic_params(config.critic_max_tokens)
    done = 0
    stopped = False
    while done < config.iterations and not stopped:
        leaf = select(tree, config.exploration_constant, widen, config.branch)
        if leaf is None:
            break  # every path explored
        if critic_says_end(leaf, mode) or leaf.depth >= config.max_depth:
            mark_exhausted(tree, leaf, propagate=not widen)
            continue
        done += 1
        if mode == "llm" and (yield from ask_critic(tree, leaf, world, question, ask_params)):
            mark_exhausted(tree, leaf, propagate=not widen)  # solved: end of inference here
            backpropagate(tree, leaf)
            stopped = leaf.legal and leaf.value >= end_gate
            continue
        params = expand_params if leaf.value < end_gate or leaf is tree.root else exploit_params
        children = yield from expand(tree, leaf, world, question, params, mode, widen)
        open_children = [c for c in children if not c.exhausted]
        if open_children and config.rollout_steps > 0:
            roll = max(open_children, key=lambda c: c.value)
            v_max = yield from greedy_rollout(
                tree, roll, world, question, config.rollout_steps, rollout_params
            )
            roll.mcts.rollout_v_max = v_max
            roll.value = rollout_update(roll.value, v_max, config.alpha)
            roll.visits += 1
        backpropagate(tree, leaf)
        stopped = any(c.terminal and c.legal and c.value >= end_gate for c in children)
    best = choose_answer(tree, config.answer_selection)
    return SearchResult(
        steps=tree.steps(best),
        answer=best.answer if best.terminal else None,
        finished=best.terminal and best.legal,
        value=best.value,
        tree=tree.to_dict(),
        info={
            "iterations": done,
            "nodes": len(tree.nodes),
            "stopped_at_end_gate": stopped,
            "finished_nodes": len(tree.finished()),
            **(critic_stats(tree) if mode == "llm" else {}),
        },
    )

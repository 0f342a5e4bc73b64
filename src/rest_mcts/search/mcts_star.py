"""MCTS* (Zhang et al. 2024, Section 3.2, App. C.1 Alg. 2) for one question, as plain
sequential logic.

Each iteration runs the paper's phases, each a short function below:

1. **selection**: descend from the root by UCT to a leaf, skipping dead ends (illegal steps,
   nodes with nothing left below); a finished leaf can be selected again (it is visited and
   backpropagated, never expanded: the authors' code). `uct=authors` (default):
   v_C + c * sqrt(2 ln n_parent / n_C), an unvisited child v_C + `unvisited_bonus` (the
   authors' getBestChild; Eq. 33 has no factor 2, no rule for unvisited children and no
   value of its constant); `uct=plain`: Eq. 33 as printed, an unvisited child +inf;
2. **stop test** (`stop_rule=selected`, default: the paper, Alg. 2 lines 9-11): a selected
   leaf with v_C >= l (`end_gate`) ends the search and is its answer, finished or not (an
   unfinished one is completed: see the final answer below);
   `stop_rule=finished` (this repo's earlier rule): only a finished node with v >= l stops
   it, and an unfinished leaf at or above l is continued by one greedy step instead of b
   samples. With `early_stop=false` (the authors' data generation) the search runs all T
   iterations; a leaf the stop test picks is visited, not expanded;
3. **self-critic**: is the leaf's path finished (end of inference), and if not, what should
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
4. **thought expansion**: ask the policy for b (`branch`) next steps (at `temperature`) and
   score each new child with the value model (PRM); each node is expanded once (the paper),
   or again by progressive widening (`widen=true`, search=mcts_star_widen);
5. **greedy MC rollout** from the best new child (finished ones included: the authors'):
   at each of m (`rollout_steps`) steps sample d (`rollout_branch`) continuations at
   `rollout_temperature`, score them, keep the best; then
   v_C <- alpha * v_C + (1 - alpha) * v_max, and the child counts one visit. A finished
   child is not simulated (v_max is its own value: the authors' code); nor is one after
   which nothing legal can be sampled at all (`self_critic=off` on a finished path): a
   rollout that took no step leaves the value as it is;
6. **backpropagation**: every ancestor's value becomes the visit-weighted mean of its
   children's values, and its visit count grows by one.

The final answer: the node that stopped the search; without a stop, the best-valued
finished path (`answer_selection=best_leaf`) or the answer with the largest summed value
over finished paths (`value_vote`); with no finished node at all, the best-valued node.
When its path is not finished, `finish=complete` (default; the authors' code lets the policy
write the final answer from the chosen node) asks the policy for one greedy continuation of
the path to its end (one Generate request, no step stop, at most `max_step_tokens` per step
left above `max_depth`), judged step by step by the world's parser: the result holds the
completed path, its answer and whether it is finished, with the node's value; the tokens
count as policy tokens (``info["completed"]``, ``info["completion_tokens"]``). The completion
is not added to the tree, so the trees (and the PRM data drawn from them) are the same.
`finish=as_is`: the unfinished path is the answer (no answer: scored wrong).

The T curve (`t_checkpoints`, :mod:`rest_mcts.search.t_curve`): after t of the T iterations
(t = 5, 10, 20, ... and T itself) the search records the answer it would return if T were t,
by the same rule, with the policy tokens spent so far, in ``info["t_curve"]``. A checkpoint
taken during the search records its answer as it stands: an unfinished one is not completed
(no Generate per checkpoint), i.e. what a run with T = t and `finish=as_is` would answer.
The checkpoints at the end (T, and every later t after an early stop) hold the run's own
answer, completed, with the completion's tokens.

The function is a generator: it ``yield``s requests (:class:`Generate`, :class:`Score`)
and receives the answers, so the engine can batch many questions' calls together. It sees
only the :class:`Question`, never the gold answer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Generator, Sequence

from rest_mcts.backends.base import SamplingParams
from rest_mcts.prompting.critic import CriticParseError, parse_critic
from rest_mcts.prompts import first_line, policy_prompt, prompt_format
from rest_mcts.search.configs import MCTSStarConfig
from rest_mcts.search.requests import (
    Answer,
    Generate,
    Request,
    Score,
    SearchGen,
    SearchResult,
    step_params,
)
from rest_mcts.search.selection import SampledPath, judge_solution
from rest_mcts.search.steps import expand_node
from rest_mcts.search.t_curve import TCheckpoint, TokenMeter, checkpoint_schedule, metered
from rest_mcts.search.tree import Node, Tree
from rest_mcts.worlds.base import Question, World

# With widening, a node is taken as saturated after this many sampled expansions in a row
# that brought no new legal step (one unlucky batch of samples is not enough to give up on
# it); after one, when its steps are proposed greedily (the same ones would come again).
FRUITLESS_LIMIT = 4


def uct(
    child: Node,
    parent_visits: int,
    exploration_constant: float,
    form: str = "authors",
    unvisited_bonus: float = 0.8,
) -> float:
    """UCT score of a child.

    `form="authors"` (the authors' getBestChild, the default): v_C + c * sqrt(2 ln n_parent
    / n_C), and an unvisited child scores v_C + `unvisited_bonus` (finite: a well-valued
    visited child can still win). `form="plain"` (Eq. 33 as printed): v_C + c * sqrt(ln
    n_parent / n_C), and an unvisited child scores +inf. Ties are broken by value in
    `select` (the authors draw at random).
    """
    if child.visits == 0:
        return child.value + unvisited_bonus if form == "authors" else math.inf
    factor = 2.0 if form == "authors" else 1.0
    return child.value + exploration_constant * math.sqrt(
        factor * math.log(max(parent_visits, 1)) / child.visits
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
def ended(node: Node) -> bool:
    """A finished path the search knows as finished (the self-critic's "end"): a leaf that is
    never expanded but can be selected again (visited and backpropagated)."""
    return node.legal and node.critic == "end"


def spent(node: Node) -> bool:
    """Nothing to select below `node`: exhausted, and not a finished leaf."""
    return node.exhausted and not ended(node)


def select(
    tree: Tree,
    exploration_constant: float,
    widen: bool = False,
    branch: int = 3,
    form: str = "authors",
    unvisited_bonus: float = 0.8,
) -> Node | None:
    """Selection: from the root, follow the UCT-best child that is not spent until a node
    that has not been expanded (a finished leaf included), or (with `widen`) a node due for
    another expansion.

    Progressive widening (this repo's variant): an expanded node is expanded again (b more
    samples, kept only where new) when none of its children is open (all spent or
    finished), or when its visits reach b * e^2 after e expansions, so that a node whose
    first b samples were all poor gets more chances as the search keeps coming back to it.
    Without `widen` each node is expanded once (the paper); a node none of whose children
    can be selected is then exhausted and selection restarts. Returns None when nothing in
    the tree can be selected.
    """
    while not tree.root.exhausted:
        node = tree.root
        while node.expanded:
            options = [c for c in tree.children(node) if not spent(c)]
            if widen and not node.mcts.saturated and (
                all(ended(c) for c in options) or due_for_widening(node, branch)
            ):
                return node
            if not options:
                break
            node = max(
                options,
                key=lambda c: (uct(c, node.visits, exploration_constant, form, unvisited_bonus),
                               c.value),
            )
        if not node.expanded:
            return node
        mark_exhausted(tree, node, propagate=not widen)
    return None


def at_end_gate(tree: Tree, node: Node, end_gate: float) -> bool:
    """The stop test of a selected node: a leaf (not the root, not a node that selection
    returned to widen it: its value is a mean over its children) with v >= l."""
    return node is not tree.root and not node.expanded and node.legal and node.value >= end_gate


def due_for_widening(node: Node, branch: int) -> bool:
    """Progressive widening schedule: expansion e + 1 once visits >= b * e^2 (never again
    once the node is saturated: FRUITLESS_LIMIT expansions brought nothing new). An expanded
    node counts at least one expansion (hand-built trees set `expanded` alone)."""
    expansions = max(node.mcts.expansions, 1)
    return not node.mcts.saturated and node.visits >= branch * expansions**2


def mark_exhausted(tree: Tree, node: Node, propagate: bool = True) -> None:
    """A node is exhausted when nothing is left to explore below it; with `propagate`, so
    is every ancestor none of whose children can be selected (without widening nothing new
    can come from them; a finished child can still be selected)."""
    node.exhausted = True
    parent = tree.parent(node) if propagate else None
    while parent is not None and parent.expanded and all(spent(c) for c in tree.children(parent)):
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
    widen: bool = False,
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
            if all(spent(c) for c in tree.children(node)):
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
    the legal ones, keep the best; returns v_max, the best value seen (0 if a step found
    nothing legal), or None when not even a first step could be taken from a finished path
    (nothing can follow it: the rollout learnt nothing, the value stays as it is)."""
    steps = list(tree.steps(node))
    v_max = 0.0
    for k in range(rollout_steps):
        (out,) = yield Generate((policy_prompt(question.text, steps, prompt_format(world)),), params)
        legal = []
        for completion in out.completions:
            step = first_line(completion.text)
            check = world.check_step(question, steps, step)
            if check.legal:
                legal.append((step, check))
        if not legal:
            if k == 0 and node.terminal:
                return None
            break
        values = yield Score(tuple((question.text, (*steps, s)) for s, _ in legal))
        best = max(range(len(legal)), key=lambda i: values[i])
        v_max = max(v_max, float(values[best]))
        steps.append(legal[best][0])
        if legal[best][1].finished:
            break
    return v_max


def rollout(
    tree: Tree,
    node: Node,
    world: World,
    question: Question,
    rollout_steps: int,
    params: SamplingParams,
    alpha: float,
) -> SearchGen:
    """The rollout phase on the chosen child `node`: simulate (unless its path is known to
    be finished: then v_max is its own value, the authors' greedyPolicy), blend with alpha,
    and count the visit (the authors' roll_node.numVisits += 1)."""
    v_max: float | None = node.value
    if not ended(node):
        v_max = yield from greedy_rollout(tree, node, world, question, rollout_steps, params)
    if v_max is not None:
        node.mcts.rollout_v_max = v_max
        node.value = rollout_update(node.value, v_max, alpha)
    node.visits += 1


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


def final_answer(
    tree: Tree, config: MCTSStarConfig, stopped: bool, stop_node: Node | None
) -> Node:
    """The node the search answers with when it ends: the node that stopped it at l, else
    :func:`choose_answer` on the tree."""
    if stopped and stop_node is not None:
        return stop_node
    return choose_answer(tree, config.answer_selection)


@dataclass(frozen=True)
class ChosenPath:
    """The search's answer: a path, the answer it states (None unless finished), whether it
    is finished, and its value."""

    steps: tuple[str, ...]
    answer: str | None
    finished: bool
    value: float


def chosen_path(tree: Tree, node: Node) -> ChosenPath:
    """`node`'s path as the answer, as it stands."""
    return ChosenPath(steps=tree.steps(node), answer=node.answer if node.terminal else None,
                      finished=node.terminal and node.legal, value=node.value)


def completion_params(config: MCTSStarConfig, depth: int) -> SamplingParams:
    """The completion's sampling: one greedy continuation of the whole rest of the path (no
    step stop), capped at `max_step_tokens` per step left above the depth cap (at least one
    step's worth)."""
    budget = config.max_step_tokens * max(config.max_depth - depth, 1)
    return SamplingParams(n=1, temperature=0.0, max_new_tokens=budget, stop=())


def complete(
    tree: Tree, node: Node, world: World, question: Question, params: SamplingParams
) -> Generator[Request, Answer, SampledPath]:
    """Complete `node`'s unfinished path: the policy continues it in one Generate request,
    and the world's parser judges the continuation step by step (cut at its first illegal
    step: :func:`~rest_mcts.search.steps.judge_solution`). The tree is not changed (the
    completion is not a node), so the trees' PRM training data is the same."""
    steps = tree.steps(node)
    prompt = policy_prompt(question.text, steps, prompt_format(world))
    (out,) = yield Generate((prompt,), params)
    return judge_solution(question, world, out.completions[0], node.value, prefix=steps)


def finish_answer(
    tree: Tree, node: Node, world: World, question: Question, config: MCTSStarConfig
) -> Generator[Request, Answer, tuple[ChosenPath, SampledPath | None]]:
    """The search's answer from its answer node `node`: its path as it stands when finished
    or with `finish=as_is`; else (`finish=complete`, the authors' code lets the policy
    write the final answer from the chosen node) its greedy completion, with `node`'s value.
    Returns the answer and the judged completion (None when there was none)."""
    chosen = chosen_path(tree, node)
    if chosen.finished or config.finish == "as_is":
        return chosen, None
    path = yield from complete(tree, node, world, question,
                               completion_params(config, node.depth))
    return ChosenPath(path.steps, path.answer, path.finished, node.value), path


def record_checkpoints(
    curve: list[TCheckpoint], schedule: Sequence[int], done: float, chosen: ChosenPath,
    policy_tokens: int,
) -> None:
    """Record `chosen` as the answer at every scheduled t <= `done` not yet in `curve`."""
    while len(curve) < len(schedule) and schedule[len(curve)] <= done:
        curve.append(TCheckpoint(
            t=schedule[len(curve)], steps=chosen.steps, answer=chosen.answer,
            finished=chosen.finished, value=chosen.value, policy_tokens=policy_tokens))


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

    ``config`` is checked against ``world`` (``self_critic=llm`` needs prompts) once per run,
    where it is bound to the world (:func:`rest_mcts.search.registry.make_search`), not per
    question here.

    Raises:
        TypeError: if ``question`` is not a Question or ``config`` not an MCTSStarConfig.
    """
    if not isinstance(question, Question):
        raise TypeError(f"mcts_star takes a Question, got {type(question).__name__}")
    config = MCTSStarConfig() if config is None else config
    if not isinstance(config, MCTSStarConfig):
        raise TypeError(f"mcts_star takes an MCTSStarConfig, got {type(config).__name__}")
    mode, widen, end_gate = config.self_critic, config.widen, config.end_gate
    paper_stop = config.stop_rule == "selected"
    tree = Tree(question.id, question.text)
    expand_params = step_params(config.branch, config.temperature, config.max_step_tokens)
    exploit_params = step_params(1, 0.0, config.max_step_tokens)
    rollout_params = step_params(
        config.rollout_branch, config.rollout_temperature, config.max_step_tokens
    )
    ask_params = critic_params(config.critic_max_tokens)
    done = 0
    stopped = False
    stop_node: Node | None = None
    schedule = checkpoint_schedule(config.t_checkpoints, config.iterations)
    curve: list[TCheckpoint] = []
    meter = TokenMeter()  # policy tokens so far, for the T curve
    while done < config.iterations and not stopped:
        if len(curve) < len(schedule) and schedule[len(curve)] <= done:
            # a run with T = done would end here and answer by the same rule
            # (as it stands: an unfinished answer is not completed here)
            record_checkpoints(curve, schedule, done, chosen_path(
                tree, final_answer(tree, config, False, stop_node)), meter.tokens)
        leaf = select(tree, config.exploration_constant, widen, config.branch, config.uct,
                      config.unvisited_bonus)
        if leaf is None:
            break  # nothing left to select: every path explored, no finished leaf
        if paper_stop and at_end_gate(tree, leaf, end_gate):
            done += 1  # the stop test (Alg. 2 lines 9-11; the authors count this round)
            stop_node = leaf
            if config.early_stop:
                stopped = True
                break
            backpropagate(tree, leaf)  # data generation: visited, not expanded (the authors)
            continue
        if critic_says_end(leaf, mode):  # a finished leaf selected (again): the authors
            done += 1  # visit it and backpropagate, nothing is expanded or simulated
            backpropagate(tree, leaf)
            stopped = config.early_stop and not paper_stop and leaf.value >= end_gate
            continue
        if leaf.depth >= config.max_depth:  # this repo's depth cap: a dead end, no round
            mark_exhausted(tree, leaf, propagate=not widen)
            continue
        done += 1
        if mode == "llm" and (yield from metered(
                ask_critic(tree, leaf, world, question, ask_params), meter)):
            mark_exhausted(tree, leaf, propagate=not widen)  # solved: end of inference here
            backpropagate(tree, leaf)
            stopped = (config.early_stop and not paper_stop and leaf.legal
                       and leaf.value >= end_gate)
            continue
        greedy = not paper_stop and at_end_gate(tree, leaf, end_gate)
        params = exploit_params if greedy else expand_params
        children = yield from metered(
            expand(tree, leaf, world, question, params, mode, widen), meter)
        candidates = [c for c in children if not spent(c)]  # legal, finished ones included
        if candidates and config.rollout_steps > 0:
            roll = max(candidates, key=lambda c: c.value)
            yield from metered(rollout(tree, roll, world, question, config.rollout_steps,
                                       rollout_params, config.alpha), meter)
        backpropagate(tree, leaf)
        stopped = config.early_stop and not paper_stop and any(
            c.terminal and c.legal and c.value >= end_gate for c in children
        )
    best = final_answer(tree, config, stopped, stop_node)
    chosen, completion = yield from metered(
        finish_answer(tree, best, world, question, config), meter)
    record_checkpoints(curve, schedule, math.inf, chosen, meter.tokens)  # stopped: kept
    return SearchResult(
        steps=chosen.steps,
        answer=chosen.answer,
        finished=chosen.finished,
        value=chosen.value,
        tree=tree.to_dict(),
        info={
            "iterations": done,
            "nodes": len(tree.nodes),
            "stopped_at_end_gate": stopped,
            "finished_nodes": len(tree.finished()),
            "completed": completion is not None,
            "completion_tokens": completion.tokens if completion is not None else 0,
            **(critic_stats(tree) if mode == "llm" else {}),
            **({"t_curve": [c.to_dict() for c in curve]} if curve else {}),
        },
    )

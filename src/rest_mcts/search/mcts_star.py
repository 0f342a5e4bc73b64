"""MCTS* (Zhang et al. 2024, Section 3.2, App. C.1 Alg. 2) for one question, as plain
sequential logic.

:func:`mcts_star` runs up to T (`iterations`) calls of :func:`iteration`, which reads as
Alg. 2 (line numbers as in PAPER.md §2), each phase a short function below:

1. **selection** (lines 4-8, Eq. 33): :func:`select`, :func:`uct`;
2. **stop test** (lines 9-11): a selected leaf with v_C >= l (`end_gate`) is the answer and
   is neither judged nor expanded (:func:`at_end_gate`);
3. **self-critic** (line 13, App. F): :func:`rest_mcts.search.critic.self_critic` -- end of
   inference (a finished leaf, visited but never expanded) or a hint for the expansion;
4. **thought expansion** (lines 15-19): b (`branch`) next steps from the policy, each new
   child valued by the PRM (:func:`expand`);
5. **greedy MC rollout** (lines 20-28, Eq. 34) from the best new child (:func:`rollout`);
6. **backpropagation** (line 31, Eq. 35-36): visit-weighted means (:func:`backpropagate`);

and :func:`should_stop`, the one place that decides whether the search ends. The variants,
each one helper named by its knob:

* `uct=authors|plain` (:func:`uct`): the authors' getBestChild or Eq. 33 as printed;
* `stop_rule=selected|finished`, `early_stop` (:func:`should_stop`);
* `self_critic=world|llm|off` (:mod:`rest_mcts.search.critic`);
* `widen` (:func:`due_for_widening`, :func:`gives_up`): progressive widening, this repo's;
* `answer_selection=best_leaf|value_vote` (:func:`choose_answer`) and
  `finish=complete|as_is` (:func:`finish_answer`): the final answer;
* `t_checkpoints` (:mod:`rest_mcts.search.t_curve`): the T curve in one run.

A finished leaf can be selected again: it is visited and backpropagated, never expanded
(the authors' code). Selection skips dead ends (illegal steps, nodes with nothing left
below); a node at this repo's depth cap (`max_depth`) that is not finished is a dead end,
and selecting it is no iteration.

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

The saved tree (the result's ``tree``) holds, next to its nodes, ``trace``: one line per
iteration (:func:`trace_entry`: the selection path, the new children, the
rollout, the backpropagated values, the stop), from which the viewer replays the search.
It is written only: the search never reads it.

The functions are generators: they ``yield`` requests (:class:`Generate`, :class:`Score`)
and receive the answers, so the engine can batch many questions' calls together. The search
sees only the :class:`Question`, never the gold answer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Generator, Sequence

from rest_mcts.backends.base import SamplingParams
from rest_mcts.prompts import first_line, policy_prompt, prompt_format
from rest_mcts.search.configs import MCTSStarConfig
from rest_mcts.search.critic import critic_hint, critic_stats, self_critic
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


# ---------------------------------------------------------------------------- formulas
def uct(
    child: Node,
    parent_visits: int,
    exploration_constant: float,
    form: str = "authors",
    unvisited_bonus: float = 0.8,
) -> float:
    """UCT score of a child (Eq. 33).

    `form="authors"` (the authors' getBestChild, the default): v_C + c * sqrt(2 ln n_parent
    / n_C), and an unvisited child scores v_C + `unvisited_bonus` (finite: a well-valued
    visited child can still win). `form="plain"` (Eq. 33 as printed): v_C + c * sqrt(ln
    n_parent / n_C), and an unvisited child scores +inf. Eq. 33 gives no rule for unvisited
    children and no value of c. Ties are broken by value in `select` (the authors draw at
    random).
    """
    if child.visits == 0:
        return child.value + unvisited_bonus if form == "authors" else math.inf
    factor = 2.0 if form == "authors" else 1.0
    return child.value + exploration_constant * math.sqrt(
        factor * math.log(max(parent_visits, 1)) / child.visits
    )


def rollout_update(value: float, v_max: float, alpha: float) -> float:
    """The rollout update of the paper (Eq. 34): v_C <- alpha * v_C + (1 - alpha) * v_max.

    (The authors' code puts alpha on v_max instead; the two agree at alpha = 0.5.)"""
    return alpha * value + (1 - alpha) * v_max


def visit_weighted_value(children: Sequence[Node]) -> float | None:
    """Backpropagated value (Eq. 35-36): sum(n_c * v_c) / sum(n_c) over visited children
    (None if none)."""
    total = sum(c.visits for c in children)
    if total == 0:
        return None
    return sum(c.visits * c.value for c in children) / total


# ---------------------------------------------------------------------------- node states
def ended(node: Node) -> bool:
    """A finished path the search knows as finished (the self-critic's "end"): a leaf that is
    never expanded but can be selected again (visited and backpropagated)."""
    return node.legal and node.critic == "end"


def spent(node: Node) -> bool:
    """Nothing to select below `node`: exhausted, and not a finished leaf."""
    return node.exhausted and not ended(node)


def mark_exhausted(tree: Tree, node: Node, propagate: bool = True) -> None:
    """A node is exhausted when nothing is left to explore below it; with `propagate`, so
    is every ancestor none of whose children can be selected (without widening nothing new
    can come from them; a finished child can still be selected)."""
    node.exhausted = True
    parent = tree.parent(node) if propagate else None
    while parent is not None and parent.expanded and all(spent(c) for c in tree.children(parent)):
        parent.exhausted = True
        parent = tree.parent(parent)


def at_end_gate(tree: Tree, node: Node, end_gate: float) -> bool:
    """The stop test of a selected node (Alg. 2 lines 9-11): a leaf (not the root, not a node
    that selection returned to widen it: its value is a mean over its children) with
    v >= l."""
    return node is not tree.root and not node.expanded and node.legal and node.value >= end_gate


# ---------------------------------------------------------------------------- variants
def due_for_widening(node: Node, options: Sequence[Node], branch: int) -> bool:
    """Progressive widening (`widen=true`, this repo's variant): is the expanded `node` due
    for another expansion (b more samples, kept only where new)?

    Yes when none of its selectable children `options` is open (all finished), or when its
    visits reach b * e^2 after e expansions, so that a node whose first b samples were all
    poor gets more chances as the search keeps coming back to it; never once it is
    saturated (:func:`gives_up`). An expanded node counts at least one expansion
    (hand-built trees set `expanded` alone). Without widening each node is expanded once
    (the paper).
    """
    if node.mcts.saturated:
        return False
    expansions = max(node.mcts.expansions, 1)
    return all(ended(c) for c in options) or node.visits >= branch * expansions**2


def gives_up(node: Node, greedy: bool, widen: bool) -> bool:
    """After an expansion that brought nothing new and legal: is `node` saturated? Without
    widening at once (it is expanded once); with widening after FRUITLESS_LIMIT such
    expansions in a row, or one when its steps were proposed greedily."""
    return not widen or node.mcts.fruitless >= (1 if greedy else FRUITLESS_LIMIT)


def should_stop(tree: Tree, leaf: Node, found: Sequence[Node], config: MCTSStarConfig) -> bool:
    """The stop rule, decided once per iteration.

    `stop_rule=selected` (the paper, Alg. 2 lines 9-11; the authors' selectNode): the
    selected `leaf` has v >= l (:func:`at_end_gate`), finished or not; the search returns
    it, and an unfinished one is completed (:func:`finish_answer`).
    `stop_rule=finished` (this repo's earlier rule): a finished node with v >= l among
    `found`, what this iteration found (the leaf judged finished, or the new children);
    the answer is then chosen by :func:`choose_answer` (and :func:`iteration` continues an
    unfinished leaf at l by one greedy step instead of b samples). With `early_stop=false`
    (the authors' data generation) never: the search runs all T iterations, and a leaf the
    paper's test picks is visited, not expanded.
    """
    if not config.early_stop:
        return False
    if config.stop_rule == "selected":
        return at_end_gate(tree, leaf, config.end_gate)
    return any(n.terminal and n.legal and n.value >= config.end_gate for n in found)


# ---------------------------------------------------------------------------- phases
def select(
    tree: Tree,
    exploration_constant: float,
    widen: bool = False,
    branch: int = 3,
    form: str = "authors",
    unvisited_bonus: float = 0.8,
) -> Node | None:
    """Selection (Alg. 2 lines 4-8, Eq. 33): from the root, follow the UCT-best child that
    is not spent until a node that has not been expanded (a finished leaf included), or
    (with `widen`) a node due for another expansion (:func:`due_for_widening`).

    Without `widen` a node none of whose children can be selected is exhausted and selection
    restarts. Returns None when nothing in the tree can be selected.
    """
    while not tree.root.exhausted:
        node = tree.root
        while node.expanded:
            options = [c for c in tree.children(node) if not spent(c)]
            if widen and due_for_widening(node, options, branch):
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


def expand(
    tree: Tree,
    node: Node,
    world: World,
    question: Question,
    params: SamplingParams,
    self_critic: str = "world",
    widen: bool = False,
) -> SearchGen:
    """Thought expansion (Alg. 2 lines 15-19): ask the policy for `params.n` next steps of
    `node`'s path (with the self-critic's hint for it, if any), add the new distinct ones as
    children (`steps.expand_node`), and value the new legal children with the PRM in one
    request, v_C' <- V(p_C'|q) (Eq. 1-2 are not applied during search). A node that yields
    nothing new and legal may be saturated (:func:`gives_up`), and exhausted when nothing
    below it is open. `self_critic` is the critic mode (`world`, `llm`, `off`): unless off,
    the world's parser ends paths."""
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
        if gives_up(node, params.temperature == 0, widen):
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
    """Greedy MC rollout from `node`: at each of m (`rollout_steps`) steps sample d
    (`params.n`) continuations, value the legal ones, keep the best; the simulated steps are
    not added to the tree. Returns v_max, the best value seen (0 if a step found nothing
    legal), or None when not even a first step could be taken from a finished path (nothing
    can follow it: the rollout learnt nothing, the value stays as it is)."""
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
    """The rollout phase (Alg. 2 lines 20-28) on the chosen child `node`: simulate (unless
    its path is known to be finished: then v_max is its own value, the authors'
    greedyPolicy), blend by Eq. 34 (:func:`rollout_update`), and count the visit (the
    authors' roll_node.numVisits += 1)."""
    v_max: float | None = node.value
    if not ended(node):
        v_max = yield from greedy_rollout(tree, node, world, question, rollout_steps, params)
    if v_max is not None:
        node.mcts.rollout_v_max = v_max
        node.value = rollout_update(node.value, v_max, alpha)
    node.visits += 1


def backpropagate(tree: Tree, node: Node) -> None:
    """Backpropagation (Alg. 2 line 31, Eq. 35-36): from `node` up to the root, one more
    visit each, and the value of every expanded node becomes the visit-weighted mean of its
    children's values (:func:`visit_weighted_value`)."""
    current: Node | None = node
    while current is not None:
        current.visits += 1
        if current.expanded:
            mean = visit_weighted_value(tree.children(current))
            if mean is not None:
                current.value = mean
        current = tree.parent(current)


# ---------------------------------------------------------------------------- one iteration
@dataclass(frozen=True)
class Round:
    """What one :func:`iteration` did: the selected leaf (None: nothing left to select),
    whether it counts as one of the T iterations (not when the leaf was a dead end at the
    depth cap), whether the search stops, and its line of the tree's trace
    (:func:`trace_entry`)."""

    leaf: Node | None
    counted: bool = False
    stop: bool = False
    record: str | None = None


def _numbers(values: Sequence[float | int | None]) -> str:
    """Comma-joined numbers for the trace: ids as they are, values with 4 decimals (``nan``,
    ``inf``, ``-inf`` by name), None as ``-``."""
    return ",".join("-" if v is None else str(v) if isinstance(v, int) else
                    str(round(float(v), 4)) for v in values)


def trace_entry(
    tree: Tree, path: Sequence[int], phase: str, children: Sequence[Node] = (),
    rolled: Node | None = None, stop: bool = False,
) -> str:
    """The trace of one :func:`iteration`: one line, for replaying the search (the viewer,
    ``stage=view``), e.g. ``expand path=0,2 new=5,6,7 rollout=6,0.9,0.85
    values=0.61,0.7 stop``. The words, in this order, ``key=`` lists comma-separated:

    * the phase, what happened at the selected leaf: ``end_gate`` (a leaf with v >= l: the
      answer if the search stops, else only visited), ``finished`` (the self-critic ended
      its path), ``dead_end`` (the depth cap: no iteration) or ``expand``;
    * ``path=``: the node ids selection walked, root to the leaf;
    * ``new=``: the ids of the new children (their PRM values are the nodes' ``prm_score``);
    * ``rollout=``: the child rolled out from, its rollout's v_max (``-``: none) and its
      value after Eq. 34;
    * ``values=``: the path's values after the iteration (backpropagated, Eq. 35-36);
    * ``stop``: the search stops here.

    A line, not an object, so that a saved tree (indented JSON) grows by one line per
    iteration; values keep 4 decimals; words with nothing to say are left out.
    """
    words = [phase, f"path={_numbers(path)}"]
    if children:
        words.append(f"new={_numbers([c.id for c in children])}")
    if rolled is not None:
        words.append(f"rollout={_numbers([rolled.id, rolled.mcts.rollout_v_max, rolled.value])}")
    words.append(f"values={_numbers([tree.nodes[i].value for i in path])}")
    if stop:
        words.append("stop")
    return " ".join(words)


def iteration(
    tree: Tree, world: World, question: Question, config: MCTSStarConfig
) -> Generator[Request, Answer, Round]:
    """One MCTS* iteration (Alg. 2 lines 4-31; PAPER.md §2):

    1. selection of a leaf C by UCT (lines 4-8, Eq. 33);
    2. the stop test (lines 9-11): under the paper's rule a leaf with v_C >= l is the
       answer, neither judged nor expanded;
    3. the self-critic (line 13, App. F): at end of inference C is a finished leaf,
       visited but never expanded;
    4. thought expansion of C, whose v_C < l (lines 15-19): b children, each valued by the
       PRM, v_C' <- V(p_C'|q);
    5. greedy MC rollout from the best new child (lines 20-28):
       v_C' <- alpha * v_C' + (1 - alpha) * v_max (Eq. 34);
    6. :func:`should_stop`, then backpropagation (line 31): every ancestor's value becomes
       the visit-weighted mean of its children's (Eq. 35-36) -- except when the search
       stops at C by the paper's rule: Alg. 2 returns C at line 11, before line 31.
    """
    leaf = select(tree, config.exploration_constant, config.widen, config.branch, config.uct,
                  config.unvisited_bonus)  # 1.
    if leaf is None:
        return Round(None)
    path = [tree.root.id, *(n.id for n in tree.path(leaf))]  # for the trace
    rolled: Node | None = None  # the child rolled out from, if any
    found: Sequence[Node]  # what this iteration found: the leaf, or its new children
    if config.stop_rule == "selected" and at_end_gate(tree, leaf, config.end_gate):
        phase, found = "end_gate", ()  # 2. the answer if the search stops (else: visited)
    elif (yield from self_critic(tree, leaf, world, question, config.self_critic,
                                 config.critic_max_tokens, ask=leaf.depth < config.max_depth)):
        mark_exhausted(tree, leaf, propagate=not config.widen)  # 3. end of inference
        phase, found = "finished", (leaf,)
    elif leaf.depth >= config.max_depth:  # this repo's depth cap: a dead end, no iteration
        mark_exhausted(tree, leaf, propagate=not config.widen)
        return Round(leaf, record=trace_entry(tree, path, "dead_end"))
    else:  # 4. Under stop_rule=finished a leaf already at l is continued by one greedy step.
        phase = "expand"
        if at_end_gate(tree, leaf, config.end_gate):
            params = step_params(1, 0.0, config.max_step_tokens)
        else:
            params = step_params(config.branch, config.temperature, config.max_step_tokens)
        found = yield from expand(tree, leaf, world, question, params, config.self_critic,
                                  config.widen)
        candidates = [c for c in found if not spent(c)]  # legal, finished ones included
        if candidates and config.rollout_steps > 0:  # 5.
            params = step_params(config.rollout_branch, config.rollout_temperature,
                                 config.max_step_tokens)
            rolled = max(candidates, key=lambda c: c.value)
            yield from rollout(tree, rolled, world, question, config.rollout_steps, params,
                               config.alpha)
    stop = should_stop(tree, leaf, found, config)  # 6.
    if not (stop and config.stop_rule == "selected"):
        backpropagate(tree, leaf)
    children = found if phase == "expand" else ()
    return Round(leaf, counted=True, stop=stop,
                 record=trace_entry(tree, path, phase, children, rolled, stop))


# ---------------------------------------------------------------------------- the answer
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


def final_answer(tree: Tree, config: MCTSStarConfig, stopped_at: Node | None = None) -> Node:
    """The node the search answers with: under the paper's stop rule the leaf that stopped
    it (Alg. 2 line 11), else :func:`choose_answer` on the tree."""
    if stopped_at is not None and config.stop_rule == "selected":
        return stopped_at
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


def complete(
    tree: Tree, node: Node, world: World, question: Question, config: MCTSStarConfig
) -> Generator[Request, Answer, SampledPath]:
    """Complete `node`'s unfinished path: the policy continues it greedily in one Generate
    request (no step stop, capped at `max_step_tokens` per step left above the depth cap,
    at least one step's worth), and the world's parser judges the continuation step by step
    (cut at its first illegal step: :func:`~rest_mcts.search.selection.judge_solution`). The
    tree is not changed (the completion is not a node), so the trees' PRM training data is
    the same."""
    steps = tree.steps(node)
    budget = config.max_step_tokens * max(config.max_depth - node.depth, 1)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=budget, stop=())
    (out,) = yield Generate((policy_prompt(question.text, steps, prompt_format(world)),), params)
    return judge_solution(question, world, out.completions[0], node.value, prefix=steps)


def finish_answer(
    tree: Tree, node: Node, world: World, question: Question, config: MCTSStarConfig
) -> Generator[Request, Answer, tuple[ChosenPath, SampledPath | None]]:
    """The search's answer from its answer node `node`: its path as it stands when finished
    or with `finish=as_is`; else (`finish=complete`, the authors' code lets the policy
    write the final answer from the chosen node) its greedy completion (:func:`complete`),
    with `node`'s value. Returns the answer and the judged completion (None when there was
    none)."""
    chosen = chosen_path(tree, node)
    if chosen.finished or config.finish == "as_is":
        return chosen, None
    path = yield from complete(tree, node, world, question, config)
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
    """MCTS* for one question: up to T iterations (:func:`iteration`), then the answer.

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
    tree = Tree(question.id, question.text)
    schedule = checkpoint_schedule(config.t_checkpoints, config.iterations)
    curve: list[TCheckpoint] = []
    meter = TokenMeter()  # policy tokens so far, for the T curve
    done = 0
    stopped_at: Node | None = None
    trace: list[str] = []  # one line per iteration (trace_entry), saved with the tree
    while done < config.iterations:
        if len(curve) < len(schedule) and schedule[len(curve)] <= done:
            # the T curve: a run with T = done would end here and answer by the same rule
            # (as it stands: an unfinished answer is not completed here)
            record_checkpoints(curve, schedule, done,
                               chosen_path(tree, final_answer(tree, config)), meter.tokens)
        step = yield from metered(iteration(tree, world, question, config), meter)
        if step.leaf is None:
            break  # nothing left to select: every path explored, no finished leaf
        trace.append(step.record)
        if step.counted:
            done += 1
        if step.stop:
            stopped_at = step.leaf
            break
    best = final_answer(tree, config, stopped_at)
    chosen, completion = yield from metered(
        finish_answer(tree, best, world, question, config), meter)
    record_checkpoints(curve, schedule, math.inf, chosen, meter.tokens)  # stopped: kept
    return SearchResult(
        steps=chosen.steps,
        answer=chosen.answer,
        finished=chosen.finished,
        value=chosen.value,
        tree={**tree.to_dict(), "trace": trace},
        info={
            "iterations": done,
            "nodes": len(tree.nodes),
            "stopped_at_end_gate": stopped_at is not None,
            "finished_nodes": len(tree.finished()),
            "completed": completion is not None,
            "completion_tokens": completion.tokens if completion is not None else 0,
            **(critic_stats(tree) if config.self_critic == "llm" else {}),
            **({"t_curve": [c.to_dict() for c in curve]} if curve else {}),
        },
    )

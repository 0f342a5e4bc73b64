"""Baseline searches for one question: CoT, self-consistency, best-of-N, weighted vote, BFS,
and ``sampled``, the one sampling pass that serves every sample-selection rule.

Each public function takes its typed config (:mod:`rest_mcts.search.configs`, checked on
construction; None means the defaults) and the run's token cap, then returns a generator (a
:data:`~rest_mcts.search.requests.SearchGen`) that the engine drives: it ``yield``s
:class:`Generate` / :class:`Score` requests and ``return``s a :class:`SearchResult`.

The searches see only the :class:`Question` (``question.id`` and ``question.text``), never
a :class:`Problem`: passing a ``Problem`` raises ``TypeError``. "Finished" and the stated
answer come from the world's step parser (in Countdown the target is part of the question
text), so a finished path may still be wrong, e.g. a Countdown path whose last number left
is not the target: such a path is a dead end that states its (wrong) last number.
Whether an answer is *correct* is judged later, by the stage that holds the ``Problem``.

The judged samples and the rules that choose among them (:mod:`rest_mcts.search.selection`:
:class:`SampledPath`, :func:`judge_solution`, :func:`vote`, :func:`best_path`) are shared
with the selection of the sampled pass. Answer voting counts only legal finished paths whose
answer parses (``answer is not None``); ties go to the answer seen first.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Generator, Sequence

from rest_mcts.backends.base import SamplingParams
from rest_mcts.prompts import policy_prompt, prompt_format
from rest_mcts.search.configs import (
    BestOfNConfig,
    BFSConfig,
    CoTConfig,
    SampledPassConfig,
    SearchConfig,
    SelfConsistencyConfig,
    WeightedVoteConfig,
)
from rest_mcts.search.requests import (
    Answer,
    Generate,
    Request,
    Score,
    SearchGen,
    SearchResult,
    step_params,
)
from rest_mcts.search.selection import (
    SampledPath,
    best_of_n_pick,
    judge_solution,
    majority_pick,
    step_prefixes,
    vote,
    weighted_vote_pick,
)
from rest_mcts.search.steps import expand_node
from rest_mcts.search.tree import Node, Tree
from rest_mcts.worlds.base import Question, World


# ---------------------------------------------------------------------------- sampled paths
def _sample_paths(
    question: Question, world: World, n: int, temperature: float, max_new_tokens: int
) -> Generator[Request, Answer, list[SampledPath]]:
    """Sample ``n`` full solutions in one request and judge them."""
    params = SamplingParams(
        n=n, temperature=temperature, max_new_tokens=max_new_tokens, stop=()
    )
    outputs = yield Generate((policy_prompt(question.text, (), prompt_format(world)),), params)
    return [judge_solution(question, world, c) for c in outputs[0].completions]


def _score_paths(
    question: Question, paths: list[SampledPath]
) -> Generator[Request, Answer, list[SampledPath]]:
    """One Score request for every path's legal prefix; the paths with their values."""
    values = yield Score(tuple((question.text, p.steps) for p in paths))
    return [_with_value(p, v) for p, v in zip(paths, values)]


def _with_value(path: SampledPath, value: float) -> SampledPath:
    return dataclasses.replace(path, value=float(value))


def _samples_record(question: Question, method: str, paths: Sequence[SampledPath]) -> dict:
    return {
        "question_id": question.id,
        "question": question.text,
        "method": method,
        "samples": [p.record() for p in paths],
    }


def _sample_info(paths: Sequence[SampledPath], tally: dict[str, float]) -> dict[str, Any]:
    return {
        "samples": len(paths),
        "finished_paths": sum(p.finished for p in paths),
        "fully_legal_paths": sum(not p.error for p in paths),
        "distinct_answers": len(tally),
    }


def _path_result(
    path: SampledPath, value: float, tree: dict, info: dict[str, Any]
) -> SearchResult:
    """A result choosing ``path`` (its answer only when it is finished)."""
    return SearchResult(
        steps=path.steps,
        answer=path.answer if path.finished else None,
        finished=path.finished,
        value=float(value),
        tree=tree,
        info=info,
    )


# ---------------------------------------------------------------------------- CoT
def cot(
    question: Question, world: World, config: CoTConfig | None = None, *, max_new_tokens: int
) -> SearchGen:
    """Chain of thought: one greedy full solution, cut at its first illegal step.

    Args:
        question: the question.
        world: the step parser.
        config: the knobs (temperature 0: greedy); None: the defaults.
        max_new_tokens: token cap for the solution.

    Returns:
        The search generator. Its result's ``value`` is 1.0 when the path is finished,
        else 0.0 (CoT has no value model).

    Raises:
        TypeError: if ``question`` is not a Question (e.g. a Problem) or ``config`` not a
            CoTConfig.
        ValueError: if ``max_new_tokens`` < 1.
    """
    _require_question(question, "cot")
    _require_config(config, CoTConfig)
    _require_positive(max_new_tokens=max_new_tokens)
    return _cot(question, world, max_new_tokens)


def _cot(question: Question, world: World, max_new_tokens: int) -> SearchGen:
    paths = yield from _sample_paths(question, world, 1, 0.0, max_new_tokens)
    path = paths[0]
    info = {**_sample_info(paths, vote(paths)[1]), "steps": len(path.steps)}
    return _path_result(path, float(path.finished), _samples_record(question, "cot", paths), info)


# ---------------------------------------------------------------------------- self-consistency
def self_consistency(
    question: Question,
    world: World,
    config: SelfConsistencyConfig | None = None,
    *,
    max_new_tokens: int,
) -> SearchGen:
    """Self-consistency: ``n`` sampled solutions, majority vote over their answers.

    The chosen path is the first path stating the winning answer; its value is the winner's
    vote share (votes / n). With no finished path: the first sample's legal prefix, answer
    None.

    Raises:
        TypeError: if ``question`` is not a Question or ``config`` of the wrong type.
        ValueError: if ``max_new_tokens`` < 1.
    """
    _require_question(question, "self_consistency")
    config = _require_config(config, SelfConsistencyConfig)
    _require_positive(max_new_tokens=max_new_tokens)
    return _self_consistency(question, world, config.n, config.temperature, max_new_tokens)


def _self_consistency(
    question: Question, world: World, n: int, temperature: float, max_new_tokens: int
) -> SearchGen:
    paths = yield from _sample_paths(question, world, n, temperature, max_new_tokens)
    winner, tally = vote(paths)
    tree = _samples_record(question, "self_consistency", paths)
    info = _sample_info(paths, tally)
    chosen = majority_pick(paths)
    share = tally[winner] / len(paths) if winner is not None else 0.0
    return _path_result(chosen, share, tree, {**info, "vote_share": share})


# ---------------------------------------------------------------------------- best-of-N
def best_of_n(
    question: Question,
    world: World,
    config: BestOfNConfig | None = None,
    *,
    max_new_tokens: int,
) -> SearchGen:
    """Best-of-N: ``n`` sampled solutions scored by the value model in one request.

    The chosen path is the highest-valued legal finished path (fallback: the highest-valued
    path of all, which is then unfinished). Ties go to the first sample.

    Raises:
        TypeError: if ``question`` is not a Question or ``config`` of the wrong type.
        ValueError: if ``max_new_tokens`` < 1.
    """
    _require_question(question, "best_of_n")
    config = _require_config(config, BestOfNConfig)
    _require_positive(max_new_tokens=max_new_tokens)
    return _best_of_n(question, world, config.n, config.temperature, max_new_tokens)


def _best_of_n(
    question: Question, world: World, n: int, temperature: float, max_new_tokens: int
) -> SearchGen:
    paths = yield from _sample_paths(question, world, n, temperature, max_new_tokens)
    paths = yield from _score_paths(question, paths)
    chosen = best_of_n_pick(paths)
    info = {**_sample_info(paths, vote(paths)[1]), "best_value": chosen.value}
    tree = _samples_record(question, "best_of_n", paths)
    return _path_result(chosen, chosen.value or 0.0, tree, info)


# ---------------------------------------------------------------------------- weighted vote
def weighted_vote(
    question: Question,
    world: World,
    config: WeightedVoteConfig | None = None,
    *,
    max_new_tokens: int,
) -> SearchGen:
    """Weighted vote: like self-consistency, but each finished path votes with its value.

    The values come from ONE Score request for all ``n`` paths. The chosen path is the
    highest-valued path stating the winning answer (fallback with no finished path: the
    highest-valued path, unfinished). Ties go to the answer / sample seen first.

    Raises:
        TypeError: if ``question`` is not a Question or ``config`` of the wrong type.
        ValueError: if ``max_new_tokens`` < 1.
    """
    _require_question(question, "weighted_vote")
    config = _require_config(config, WeightedVoteConfig)
    _require_positive(max_new_tokens=max_new_tokens)
    return _weighted_vote(question, world, config.n, config.temperature, max_new_tokens)


def _weighted_vote(
    question: Question, world: World, n: int, temperature: float, max_new_tokens: int
) -> SearchGen:
    paths = yield from _sample_paths(question, world, n, temperature, max_new_tokens)
    paths = yield from _score_paths(question, paths)
    winner, tally = vote(paths, weighted=True)
    tree = _samples_record(question, "weighted_vote", paths)
    info = {**_sample_info(paths, tally), "majority_answer": vote(paths)[0],
            "vote_weight": tally[winner] if winner is not None else 0.0}
    chosen = weighted_vote_pick(paths)
    return _path_result(chosen, chosen.value or 0.0, tree, info)


# ---------------------------------------------------------------------------- sampled pass
def sampled(
    question: Question,
    world: World,
    config: SampledPassConfig | None = None,
    *,
    max_new_tokens: int,
) -> SearchGen:
    """One sampling pass for every sample-selection rule: ``n`` full solutions in ONE
    Generate request, then ONE Score request for every distinct legal step prefix of every
    sample (the engine's per-question value memo makes a prefix it has seen free).

    Each sample keeps its text, steps, finished, answer, tokens, the value of each step
    prefix (``step_values``) and its last value (``value``). They are the point of the
    search: the result's ``tree`` holds them, and ``info["paths"]`` hands them to the runner,
    which judges each against the gold answer into the ``samples`` of the results row, from
    which :mod:`rest_mcts.search.selection` evaluates self-consistency, best-of-N (last value
    and product), the weighted vote and pass@N at every N <= n. The search's own answer is
    the best-of-N pick by the last value over all ``n``.

    Raises:
        TypeError: if ``question`` is not a Question or ``config`` of the wrong type.
        ValueError: if ``max_new_tokens`` < 1.
    """
    _require_question(question, "sampled")
    config = _require_config(config, SampledPassConfig)
    _require_positive(max_new_tokens=max_new_tokens)
    return _sampled(question, world, config.n, config.temperature, max_new_tokens)


def _sampled(
    question: Question, world: World, n: int, temperature: float, max_new_tokens: int
) -> SearchGen:
    paths = yield from _sample_paths(question, world, n, temperature, max_new_tokens)
    prefixes = step_prefixes(paths)
    values = yield Score(tuple((question.text, prefix) for prefix in prefixes))
    value_of = dict(zip(prefixes, (float(v) for v in values)))
    paths = [_with_step_values(p, [value_of[p.steps[:k]] for k in range(1, len(p.steps) + 1)])
             for p in paths]
    chosen = best_of_n_pick(paths)
    info = {**_sample_info(paths, vote(paths)[1]), "best_value": chosen.value,
            "step_prefixes": len(prefixes), "paths": [p.record() for p in paths]}
    tree = _samples_record(question, "sampled", paths)
    return _path_result(chosen, chosen.value or 0.0, tree, info)


def _with_step_values(path: SampledPath, values: list[float]) -> SampledPath:
    """The path with its step values and, as its value, the last (None without steps)."""
    return dataclasses.replace(path, step_values=tuple(values),
                               value=values[-1] if values else None)


# ---------------------------------------------------------------------------- BFS
def bfs(question: Question, world: World, config: BFSConfig | None = None) -> SearchGen:
    """Breadth-first beam search over steps (Tree-of-Thoughts style), guided by the PRM.

    At each depth, ONE Generate request asks for ``branch`` next steps of every frontier
    node; each proposal is cut after its first newline and parsed with
    ``world.check_step``. Identical steps under one parent are merged (their tokens are
    added up, ``info["samples"]`` counts them); illegal steps are kept as illegal child
    nodes with value 0. ONE Score request values every new legal node; finished nodes
    become terminal leaves; the ``beam_width`` best unfinished new nodes form the next
    frontier. The search stops when the frontier is empty or ``max_depth`` steps are
    reached. Every generated child is recorded, so the tree can train the PRM.

    The chosen path is the highest-valued finished node (fallback: the highest-valued
    legal node, unfinished; the empty path when there is none). Ties: the earlier node.

    Args:
        question: the question.
        world: the step parser.
        config: ``branch`` (steps sampled per frontier node), ``beam_width`` (frontier size
            kept per depth), ``max_depth`` (most steps in a path), ``temperature`` and
            ``max_step_tokens`` of the step proposals, ``score`` (false: no Score requests,
            every value stays 0: tree sampling without a PRM); None: the defaults.

    Returns:
        The search generator; its result's ``tree`` is ``Tree.to_dict()``.

    Raises:
        TypeError: if ``question`` is not a Question or ``config`` of the wrong type.
    """
    _require_question(question, "bfs")
    config = _require_config(config, BFSConfig)
    params = step_params(config.branch, config.temperature, config.max_step_tokens)
    return _bfs(question, world, params, config.beam_width, config.max_depth, config.score)


def _bfs(
    question: Question, world: World, params: SamplingParams, beam_width: int, max_depth: int,
    score: bool = True,
) -> SearchGen:
    tree = Tree(question.id, question.text)
    frontier = [tree.root]
    depth = 0
    while frontier and depth < max_depth:
        fmt = prompt_format(world)
        prompts = tuple(policy_prompt(question.text, tree.steps(node), fmt) for node in frontier)
        outputs = yield Generate(prompts, params)
        new_nodes: list[Node] = []
        for parent, output in zip(frontier, outputs):
            new_nodes += expand_node(tree, parent, output.completions, world, question)
        legal = [node for node in new_nodes if node.legal]
        if score:
            values = yield Score(tuple((question.text, tree.steps(node)) for node in legal))
            for node, value in zip(legal, values):
                node.prm_score = node.value = float(value)
        frontier = top_nodes([n for n in legal if not n.terminal], beam_width)
        depth += 1
    chosen = choose_node(tree)
    return SearchResult(
        steps=tree.steps(chosen),
        answer=chosen.answer if chosen.terminal else None,
        finished=chosen.terminal,
        value=chosen.value,
        tree=tree.to_dict(),
        info=_tree_info(tree, depth),
    )


def top_nodes(nodes: Sequence[Node], k: int) -> list[Node]:
    """The ``k`` highest-valued nodes (ties: the earlier node), best first."""
    return sorted(nodes, key=lambda node: (-node.value, node.id))[:k]


def choose_node(tree: Tree) -> Node:
    """Highest-valued finished node; else the highest-valued legal node; else the root."""
    finished = tree.finished()
    if finished:
        return top_nodes(finished, 1)[0]
    legal = [node for node in tree.nodes[1:] if node.legal]
    return top_nodes(legal, 1)[0] if legal else tree.root


def _tree_info(tree: Tree, depth: int) -> dict[str, Any]:
    nodes = tree.nodes[1:]
    return {
        "nodes": len(nodes),
        "expanded": sum(node.expanded for node in tree.nodes),
        "illegal_nodes": sum(not node.legal for node in nodes),
        "finished_nodes": len(tree.finished()),
        "depth": depth,
    }


# ---------------------------------------------------------------------------- checks
def _require_question(question: object, method: str) -> None:
    """Test-time search takes a Question only (a Problem would carry the gold answer)."""
    if not isinstance(question, Question):
        raise TypeError(
            f"{method} takes a Question (id and text only), got {type(question).__name__}; "
            "test-time search must never see a Problem's gold answer"
        )


def _require_config(config: SearchConfig | None, cls: type[SearchConfig]) -> Any:
    """The method's config (its defaults for None); TypeError for another method's."""
    if config is None:
        return cls()
    if not isinstance(config, cls):
        raise TypeError(f"{cls.name} takes a {cls.__name__}, got {type(config).__name__}")
    return config


def _require_positive(**knobs: int) -> None:
    for name, value in knobs.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

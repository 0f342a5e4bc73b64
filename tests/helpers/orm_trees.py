"""Verified Countdown trees for the outcome reward model's tests: each holds a solver's correct
solution and random legal finished paths, merged on shared steps and labelled by the verifier."""

from __future__ import annotations

import random
from pathlib import Path

from rest_mcts.search.tree import Tree
from rest_mcts.search.verify import verify_tree
from rest_mcts.worlds.countdown import CountdownWorld

WORLD = CountdownWorld()  # data=countdown3's world


def sampled_tree(problem, rng: random.Random, paths: int = 4) -> Tree:
    """One correct trace and ``paths`` random legal traces of ``problem`` as a verified tree."""
    tree = Tree(problem.id, problem.question.text)
    traces = [WORLD.correct_trace(problem, rng)]
    traces += [WORLD.random_trace(problem.question, rng) for _ in range(paths)]
    for trace in traces:
        node, steps = tree.root, []
        for step in trace:
            check = WORLD.check_step(problem.question, steps, step)
            steps.append(step)
            child = next((c for c in tree.children(node) if c.step == step), None)
            node = child or tree.add_child(node, step, terminal=check.finished,
                                           answer=check.answer if check.finished else None)
    verify_tree(tree, problem, WORLD)
    return tree


def write_trees(folder: Path, n: int, seed: int = 0) -> list[Tree]:
    """``n`` sampled trees of training questions saved as ``folder/<id>.json``."""
    rng = random.Random(seed)
    trees = [sampled_tree(p, rng) for p in WORLD.generate(n, seed=seed, split="train")]
    for tree in trees:
        tree.save(Path(folder) / f"{tree.question_id}.json")
    return trees

"""The Countdown world: reach a target from a few numbers with + - * /.

One module per job: `format` (the question and step texts, written and parsed), `rules` (the
legal moves, applying one, checking a step line), `solver` (the exact solver: fewest steps,
shortest or all solutions, the moves that keep a target reachable), `generator` (the
disjoint question pools by hash, `split_of`, and the seeded draw of problems) and `world`
(:class:`CountdownWorld`, the :class:`~rest_mcts.worlds.base.World` over them, with its oracle
and trace generators). The names below are the package's public ones
(``_target_: rest_mcts.worlds.countdown.CountdownWorld`` in `conf/data/countdown.yaml`).
"""

from rest_mcts.worlds.countdown.format import format_question, format_step, parse_question
from rest_mcts.worlds.countdown.generator import POOLS, SPLITS, split_of
from rest_mcts.worlds.countdown.rules import OPS, Move, apply_move, legal_moves
from rest_mcts.worlds.countdown.solver import fewest_steps, solutions, solve
from rest_mcts.worlds.countdown.world import CountdownWorld

__all__ = [
    "OPS",
    "POOLS",
    "SPLITS",
    "CountdownWorld",
    "Move",
    "apply_move",
    "fewest_steps",
    "format_question",
    "format_step",
    "legal_moves",
    "parse_question",
    "solutions",
    "solve",
    "split_of",
]

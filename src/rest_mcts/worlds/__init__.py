"""Reasoning worlds: the record types and protocol (``base``) and the built-in Countdown."""

from rest_mcts.worlds.base import Problem, Question, StepCheck, World
from rest_mcts.worlds.countdown import (
    OPS,
    SPLITS,
    CountdownWorld,
    Move,
    apply_move,
    fewest_steps,
    format_question,
    format_step,
    legal_moves,
    parse_question,
    solutions,
    solve,
    split_of,
)

__all__ = [
    "OPS",
    "SPLITS",
    "CountdownWorld",
    "Move",
    "Problem",
    "Question",
    "StepCheck",
    "World",
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

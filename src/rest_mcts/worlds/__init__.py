"""Reasoning worlds: the record types and protocol (`base`), the built-in Countdown
(`countdown`: solver, oracle, hash pools) and dataset-backed natural-language worlds (`text`)."""

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

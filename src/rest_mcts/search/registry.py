"""Search methods by config name (`search=<name>`), and binding one to its typed config.

``make_search(config, world, max_solution_tokens)`` returns a function
``Question -> SearchGen`` for the engine. ``config`` is the method's typed config
(:mod:`rest_mcts.search.configs`) or the composed ``cfg.search`` node, turned into one by
``search_config_from`` (a misspelt knob or a bad value then fails early, in one line).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from rest_mcts.search import baselines
from rest_mcts.search.configs import SearchConfig, method_of, search_config_from, search_names
from rest_mcts.search.requests import SearchGen
from rest_mcts.worlds.base import Question, World

SearchFn = Callable[..., SearchGen]

_NEEDS_SCORER = frozenset({"best_of_n", "weighted_vote", "sampled", "bfs", "mcts_star"})


def _load_mcts_star() -> SearchFn:
    """MCTS* lives in its own module, imported on first use."""
    from rest_mcts.search.mcts_star import mcts_star

    return mcts_star


def _mcts_star(question: Question, world: World, config: Any = None) -> SearchGen:
    """MCTS* (``rest_mcts.search.mcts_star.mcts_star``), imported lazily."""
    return _load_mcts_star()(question, world, config)


# Each takes (question, world, config) and, where it samples whole solutions, the keyword
# max_new_tokens (the run's solution token cap, data.max_solution_tokens).
SEARCHES: dict[str, SearchFn] = {
    "cot": baselines.cot,
    "self_consistency": baselines.self_consistency,
    "best_of_n": baselines.best_of_n,
    "weighted_vote": baselines.weighted_vote,
    "sampled": baselines.sampled,
    "bfs": baselines.bfs,
    "mcts_star": _mcts_star,
}

_LAZY: dict[str, Callable[[], SearchFn]] = {"mcts_star": _load_mcts_star}


def _check_name(name: str) -> str:
    """The registered method of ``name`` (a named variant runs its method's function)."""
    method = method_of(name)
    if method not in SEARCHES:
        raise ValueError(f"unknown search {name!r}; choose from {', '.join(search_names())}")
    return method


def search_function(name: str) -> SearchFn:
    """The search function registered as ``name`` (lazy ones are imported here); a named
    variant (``search=mcts_star_widen``) gives its method's function.

    Raises:
        ValueError: if ``name`` is not registered.
    """
    name = _check_name(name)
    return _LAZY[name]() if name in _LAZY else SEARCHES[name]


def needs_scorer(name: str) -> bool:
    """Whether the search ``name`` sends Score requests (needs a value model / PRM).

    Raises:
        ValueError: if ``name`` is not registered.
    """
    return _check_name(name) in _NEEDS_SCORER


def config_needs_scorer(config: SearchConfig) -> bool:
    """Whether a configured search sends Score requests: its method does
    (:func:`needs_scorer`) and the config does not switch scoring off (``search=bfs
    search.score=false``, the tree sampling of D_V0)."""
    return needs_scorer(config.name) and bool(getattr(config, "score", True))


def make_search(
    config: SearchConfig | Mapping[str, Any], world: World, max_solution_tokens: int
) -> Callable[[Question], SearchGen]:
    """Bind a search method to its config and world.

    Args:
        config: the method's typed config, or a ``search`` config node (``name`` plus
            knobs; a plain mapping or an OmegaConf node), converted by
            :func:`~rest_mcts.search.configs.search_config_from`.
        world: the world whose step parser the search uses.
        max_solution_tokens: token cap for a full solution (``max_new_tokens`` of the
            methods that sample whole solutions).

    Returns:
        ``start(question) -> SearchGen``.

    Raises:
        ValueError: (a ConfigError) for an unknown search name, an unknown knob (named
            ``search.<key>``, with the allowed ones listed), a bad knob value, or a knob
            value that does not suit the world (``search.self_critic=llm`` on Countdown).
    """
    config = search_config_from(config)
    config.check_world(world)
    function = search_function(config.name)
    extra: dict[str, Any] = {}
    if "max_new_tokens" in inspect.signature(function).parameters:
        extra["max_new_tokens"] = int(max_solution_tokens)

    def start(question: Question) -> SearchGen:
        return function(question, world, config, **extra)

    start.__name__ = f"{config.name}_search"
    return start

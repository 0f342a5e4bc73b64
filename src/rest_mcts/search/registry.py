"""Search methods by config name (`search=<name>`), and building one from its config.

``make_search(cfg.search, world, cfg.data.max_solution_tokens)`` returns a function
``Question -> SearchGen`` for the engine; every config key except ``name`` becomes a
keyword argument of the search function, so a misspelt knob fails early, naming it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from rest_mcts.search import baselines
from rest_mcts.search.requests import SearchGen
from rest_mcts.worlds.base import Question, World

SearchFn = Callable[..., SearchGen]

# Knob names that receive the data config's solution token cap when the config omits them.
_SOLUTION_TOKEN_KNOBS = ("max_new_tokens", "max_solution_tokens")
_NEEDS_SCORER = frozenset({"best_of_n", "weighted_vote", "bfs", "mcts_star"})


def _load_mcts_star() -> SearchFn:
    """MCTS* lives in its own module, imported on first use."""
    from rest_mcts.search.mcts_star import mcts_star

    return mcts_star


def _mcts_star(question: Question, world: World, **knobs: Any) -> SearchGen:
    """MCTS* (``rest_mcts.search.mcts_star.mcts_star``), imported lazily."""
    return _load_mcts_star()(question, world, **knobs)


SEARCHES: dict[str, SearchFn] = {
    "cot": baselines.cot,
    "self_consistency": baselines.self_consistency,
    "best_of_n": baselines.best_of_n,
    "weighted_vote": baselines.weighted_vote,
    "bfs": baselines.bfs,
    "mcts_star": _mcts_star,
}

_LAZY: dict[str, Callable[[], SearchFn]] = {"mcts_star": _load_mcts_star}


def _check_mcts_star(knobs: Mapping[str, Any], world: World) -> None:
    """MCTS*'s self-critic mode must suit the world (checked before any search starts)."""
    from rest_mcts.search.mcts_star import critic_mode

    critic_mode(knobs.get("self_critic", "world"), world)


# Checks of knob values against the world, run when a search is bound (a bad value then
# fails before the first question, not inside the engine).
_CHECKS: dict[str, Callable[[Mapping[str, Any], World], None]] = {"mcts_star": _check_mcts_star}


def search_function(name: str) -> SearchFn:
    """The search function registered as ``name`` (lazy ones are imported here).

    Raises:
        ValueError: if ``name`` is not registered.
    """
    if name not in SEARCHES:
        raise ValueError(f"unknown search {name!r}; choose from {', '.join(sorted(SEARCHES))}")
    return _LAZY[name]() if name in _LAZY else SEARCHES[name]


def needs_scorer(name: str) -> bool:
    """Whether the search ``name`` sends Score requests (needs a value model / PRM).

    Raises:
        ValueError: if ``name`` is not registered.
    """
    if name not in SEARCHES:
        raise ValueError(f"unknown search {name!r}; choose from {', '.join(sorted(SEARCHES))}")
    return name in _NEEDS_SCORER


def make_search(
    search_cfg: Mapping[str, Any], world: World, max_solution_tokens: int
) -> Callable[[Question], SearchGen]:
    """Bind a search config's knobs to its function.

    Args:
        search_cfg: the ``search`` config group (``name`` plus the method's knobs; a plain
            mapping or an OmegaConf node).
        world: the world whose step parser the search uses.
        max_solution_tokens: token cap for a full solution; given to a ``max_new_tokens``
            (or ``max_solution_tokens``) argument when the config does not set it.

    Returns:
        ``start(question) -> SearchGen``.

    Raises:
        ValueError: for an unknown search name, an unknown knob (named ``search.<key>``,
            with the allowed ones listed), a missing required knob or a knob value that does
            not suit the world (e.g. ``search.self_critic=llm`` on Countdown).
    """
    knobs = _plain(search_cfg)
    name = knobs.pop("name", None)
    if name is None:
        raise ValueError("search config needs a 'name'")
    function = search_function(str(name))
    accepted, required, open_ended = _keyword_arguments(function)
    _check_knobs(name, knobs, accepted, open_ended)
    if name in _CHECKS:
        _CHECKS[name](knobs, world)
    for knob in _SOLUTION_TOKEN_KNOBS:
        if knob in accepted and knob not in knobs:
            knobs[knob] = int(max_solution_tokens)
    missing = sorted(required - set(knobs))
    if missing:
        raise ValueError(
            f"search {name!r} needs {', '.join(f'search.{k}' for k in missing)} in its config"
        )

    def start(question: Question) -> SearchGen:
        return function(question, world, **knobs)

    start.__name__ = f"{name}_search"
    return start


def _plain(search_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict copy of the config (OmegaConf nodes resolved)."""
    try:
        from omegaconf import OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return dict(search_cfg)
    if OmegaConf.is_config(search_cfg):
        return dict(OmegaConf.to_container(search_cfg, resolve=True))  # type: ignore[arg-type]
    return dict(search_cfg)


def _keyword_arguments(function: SearchFn) -> tuple[set[str], set[str], bool]:
    """(accepted knob names, required ones, whether it takes ``**kwargs``)."""
    accepted: set[str] = set()
    required: set[str] = set()
    open_ended = False
    for position, parameter in enumerate(inspect.signature(function).parameters.values()):
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            open_ended = True
        elif position >= 2 and parameter.kind in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            accepted.add(parameter.name)
            if parameter.default is inspect.Parameter.empty:
                required.add(parameter.name)
    return accepted, required, open_ended


def _check_knobs(
    name: str, knobs: Mapping[str, Any], accepted: set[str], open_ended: bool
) -> None:
    if open_ended:
        return
    for key in knobs:
        if key not in accepted:
            raise ValueError(
                f"search.{key} is not a knob of search {name!r}; "
                f"allowed: {', '.join(sorted(accepted))}"
            )

"""Which keys a Hydra multirun sweeps, and a job's values of them: one rule for the sweep's
summary (:mod:`rest_mcts.sweeps.jobs`) and the wandb run's name (:mod:`rest_mcts.tracking`).

A key is swept when its last override has more than one value (``seed=0,1``,
``search.alpha=range(0,1,0.25)``, a group choice ``model=tiny,smollm2``). The overrides are
``hydra.sweeper.params`` (a ``sweep=...`` config) followed by the command line's, as Hydra's
basic sweeper merges them: a later override of a key wins (``sweep=alpha seed=1`` sweeps
``search.alpha`` only).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def _parse(overrides: Sequence[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(overrides))


def sweep_overrides(params: Mapping[str, Any] | None, task: Sequence[str]) -> list[str]:
    """The sweep's overrides in Hydra's order: ``hydra.sweeper.params`` (``key: values``),
    then the command line's ``task`` overrides."""
    return [f"{k}={v}" for k, v in (params or {}).items()] + [str(o) for o in task]


def swept_keys(overrides: Sequence[str]) -> tuple[str, ...]:
    """The keys whose last override in ``overrides`` (:func:`sweep_overrides`) sweeps, in the
    order of those overrides."""
    keys: dict[str, None] = {}
    for override in _parse(overrides):  # later wins, as in the sweeper
        keys.pop(override.get_key_element(), None)
        if override.is_sweep_override():
            keys[override.get_key_element()] = None
    return tuple(keys)


def job_values(overrides: Sequence[str], swept: Sequence[str]) -> dict[str, str]:
    """A job's values of the ``swept`` keys (in that order), read from its overrides
    (``key=value`` strings, e.g. ``hydra.overrides.task`` of the job)."""
    found = {o.get_key_element(): o.get_value_element_as_str() for o in _parse(overrides)
             if not o.is_sweep_override()}
    return {key: found[key] for key in swept if key in found}

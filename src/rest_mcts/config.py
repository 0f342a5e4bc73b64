"""Config checking and the one place where objects are built from `_target_`.

Every run's config is validated before any work starts; a bad value stops the run with one
line that names the option and what it may be.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value is invalid; the message names the option and the allowed range."""


# ---------------------------------------------------------------------------- groups (CLI)
def available_choices(conf_dir: Path, group: str) -> list[str]:
    """Options of a config group: the yaml files in conf/<group>/."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def normalize_cli_args(conf_dir: Path, argv: list[str]) -> list[str]:
    """Check group choices (see `check_cli_choices`) and turn `group=null` into Hydra's
    `~group` (drop the group), so `logger=null` switches logging off."""
    check_cli_choices(conf_dir, argv)
    groups = {p.name for p in conf_dir.iterdir() if p.is_dir()}
    out = []
    for arg in argv:
        key, _, value = arg.partition("=")
        out.append(f"~{key}" if key in groups and value == "null" else arg)
    return out


def check_cli_choices(conf_dir: Path, argv: Iterable[str]) -> None:
    """Reject `group=choice` overrides naming a file that does not exist, in one line.

    Hydra would report these with a multi-line composition error; this names the group and
    the options instead. Sweeps (`stage=a,b`) are checked choice by choice.
    """
    groups = {p.name for p in conf_dir.iterdir() if p.is_dir()}
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key not in groups or value in ("", "null"):
            continue
        options = available_choices(conf_dir, key)
        for choice in _split_sweep(value):
            if choice not in options:
                raise ConfigError(
                    f"unknown {key} '{choice}': choose one of {', '.join(options)} "
                    f"(files in conf/{key}/)"
                )


def _split_sweep(value: str) -> list[str]:
    value = value.strip()
    if value.startswith(("choice(", "range(", "glob(", "interval(")):
        return []  # sweep functions: let Hydra expand them
    return [v.strip() for v in value.split(",") if v.strip()]


# ---------------------------------------------------------------------------- values
def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _number(cfg: DictConfig, key: str) -> float | None:
    value = _get(cfg, key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r} must be a number")
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(f"{key}=nan must be a number")
    return value


def check_range(
    cfg: DictConfig,
    key: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    integer: bool = False,
    what: str = "",
) -> None:
    """Raise ConfigError when cfg[key] (if present) lies outside [low, high] (or (low, high])."""
    check_value(key, _get(cfg, key), low, high, low_open=low_open, integer=integer, what=what)


def check_value(
    key: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    integer: bool = False,
    what: str = "",
) -> None:
    """Raise ConfigError when ``value`` (None: not set, accepted) is not a number in
    [low, high] (or (low, high]); the message names the option ``key``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r} must be a number")
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(f"{key}=nan must be a number")
    desc = f" ({what})" if what else ""
    if integer and int(value) != value:
        raise ConfigError(f"{key}={value} must be an integer{desc}")
    left = "(" if low_open else "["
    bound = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        raise ConfigError(f"{key}={value} is outside {bound}{desc}")


def check_choice(key: str, value: Any, allowed: Iterable[str]) -> None:
    """Raise ConfigError when ``value`` is not one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}={value} is not one of {allowed}")


def check_model_path(key: str, path: Any) -> None:
    """A model path is an existing folder, or a Hugging Face hub id like `org/name`
    (`rest_mcts.models.source`: the loaders take a hub id to `from_pretrained` unchanged)."""
    from rest_mcts.models.source import is_hub_id

    if path is None:
        return
    text = str(path)
    if Path(text).expanduser().exists() or is_hub_id(text):
        return
    raise ConfigError(f"{key}='{text}' does not exist (give a model folder or a hub id org/name)")


def validate(cfg: DictConfig, stages: Iterable[str]) -> None:
    """Check every option that a run depends on; raises ConfigError on the first bad one."""
    stages = list(stages)
    name = _get(cfg, "stage.name")
    _require(name in stages, f"stage '{name}' is unknown: choose one of {', '.join(stages)}")
    seed = _get(cfg, "seed")
    _require(
        isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
        f"seed={seed!r} must be an integer >= 0",
    )

    # MCTS* and the paper's hyperparameters (names from the paper).
    check_range(cfg, "search.alpha", 0, 1, what="rollout mixing weight alpha")
    check_range(cfg, "search.end_gate", 0, 1, low_open=True, what="threshold l")
    check_range(cfg, "search.branch", 1, integer=True, what="branch b")
    check_range(cfg, "search.iterations", 1, integer=True, what="iterations T")
    check_range(cfg, "search.exploration_constant", 0, what="UCT constant c")
    check_range(cfg, "search.rollout_steps", 0, integer=True, what="rollout depth")
    check_range(cfg, "search.rollout_branch", 1, integer=True, what="samples per rollout step")
    check_range(cfg, "search.max_depth", 1, integer=True, what="steps per solution")
    check_range(cfg, "search.temperature", 0, what="sampling temperature")
    critic = _get(cfg, "search.self_critic")
    if critic is not None:
        modes = ("world", "llm", "off")  # YAML reads a bare `off` as false: true/false allowed
        _require(
            isinstance(critic, bool) or critic in modes,
            f"search.self_critic={critic!r} must be one of {', '.join(modes)}",
        )
    check_range(cfg, "search.critic_max_tokens", 1, integer=True, what="self-critic answer tokens")
    selection = _get(cfg, "search.answer_selection")
    if selection is not None:
        allowed = ("best_leaf", "value_vote")
        _require(
            selection in allowed,
            f"search.answer_selection='{selection}' must be one of {', '.join(allowed)}",
        )

    # Models.
    check_model_path("model.path", _get(cfg, "model.path"))
    check_model_path("prm.path", _get(cfg, "prm.path"))
    check_model_path("prm.backbone", _get(cfg, "prm.backbone"))

    # Stage options (training, loop and D_V0 settings are checked by their typed configs).
    for key in ("stage.eval_problems", "stage.num_problems"):
        check_range(cfg, key, 1, integer=True)
    for key in ("stage.eval_samples", "stage.samples"):
        check_range(cfg, key, 1, integer=True)
    for key in ("stage.eval_temperature", "stage.temperature"):
        check_range(cfg, key, 0)


# ---------------------------------------------------------------------------- building
def instantiate(node: DictConfig | dict, what: str, **kwargs: Any) -> Any:
    """Build an object from a config node with `_target_` (the only place this happens).

    Errors from the constructor (a bad knob) come back as ConfigError naming `what`.
    """
    from hydra.utils import instantiate as hydra_instantiate

    if node is None:
        raise ConfigError(f"{what} is not configured")
    try:
        return hydra_instantiate(node, **kwargs, _convert_="all")
    except Exception as err:  # noqa: BLE001 -- re-raised with the option's name
        cause = err
        while cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, (ValueError, TypeError, FileNotFoundError)):
            raise ConfigError(f"{what}: {cause}") from err
        raise


def from_node(cls: type, node: Any, **extra: Any) -> Any:
    """An instance of the dataclass ``cls`` from the keys of a config node (or mapping) that
    name its fields (other keys are ignored), plus ``extra``; the dataclass validates it."""
    import dataclasses

    plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in dict(plain or {}).items() if k in names}
    values.update(extra)
    return cls(**values)

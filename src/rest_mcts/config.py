"""Config checking and the one place where objects are built from `_target_`.

Every run's config is validated before any work starts; a bad value stops the run with one
line that names the option and what it may be.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar, Iterable

from omegaconf import DictConfig, OmegaConf

from rest_mcts.utils.errors import ConfigError  # re-exported: the one user-facing error


# Model weights' dtypes the loaders know (rest_mcts.models.factory; "auto": the checkpoint's).
DTYPES = ("float32", "bfloat16", "float16", "auto")


# ---------------------------------------------------------------------------- groups (CLI)
def available_choices(conf_dir: Path, group: str) -> list[str]:
    """Options of a config group: the yaml files in conf/<group>/."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def normalize_cli_args(conf_dir: Path, argv: list[str]) -> list[str]:
    """Check group choices (see `check_cli_choices`), make a relative `--config-path` absolute
    (from the current folder) with `conf_dir` kept on the search path after it
    (rest_mcts.config_sources), and turn `group=null` into Hydra's `~group` (drop the group),
    so `logger=null` switches logging off."""
    from rest_mcts.config_sources import absolute_config_path, sources_from_argv, with_project_conf

    argv = with_project_conf(conf_dir, absolute_config_path(argv))
    check_cli_choices(conf_dir, argv)
    groups = sources_from_argv(conf_dir, argv).groups()
    out = []
    for arg in argv:
        key, _, value = arg.partition("=")
        out.append(f"~{key}" if key in groups and value == "null" else arg)
    return out


def check_cli_choices(conf_dir: Path, argv: Iterable[str]) -> None:
    """Reject `group=choice` overrides naming a file that does not exist, in one line.

    Hydra would report these with a multi-line composition error; this names the group and
    the options instead. Sweeps (`stage=a,b`) are checked choice by choice. The groups and
    options are those of every folder Hydra searches: `conf_dir` and the user's own
    (`--config-dir`, `--config-path`, `hydra.searchpath`; rest_mcts.config_sources).
    """
    from rest_mcts.config_sources import split_config_flags, sources_from_argv

    argv = list(argv)
    sources = sources_from_argv(conf_dir, argv)
    groups = sources.groups()
    for arg in split_config_flags(argv)[1]:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key not in groups or value in ("", "null"):
            continue
        options = sources.options(key)
        for choice in _split_sweep(value):
            if choice not in options:
                raise ConfigError(
                    f"unknown {key} '{choice}': choose one of {', '.join(options)} "
                    f"(files in {sources.where(key)})"
                )


def _split_sweep(value: str) -> list[str]:
    value = value.strip()
    if value.startswith(("choice(", "range(", "glob(", "interval(")):
        return []  # sweep functions: let Hydra expand them
    return [v.strip() for v in value.split(",") if v.strip()]


# ---------------------------------------------------------------------------- values
def _get(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key`` (None when absent); a resolver that fails (e.g.
    ``${rest.package_file:...}`` naming a package that is not installed) is one ConfigError
    line naming ``key``."""
    from omegaconf.errors import InterpolationResolutionError

    try:
        return OmegaConf.select(cfg, key, default=None)
    except InterpolationResolutionError as err:
        reason = str(err).splitlines()[0].split("while resolving interpolation: ")[-1]
        raise ConfigError(f"{key}: {reason}") from err


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


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
    value = _get(cfg, key)
    if value is None:
        return
    check_value(key, value, low, high, low_open=low_open, integer=integer, what=what)


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
    """Raise ConfigError (one line naming `key`) unless `value` is a number in [low, high]
    (or (low, high] with `low_open`), a whole one with `integer`; `what` says what it is."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
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
    """Raise ConfigError (one line naming `key` and the choices) unless `value` is one of
    `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} must be one of {', '.join(allowed)}")


def knob(
    default: Any = dataclasses.MISSING,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
    what: str = "",
    choices: tuple[str, ...] | None = None,
    flag: bool = False,
    sequence: bool = False,
    optional: bool = False,
    name: str | None = None,
    message: str | None = None,
) -> Any:
    """A dataclass field with its default (none: a required field) and its check, read by :func:`check_knobs_of`: a
    number in [low, high] ((low, high] with ``low_open``; whole with ``integer``, then kept
    as an int; ``what`` names it in the error), one of ``choices``, a true/false ``flag``, or
    (``sequence``) a list of such numbers, kept as a tuple. ``optional``: None is allowed
    too. ``name``: the option's name under the prefix when it is not the field's
    (``prm_train.init_epochs``). ``message``: the error of a bad choice or flag, a format
    string of ``key``, ``value`` and ``allowed`` (default: :func:`check_choice`'s line, or
    "must be true or false")."""
    check = {"low": low, "high": high, "low_open": low_open, "integer": integer, "what": what,
             "choices": choices, "flag": flag, "sequence": sequence, "optional": optional,
             "name": name, "message": message}
    return dataclasses.field(default=default, metadata={"check": check})


def check_knobs_of(obj: Any, prefix: str) -> None:
    """Check every :func:`knob` field of the dataclass ``obj`` (frozen or not), in field
    order; a bad value raises ConfigError, one line naming ``<prefix>.<name>``. A whole
    number is kept as an int, a sequence as a tuple."""
    for f in dataclasses.fields(obj):
        check = f.metadata.get("check")
        if check is None:
            continue
        key = f"{prefix}.{check['name'] or f.name}" if prefix else (check["name"] or f.name)
        value = getattr(obj, f.name)
        if value is None and check["optional"]:
            continue
        message = check["message"]
        if check["choices"] is not None:
            if message and value not in check["choices"]:
                raise ConfigError(message.format(key=key, value=value,
                                                 allowed=list(check["choices"])))
            check_choice(key, value, check["choices"])
        elif check["flag"]:
            if not isinstance(value, bool):
                raise ConfigError((message or "{key}={value!r} must be true or false").format(
                    key=key, value=value, allowed=[True, False]))
        elif check["sequence"]:
            if value is None:
                value = ()
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise ConfigError(f"{key}={value!r} must be a list ({check['what']})")
            value = tuple(value)
            for item in value:
                check_value(key, item, check["low"], check["high"], low_open=check["low_open"],
                            integer=check["integer"], what=check["what"])
            if check["integer"]:
                value = tuple(int(v) for v in value)
            object.__setattr__(obj, f.name, value)
        else:
            check_value(key, value, check["low"], check["high"], low_open=check["low_open"],
                        integer=check["integer"], what=check["what"])
            if check["integer"]:
                object.__setattr__(obj, f.name, int(value))


class Knobs:
    """Base of a typed config dataclass whose fields are :func:`knob` s: checks them on
    construction (from :func:`from_node` or directly). The options are named
    ``<knob_prefix>.<field>``; a config whose prefix is a field (``option``, e.g.
    ``stage.policy_eval``) overrides :meth:`knob_prefix_of`."""

    knob_prefix: ClassVar[str] = ""

    def knob_prefix_of(self) -> str:
        """The options' prefix in error messages."""
        return self.knob_prefix

    def __post_init__(self) -> None:
        check_knobs_of(self, self.knob_prefix_of())


def check_model_path(key: str, path: Any) -> None:
    """A model path is an existing folder, a GGUF file that can be loaded (converted already,
    or the `gguf` package is installed), or a Hugging Face hub id like `org/name`
    (`rest_mcts.models.source`: the loaders take a hub id to `from_pretrained` unchanged)."""
    from rest_mcts.models.source import is_gguf, is_hub_id

    if path is None:
        return
    text = str(path)
    if is_gguf(text) and Path(text).expanduser().is_file():
        from rest_mcts.models.gguf import missing_converter

        problem = missing_converter(text)
        if problem:
            raise ConfigError(f"{key}='{text}': {problem}")
        return
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
    threads = _get(cfg, "threads")
    _require(
        threads is None or (isinstance(threads, int) and not isinstance(threads, bool)
                            and threads >= 1),
        f"threads={threads!r} must be null or an integer >= 1",
    )

    # The search method's knobs and the training settings are checked by their typed configs
    # (rest_mcts.search.configs, rest_mcts.runtime.context), built in rest_mcts.stages.check_config.

    # Models.
    check_model_path("model.path", _get(cfg, "model.path"))
    check_model_path("prm.path", _get(cfg, "prm.path"))
    check_model_path("prm.backbone", _get(cfg, "prm.backbone"))
    # a dtype is read only when a model loads: after a bootstrap has trained policy_0
    for key in ("model.dtype", "backend.dtype", "prm.scorer.dtype"):
        value = _get(cfg, key)
        if value is not None:
            check_choice(key, value, DTYPES)
    # backend=vllm and prm=vllm: two engines in one process on the same GPU(s).
    policy_share = _get(cfg, "backend.gpu_memory_utilization")
    prm_share = _get(cfg, "prm.scorer.gpu_memory_utilization")
    if policy_share is not None and prm_share is not None:
        _require(
            policy_share + prm_share <= 1.0,
            f"backend.gpu_memory_utilization={policy_share} + prm.scorer.gpu_memory_utilization="
            f"{prm_share} > 1: the policy and PRM engines share the GPU (keep the sum <= 0.9)",
        )

    # Question sharding across jobs (stage=search|eval only: rest_mcts.runtime.search_run).
    num_shards = _get(cfg, "data.num_shards")
    if num_shards is not None:
        check_value("data.num_shards", num_shards, 1, integer=True)
        check_value("data.shard", _get(cfg, "data.shard"), 0, num_shards - 1, integer=True,
                    what=f"one of data.num_shards={num_shards} shards")
        _require(num_shards == 1 or name in ("search", "eval"),
                 f"data.num_shards={num_shards}: only stage=search and stage=eval shard their "
                 f"questions (stage={name} runs on all of them)")

    # Stage options (training, loop and D_V0 settings are checked by their typed configs).
    for key in ("stage.eval_problems", "stage.num_problems", "data.limit"):
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


def from_node(cls: type, node: Any, *, strict: str | None = None, **extra: Any) -> Any:
    """An instance of the dataclass ``cls`` from the keys of a config node (or mapping) that
    name its fields, plus ``extra``; the dataclass validates it.

    Other keys are ignored, unless ``strict`` names the node (e.g. ``"stage.policy_eval"``):
    then a key that is no field (a typo) raises ConfigError, one line naming it and the
    known ones."""
    import dataclasses

    plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    names = {f.name for f in dataclasses.fields(cls)}
    given = dict(plain or {})
    unknown = sorted(str(k) for k in given if k not in names)
    if strict and unknown:
        known = sorted(n for n in names if n != "option")
        raise ConfigError(f"{strict}.{unknown[0]} is not a setting of {strict} "
                          f"(known: {', '.join(known)})")
    values = {k: v for k, v in given.items() if k in names}
    values.update(extra)
    return cls(**values)

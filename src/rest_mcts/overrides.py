"""Command-line overrides checked before Hydra runs the job, each problem in one line.

``run.py`` calls :func:`check_overrides` after the group choices are checked
(:func:`rest_mcts.config.check_cli_choices`). It composes the config the way Hydra will and
refuses, with a :class:`~rest_mcts.config.ConfigError` (``error: ...``, exit status 2):

* a key that is no option (``search.alpah=0.5``), naming the closest option
  (Hydra's own report is seven lines and exit status 1);
* an output folder that cannot be made: a file in the way of ``hydra.run.dir`` (or
  ``hydra.sweep.dir``), or a folder on its way that is not writable (Hydra would stop with
  a traceback while making it, before the job starts).

The config is composed from every folder Hydra searches, the user's own included
(``--config-dir``, ``--config-path``, ``--config-name``, ``hydra.searchpath``:
:mod:`rest_mcts.config_sources`). Anything these checks cannot judge (a sweep over a config
group, command-line flags other than ``-m`` and those, an override Hydra cannot parse or
compose for another reason) is left to Hydra.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from omegaconf import DictConfig, ListConfig

from rest_mcts.config import ConfigError
from rest_mcts.config_sources import ConfigSources, split_config_flags, sources_from_argv

MULTIRUN_FLAGS = ("-m", "--multirun")


def check_overrides(conf_dir: Path, argv: Sequence[str]) -> None:
    """Refuse unknown keys and an output folder that cannot be made (module docstring).

    Raises:
        ConfigError: one line naming the key and the closest option, or the folder.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sources = sources_from_argv(conf_dir, argv)
    argv = split_config_flags(argv)[1]
    flags = [a for a in argv if a.startswith("-")]
    if any(flag not in MULTIRUN_FLAGS for flag in flags):
        return  # --cfg, --help, ...: Hydra's business
    try:
        overrides = OverridesParser.create().parse_overrides(
            [a for a in argv if not a.startswith("-") and not _is_searchpath(a)])
    except Exception:  # noqa: BLE001 -- a syntax error: Hydra reports it
        return
    groups = sources.groups()

    def is_group(o: Any) -> bool:
        key = o.key_or_group
        return "/" in key or key in groups

    if any(o.is_sweep_override() and is_group(o) for o in overrides):
        return  # each job composes another config: Hydra checks them one by one
    plain = [o for o in overrides if _is_plain_value(o, is_group)]
    non_sweep = [o.input_line for o in overrides if not o.is_sweep_override()]
    cfg = _compose(sources, non_sweep)
    if cfg is None:  # find the unknown key (if that is what failed) in the config without them
        checked = {id(o) for o in plain}
        base = _compose(sources, [o.input_line for o in overrides
                                   if not o.is_sweep_override() and id(o) not in checked])
        if base is not None:
            _check_keys(base, [o.key_or_group for o in plain])
        return
    _check_keys(cfg, [o.key_or_group for o in plain if o.is_sweep_override()])
    option = "hydra.sweep.dir" if flags else "hydra.run.dir"
    try:
        folder = cfg.hydra.sweep.dir if flags else cfg.hydra.run.dir
    except Exception:  # noqa: BLE001 -- a resolver only Hydra's runtime knows: not checked
        return
    check_output_folder(Path(str(folder)), option)


def check_output_folder(folder: Path, option: str) -> None:
    """Refuse (one line naming ``option``) an output folder that cannot be made or written:
    a file in its place or on its way, or a read-only folder where it would be made.

    Raises:
        ConfigError: the folder cannot be written.
    """
    probe = folder
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{option}={folder}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == folder else f" (where {folder} would be made)"
        raise ConfigError(f"{option}={folder}: {probe} is not writable{where}")


# ---------------------------------------------------------------------------- helpers
def _is_plain_value(o: Any, is_group: Any) -> bool:
    """``key=value`` on a config value (not a group choice, not Hydra's own, no ``+``/``~``
    or ``@package``): the overrides whose key must already exist."""
    from hydra.core.override_parser.types import OverrideType

    key = o.key_or_group
    return (o.type == OverrideType.CHANGE and o.package is None and not is_group(o)
            and key != "hydra" and not key.startswith("hydra."))


def _is_searchpath(arg: str) -> bool:
    """``hydra.searchpath=[...]``: read into :class:`ConfigSources`, composed from there."""
    return arg.startswith("hydra.searchpath=")


def _compose(sources: ConfigSources, overrides: list[str]) -> DictConfig | None:
    """The config Hydra composes from ``overrides`` (with its ``hydra`` node) in the folders
    of ``sources``, or None when composition fails."""
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(config_dir=str(sources.primary), version_base="1.3"):
            return compose(sources.name, overrides=overrides + sources.searchpath_override(),
                           return_hydra_config=True)
    except Exception:  # noqa: BLE001 -- left for Hydra to report in its own words
        return None


def _check_keys(cfg: DictConfig, keys: list[str]) -> None:
    for key in keys:
        if not _known(cfg, key):
            hint = _engine_hint(cfg, key) or f"a new key is added with +{key}=..."
            raise ConfigError(f"{key} is not an option{_closest(cfg, key)} ({hint})")


def _engine_hint(cfg: DictConfig, key: str) -> str | None:
    """Where ``engine=auto`` composed the group that ``key`` lies in: a vLLM option on a
    machine where it chose transformers (or the reverse) is named with the engine that has it."""
    from omegaconf import OmegaConf

    group = key.split(".")[0]
    if group not in ("backend", "prm") or OmegaConf.select(cfg, "engine.name") != "auto":
        return None
    option = OmegaConf.select(cfg, f"hydra.runtime.choices.{group}")
    return (f"{group}={option} is what engine=auto composed on this machine; name "
            f"engine=vllm or engine=hf for the other engine's options")


def _known(cfg: DictConfig, key: str) -> bool:
    """Does ``key`` (dotted) name an option of ``cfg``? True where it cannot be told (under
    a null, missing or interpolated node): Hydra decides those."""
    node: Any = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig):
            if node._is_none() or node._is_missing() or node._is_interpolation():
                return True
            if part not in node.keys():
                return False
            node = node._get_node(part)
        elif isinstance(node, ListConfig):
            if not part.isdigit() or int(part) >= len(node):
                return False
            node = node._get_node(int(part))
        else:  # a value has no keys below it, unless it is null or an interpolation
            return node._is_none() or node._is_interpolation() or node._is_missing()
    return True


def _closest(cfg: DictConfig, key: str) -> str:
    """``": did you mean <option>?"`` for the option nearest to ``key`` (an option of the
    same node first, then any), or ``""`` when none is near."""
    parent, _, leaf = key.rpartition(".")
    keys = [k for k in _dotted_keys(cfg) if not k.startswith("hydra.")]
    siblings = [k for k in keys if k.rpartition(".")[0] == parent]
    match = difflib.get_close_matches(leaf, [k.rpartition(".")[2] for k in siblings], n=1)
    if match:
        return f": did you mean {parent + '.' if parent else ''}{match[0]}?"
    match = difflib.get_close_matches(key, keys, n=1)
    return f": did you mean {match[0]}?" if match else ""


def _dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if not isinstance(node, DictConfig) or node._is_none() or node._is_missing() or \
            node._is_interpolation():
        return
    for key in node.keys():
        full = f"{prefix}{key}"
        yield full
        yield from _dotted_keys(node._get_node(key), full + ".")

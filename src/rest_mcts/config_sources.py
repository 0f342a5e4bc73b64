"""The config folders Hydra searches, read from the command line the way Hydra reads them.

Besides the project's ``conf/``, a run can take config groups and options from folders of its
own (docs/configuration.md, "Your own configs"):

* ``--config-dir DIR`` (``-cd``): DIR is searched after the primary config folder;
* ``--config-path DIR`` (``-cp``): DIR is the primary config folder (it holds the primary
  config, ``config.yaml`` or ``--config-name``); a relative DIR is taken from the current
  folder, as ``--config-dir`` is (Hydra itself would take it from the file of ``@hydra.main``);
* ``hydra.searchpath=[file://DIR, pkg://module, ...]`` on the command line, or ``hydra.searchpath``
  in the primary config: searched after those, in order (the command line's list wins).

With ``--config-path`` the project's ``conf/`` stays on the search path, last
(:func:`with_project_conf`), so a primary config of the user's own (a copy of
``conf/config.yaml`` with other choices) composes the project's groups.

Hydra takes an option from the first folder that has it: the primary folder first. The
command-line checks (:func:`rest_mcts.config.check_cli_choices`,
:func:`rest_mcts.overrides.check_overrides`) use :class:`ConfigSources` to know every group and
option Hydra will see.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

# Hydra's flags that name where configs come from, and the field each sets
CONFIG_FLAGS = {"--config-path": "path", "-cp": "path", "--config-dir": "dir", "-cd": "dir",
                "--config-name": "name", "-cn": "name"}


@dataclass(frozen=True)
class ConfigSources:
    """Where Hydra looks for configs, in its order.

    Attributes:
        primary: the folder of the primary config (``conf/``, or ``--config-path``).
        extra: search path entries after it (``--config-dir``, then ``hydra.searchpath``),
            as Hydra writes them (``file://DIR``, ``DIR``, ``pkg://module``).
        name: the primary config's name (``--config-name``; ``config``).
        default: the project's ``conf/`` (named ``conf/`` in messages).
    """

    primary: Path
    extra: tuple[str, ...] = ()
    name: str = "config"
    default: Path | None = None

    def folders(self) -> list[Path]:
        """Every search path folder that exists, primary first."""
        found = [self.primary] + [f for f in map(_entry_folder, self.extra) if f is not None]
        return [f for f in found if f.is_dir()]

    def groups(self) -> set[str]:
        """Top-level config groups: the sub-folders of any search path folder."""
        return {p.name for folder in self.folders() for p in folder.iterdir() if p.is_dir()}

    def options(self, group: str) -> list[str]:
        """The options of ``group``: its yaml files in every search path folder."""
        return sorted({p.stem for folder in self.folders()
                       for p in (folder / group).glob("*.yaml")})

    def where(self, group: str) -> str:
        """The folders that hold ``group``'s options, for a message (``conf/model/``, ...)."""
        return ", ".join(self._label(folder, group) for folder in self.folders()
                         if (folder / group).is_dir())

    def searchpath_override(self) -> list[str]:
        """``hydra.searchpath=[...]`` for ``compose``, holding :attr:`extra` (none when empty)."""
        if not self.extra:
            return []
        return ["hydra.searchpath=[" + ",".join(map(_quoted, self.extra)) + "]"]

    def _label(self, folder: Path, group: str) -> str:
        if self.default is not None and folder.resolve() == self.default.resolve():
            return f"conf/{group}/"
        return f"{folder / group}/"


def split_config_flags(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``argv`` split into the config-folder flags (field -> value, see :data:`CONFIG_FLAGS`)
    and everything else, in order. ``--flag value`` and ``--flag=value`` are both read."""
    flags: dict[str, str] = {}
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name in CONFIG_FLAGS and arg.startswith("-"):
            flags[CONFIG_FLAGS[name]] = value if eq else next(args, "")
        else:
            rest.append(arg)
    return flags, rest


def sources_from_argv(conf_dir: Path, argv: Sequence[str]) -> ConfigSources:
    """The :class:`ConfigSources` a run with these command-line arguments searches (after
    :func:`with_project_conf`: the project's ``conf/`` comes last when it is not primary)."""
    flags, _ = split_config_flags(argv)
    primary = Path(flags["path"]).absolute() if flags.get("path") else Path(conf_dir)
    name = flags.get("name") or "config"
    extra = [f"file://{Path(flags['dir']).absolute()}"] if flags.get("dir") else []
    extra += _searchpath(argv, primary, name)
    if primary.resolve() != Path(conf_dir).resolve():
        extra.append(f"file://{Path(conf_dir).absolute()}")
    return ConfigSources(primary, tuple(dict.fromkeys(extra)), name, Path(conf_dir))


def with_project_conf(conf_dir: Path, argv: Sequence[str]) -> list[str]:
    """``argv`` where a ``--config-path`` folder other than ``conf_dir`` keeps ``conf_dir`` on
    Hydra's search path (last, after the user's ``hydra.searchpath``): a primary config of the
    user's own composes the project's groups (``hydra.searchpath=[...]`` is added)."""
    flags, rest = split_config_flags(argv)
    if not flags.get("path") or Path(flags["path"]).resolve() == Path(conf_dir).resolve():
        return list(argv)
    primary = Path(flags["path"]).absolute()
    entries = _searchpath(argv, primary, flags.get("name") or "config")
    project = f"file://{Path(conf_dir).absolute()}"
    entries = list(dict.fromkeys([*entries, project]))
    kept = [a for a in argv if not a.startswith("hydra.searchpath=")]
    # beside the other overrides: argparse takes the overrides as one run of arguments
    at = next((i for i, a in enumerate(kept) if "=" in a and not a.startswith("-")), 0)
    kept.insert(at, "hydra.searchpath=[" + ",".join(map(_quoted, entries)) + "]")
    return kept


def absolute_config_path(argv: Sequence[str]) -> list[str]:
    """``argv`` with a relative ``--config-path`` made absolute from the current folder."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if CONFIG_FLAGS.get(name) == "path" and arg.startswith("-"):
            value = value if eq else next(args, "")
            if value and not value.startswith("pkg://"):
                value = str(Path(value).absolute())
            out.append(f"{name}={value}")
        else:
            out.append(arg)
    return out


# ---------------------------------------------------------------------------- helpers
def _searchpath(argv: Sequence[str], primary: Path, name: str) -> list[str]:
    """``hydra.searchpath`` as Hydra takes it: the command line's list, else the primary
    config's."""
    found = _searchpath_override(split_config_flags(argv)[1])
    if found is None:
        found = _primary_searchpath(primary, name)
    return list(found or [])


def _searchpath_override(overrides: Sequence[str]) -> list[str] | None:
    """The list of a ``hydra.searchpath=[...]`` override, or None (none, or unparsable)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [a for a in overrides if a.startswith("hydra.searchpath=")]
    if not lines:
        return None
    try:
        value: Any = OverridesParser.create().parse_overrides(lines[-1:])[0].value()
    except Exception:  # noqa: BLE001 -- Hydra reports what it cannot parse
        return None
    return [str(v) for v in value] if isinstance(value, list) else None


def _primary_searchpath(primary: Path, name: str) -> list[str] | None:
    """``hydra.searchpath`` as the primary config file writes it (Hydra reads it there)."""
    from omegaconf import OmegaConf

    file = primary / f"{name}.yaml"
    if not file.is_file():
        return None
    try:
        value = OmegaConf.select(OmegaConf.load(file), "hydra.searchpath")
    except Exception:  # noqa: BLE001 -- a broken primary config: Hydra reports it
        return None
    return [str(v) for v in value] if value is not None else None


def _entry_folder(entry: str) -> Path | None:
    """The folder of a search path entry (``file://DIR`` or ``DIR``: from the current folder;
    ``pkg://module[/sub]``: inside the installed package), None for other schemes."""
    if entry.startswith("pkg://"):
        module, _, sub = entry[len("pkg://"):].partition("/")
        try:
            from importlib.resources import files

            return Path(str(files(module))) / sub
        except Exception:  # noqa: BLE001 -- not importable: Hydra reports it
            return None
    if "://" in entry and not entry.startswith("file://"):
        return None
    return Path(os.path.expanduser(entry.removeprefix("file://")))


def _quoted(entry: str) -> str:
    return "'" + entry.replace("\\", "\\\\").replace("'", "\\'") + "'"

"""Who the stage's run is: its name, group, job type and tags, and the config it records
with the chosen config groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rest_mcts.tracking.redaction import resolved_config

# Config groups whose choice becomes a tag.
TAG_GROUPS = ("stage", "model", "data", "search", "prm", "backend", "experiment", "sweep")


def _hydra() -> Any:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _hydra_choices() -> dict[str, str]:
    hc = _hydra()
    if hc is None:
        return {}
    return {str(k): str(v) for k, v in hc.runtime.choices.items()
            if v is not None and not str(k).startswith("hydra")}


def _swept_values(task: list[str]) -> str:
    """``key=value,...`` of this job's overrides that the command line sweeps (``seed=0,1``,
    ``search.alpha=range(...)``), read from ``sys.argv`` of the multirun's process; empty when
    that is not the launching process (a Slurm job) or nothing is swept."""
    import sys

    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parser = OverridesParser.create()
        argv = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
        swept = {o.get_key_element() for o in parser.parse_overrides(argv)
                 if o.is_sweep_override()}
        job = [o for o in parser.parse_overrides(task) if o.get_key_element() in swept]
    except Exception:  # not Hydra's command line
        return ""
    return ",".join(sorted(f"{o.get_key_element()}={o.get_value_element_as_str()}"
                           for o in job))


def run_identity(cfg: DictConfig, default_group: str | None = None) -> dict[str, Any]:
    """``name``, ``group``, ``job_type`` and ``tags`` of the stage's wandb run.

    name: the swept values in a multirun (e.g. ``search.alpha=0.5,seed=1``, unique in its
    sweep; all of ``hydra.job.override_dirname`` where the command line is not at hand),
    else ``logger.name``. group:
    ``logger.group``, else the multirun's folder (``<stage>-<time>``), else the chosen
    ``experiment``, else ``default_group`` (the loop: its folder). job_type: the stage.
    tags: ``<group>:<choice>`` of the config groups in :data:`TAG_GROUPS`, and ``logger.tags``.
    """
    from hydra.types import RunMode

    node = cfg.get("logger") or {}
    hc = _hydra()
    multirun = hc is not None and hc.mode == RunMode.MULTIRUN
    name = node.get("name") or cfg.get("run_name")
    if multirun and hc.job.override_dirname:
        name = _swept_values(list(hc.overrides.task)) or str(hc.job.override_dirname)
    choices = _hydra_choices()
    group = node.get("group")
    if not group and multirun:
        sweep = Path(str(hc.sweep.dir))
        group = f"{sweep.parent.name}-{sweep.name}"
    if not group and choices.get("experiment"):
        group = f"experiment-{choices['experiment']}"
    group = group or default_group
    if not choices:  # composed without Hydra's runtime (tests): the groups' own names
        choices = {g: str(cfg[g].name) for g in TAG_GROUPS
                   if isinstance(cfg.get(g), DictConfig) and cfg[g].get("name")}
    tags = [f"{g}:{choices[g]}"[:64] for g in TAG_GROUPS if choices.get(g)]
    tags += [str(t)[:64] for t in node.get("tags") or []]
    return {"name": str(name) if name else None, "group": str(group) if group else None,
            "job_type": str(cfg.stage.name), "tags": tags}


def loggable_config(cfg: DictConfig) -> dict[str, Any]:
    """:func:`resolved_config` with the chosen config groups under ``choices`` (from Hydra,
    when it composed the run)."""
    plain = resolved_config(cfg)
    choices = _hydra_choices()
    if choices:
        plain["choices"] = choices
    return plain

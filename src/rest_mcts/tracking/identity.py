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


def _sweep_command(hc: Any) -> list[str]:
    """The multirun's overrides (:func:`rest_mcts.utils.swept.sweep_overrides`): read from
    ``multirun.yaml`` in the sweep folder (written by the sweeper before any job starts, so
    it holds the command line wherever the job runs: this process or a Slurm node), else
    this job's ``hydra.sweeper.params`` and the sweeping process's ``sys.argv``."""
    import sys

    from omegaconf import OmegaConf

    from rest_mcts.utils.swept import sweep_overrides

    path = Path(str(hc.sweep.dir)) / "multirun.yaml"
    try:
        hydra = OmegaConf.load(path).hydra
        return sweep_overrides(hydra.sweeper.get("params"), list(hydra.overrides.task))
    except Exception:  # no readable multirun.yaml: this job's own record
        argv = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
        return sweep_overrides(hc.sweeper.get("params"), argv)


def swept_name(hc: Any) -> str | None:
    """``key=value`` of each key the multirun sweeps (:func:`rest_mcts.utils.swept.swept_keys`),
    this job's values, space-separated in the sweep's order (``search.alpha=0.25 seed=1``);
    empty when nothing is swept, None when the overrides cannot be read."""
    from rest_mcts.utils.swept import job_values, swept_keys

    try:
        swept = swept_keys(_sweep_command(hc))
        values = job_values(list(hc.overrides.task), swept)
    except Exception:  # not Hydra's command line
        return None
    return " ".join(f"{key}={value}" for key, value in values.items())


def run_identity(cfg: DictConfig, default_group: str | None = None) -> dict[str, Any]:
    """``name``, ``group``, ``job_type`` and ``tags`` of the stage's wandb run.

    name: in a multirun, the swept keys and this job's values only (:func:`swept_name`, e.g.
    ``search.alpha=0.5 seed=1``: unique in its sweep, the settings shared by every job left
    out; ``hydra.job.override_dirname`` where the sweep's overrides cannot be read), else
    ``logger.name``. group:
    ``logger.group``, else the multirun's folder (``<stage>-<time>``), else the chosen
    ``experiment``, else ``default_group`` (the loop: its folder). job_type: the stage.
    tags: ``<group>:<choice>`` of the config groups in :data:`TAG_GROUPS`, and ``logger.tags``.
    """
    from hydra.types import RunMode

    node = cfg.get("logger") or {}
    hc = _hydra()
    multirun = hc is not None and hc.mode == RunMode.MULTIRUN
    name = node.get("name") or cfg.get("run_name")
    if multirun:  # the swept values; a multirun that sweeps nothing keeps the name above
        swept = swept_name(hc)
        name = (swept if swept is not None else str(hc.job.override_dirname or "")) or name
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

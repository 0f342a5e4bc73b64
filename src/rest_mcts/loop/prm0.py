"""PRM_0 (Algorithm 1, line 1): D_V0 and the PRM trained on it, built one way for
``stage=init_prm`` and for ``prm=trained``.

* :func:`build_prm0` -- D_V0 by a :class:`PRM0Recipe` (:func:`rest_mcts.loop.d_v0.build_d_v0`),
  then PRM_0 trained on it from the base policy (:func:`rest_mcts.loop.train.train_prm_model`,
  settings ``prm.*``): the whole of ``stage=init_prm``.
* :func:`ensure_prm0` -- the PRM a search scores with: ``prm.path`` when given; with
  ``prm=trained`` (a ``prm.init`` node) the PRM_0 of this policy_0 cached under
  ``<paths.cache_dir>/prm0/<data>-s<seed>-<key>`` (:meth:`Context.prm0_dir`, key
  :func:`rest_mcts.runtime.keys.prm0_key`), built by :func:`build_prm0` first, with a notice
  (:func:`prm0_notice`), when it is missing, as policy_0 is
  (:func:`rest_mcts.runtime.policy0.ensure_policy0`).

``stage=loop`` trains its own PRM_0 (``stage.init_prm``, ``stage.prm_train``) and refuses
``prm=trained`` (:func:`check_prm_trained`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from omegaconf import OmegaConf

from rest_mcts.config import ConfigError, Knobs, knob
from rest_mcts.loop.d_v0 import InitPRMSettings, build_d_v0
from rest_mcts.loop.data import D_V_NODES
from rest_mcts.loop.train import train_prm_model
from rest_mcts.runtime.context import Context
from rest_mcts.utils.io import read_json, write_json

log = logging.getLogger(__name__)

# stages that search with the PRM of prm=trained (stage=loop refuses it: it trains its own)
PRM0_STAGES = ("search", "eval")

# the default world's loop (experiments/results/fresh_clone_seed0.md, 2 quiet cores): D_V0 by
# BFS on 2,000 questions took 1.2 min, PRM_0's 6 epochs on it 2.4 min: the notice's times
BFS_SECONDS_PER_QUESTION = 1.2 * 60 / 2000
PRM_SECONDS_PER_QUESTION_EPOCH = 2.4 * 60 / (2000 * 6)


@dataclass(frozen=True)
class PRM0Recipe(Knobs):
    """How PRM_0 is made (``prm.init`` of ``prm=trained``; ``stage.*`` of ``stage=init_prm``).

    Attributes:
        init: how D_V0 is made (method, questions, BFS tree shape, weak model).
        d_v_nodes: D_V0's rows of the BFS trees: ``paths`` (nodes on root-to-finished-leaf
            paths) or ``all`` (every legal node).
        val_share: share of D_V0's questions held out while PRM_0 trains.
        option: config prefix of these settings, for messages.
    """

    init: InitPRMSettings
    d_v_nodes: str = knob("paths", choices=D_V_NODES,
                          message="{key}={value} is not one of {allowed}")
    val_share: float = knob(0.1, low=0, high=1)
    option: str = "prm.init"

    def knob_prefix_of(self) -> str:
        return self.option


def prm0_recipe(
    node: Mapping[str, Any] | None, option: str = "prm.init", strict: bool = True
) -> PRM0Recipe:
    """The typed recipe of a ``prm.init`` node (or, not ``strict``, of ``stage=init_prm``'s
    ``stage`` node, whose other keys are left alone).

    Raises:
        ConfigError: (``strict``) a key that is no setting, or a bad value (one line naming
            it).
    """
    own = ("d_v_nodes", "val_share")
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    given = dict(node or {})
    known = set(own) | set(InitPRMSettings.__dataclass_fields__) - {"option"}
    unknown = sorted(str(k) for k in given if k not in known)
    if unknown and strict:
        raise ConfigError(f"{option}.{unknown[0]} is not a setting of {option} "
                          f"(known: {', '.join(sorted(known))})")
    init = InitPRMSettings(**{k: v for k, v in given.items()
                              if k in InitPRMSettings.__dataclass_fields__ and k != "option"},
                           option=option)
    return PRM0Recipe(init=init, option=option, **{k: given[k] for k in own if k in given})


def build_prm0(
    ctx: Context, recipe: PRM0Recipe, work_dir: str | Path, prm_dir: str | Path,
    base: str | Path, *, logger: Any = False,
) -> dict[str, float]:
    """D_V0 by ``recipe`` into ``work_dir/d_v.jsonl``, then PRM_0 trained on it from the base
    policy ``base`` (a fresh value head on its backbone, settings ``prm.*``) into ``prm_dir``
    (Lightning checkpoints under ``work_dir/checkpoints/prm``). Returns ``d_v0/*`` counts and
    the training metrics."""
    work = Path(work_dir)
    metrics = build_d_v0(ctx, recipe.init, work, base, recipe.d_v_nodes)
    metrics.update(train_prm_model(ctx, [work / "d_v.jsonl"], prm_dir, base, logger=logger,
                                   ckpt_dir=work / "checkpoints" / "prm",
                                   val_share=recipe.val_share))
    return metrics


def prm0_notice(ctx: Context, recipe: PRM0Recipe, path: Path) -> str:
    """The line said before a command trains ``prm=trained``'s PRM_0: what it trains, about
    how long on a quiet 2-core CPU, and where it is cached for later runs."""
    n, epochs = recipe.init.num_problems, ctx.prm.epochs
    seconds = n * epochs * PRM_SECONDS_PER_QUESTION_EPOCH
    if recipe.init.method == "bfs":
        seconds += n * BFS_SECONDS_PER_QUESTION
    took = f"about {math.ceil(seconds / 60)} min" if seconds >= 60 else "under a minute"
    return (f"no cached PRM_0 for this policy_0, seed and prm.init: training it first (D_V0 by "
            f"{recipe.init.method} on {n:,} questions, then {epochs} epoch{'s' * (epochs != 1)} of "
            f"the value head; "
            f"{took} on 2 quiet CPU cores); later runs reuse it from {path}")


def ensure_prm0(
    ctx: Context, run_dir: str | Path, policy_path: str | Path, logger: Any = False
) -> str | Path | None:
    """The PRM a search scores with: ``prm.path`` when given; with ``prm=trained`` the cached
    PRM_0, built first when missing (its D_V0 and checkpoints go to ``run_dir/prm0``); else
    None (an untrained head, or a scorer that needs no model)."""
    if ctx.prm_path or ctx.prm_init is None:
        return ctx.prm_path
    path = ctx.prm0_dir()
    if (path / "manifest.json").exists():
        log.info("reusing cached PRM_0 from %s", path)
        return path
    recipe = prm0_recipe(ctx.prm_init)
    log.warning("%s", prm0_notice(ctx, recipe, path))
    metrics = build_prm0(ctx, recipe, Path(run_dir) / "prm0", path, policy_path, logger=logger)
    manifest = read_json(path / "manifest.json", dict)
    manifest.update(produced_by="prm=trained (PRM_0, as stage=init_prm)", key=ctx.prm0_key,
                    recipe=asdict(recipe), metrics={**manifest.get("metrics", {}), **metrics})
    write_json(path / "manifest.json", manifest)
    log.info("PRM_0 cached at %s", path)
    return path


def check_prm_trained(stage: str, ctx: Context) -> None:
    """Before any work: ``prm.init`` is a valid recipe, and ``prm=trained`` is asked of a
    stage and policy backend it can serve.

    Raises:
        ConfigError: a bad ``prm.init`` option, ``stage=loop`` (it trains its own PRM_0), or
            a policy backend without weights to start PRM_0 from (one line).
    """
    if ctx.prm_init is None:
        return
    prm0_recipe(ctx.prm_init)
    if stage == "loop":
        raise ConfigError(f"prm={ctx.prm_name}: stage=loop trains its own PRM_0 "
                          "(stage.init_prm, stage.prm_train); use prm=tiny")
    if stage in PRM0_STAGES and not ctx.prm_path and not ctx.policy_needs_model():
        raise ConfigError(f"prm={ctx.prm_name} trains PRM_0 on the policy's weights, which "
                          "this backend does not serve (use backend=hf, or give prm.path)")

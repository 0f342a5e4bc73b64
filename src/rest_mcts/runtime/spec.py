"""The frozen run spec a stage works from, built and checked once before any work.

:func:`rest_mcts.stages.run_stage` builds it from the composed config (in
:func:`rest_mcts.stages.check_config`, before anything is written) and hands it to the stage:
the run's :class:`~rest_mcts.runtime.context.Context` and the typed config of ``search``
(e.g. :class:`~rest_mcts.search.configs.MCTSStarConfig`), each built once (DESIGN.md:
typed, frozen configs built once from the composed Hydra config), and the stage's wandb run
(``tracker``, which ``run_stage`` adds before the stage starts). A stage called on its own
(a test, a notebook) builds one itself, without a tracker.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from rest_mcts.runtime.context import Context
from rest_mcts.search.configs import SearchConfig, search_config_from


@dataclass(frozen=True)
class RunSpec:
    """What a stage runs with, typed and validated.

    Attributes:
        ctx: the run's Context (world, backends, training settings, seed, executor).
        search: the typed config of the ``search`` node (None: the config has none).
        tracker: the stage's run (:class:`rest_mcts.tracking.StageRun`), which
            :func:`rest_mcts.stages.run_stage` makes and ends on its resource stack; the
            stage opens it with :func:`rest_mcts.tracking.stage_run`. None: no run (a stage
            called on its own logs nothing). Not part of the spec's equality.
    """

    ctx: Context
    search: SearchConfig | None = None
    tracker: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_config(cls, cfg: Any, resources: contextlib.ExitStack | None = None) -> RunSpec:
        """The spec of a composed config (one-line ConfigError on the first bad option: the
        search method's knobs first, then the Context's). ``resources``: the stage's
        resource stack, passed to :meth:`Context.from_config` (the executor's shutdown)."""
        search = search_config_from(cfg.search) if cfg.get("search") is not None else None
        return cls(ctx=Context.from_config(cfg, resources), search=search)

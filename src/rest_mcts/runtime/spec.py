"""The frozen run spec a stage works from, built and checked once before any work.

:func:`rest_mcts.stages.run_stage` builds it from the composed config (in
:func:`rest_mcts.stages.check_config`, before anything is written) and hands it to the stage:
the run's :class:`~rest_mcts.runtime.context.Context` and the typed config of ``search``
(e.g. :class:`~rest_mcts.search.configs.MCTSStarConfig`), each built once (DESIGN.md:
typed, frozen configs built once from the composed Hydra config). A stage called on its own
(a test, a notebook) builds one itself.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from rest_mcts.runtime.context import Context
from rest_mcts.search.configs import SearchConfig, search_config_from


@dataclass(frozen=True)
class RunSpec:
    """What a stage runs with, typed and validated.

    Attributes:
        ctx: the run's Context (world, backends, training settings, seed, executor).
        search: the typed config of the ``search`` node (None: the config has none).
    """

    ctx: Context
    search: SearchConfig | None = None

    @classmethod
    def from_config(cls, cfg: Any, resources: contextlib.ExitStack | None = None) -> RunSpec:
        """The spec of a composed config (one-line ConfigError on the first bad option: the
        search method's knobs first, then the Context's). ``resources``: the stage's
        resource stack, passed to :meth:`Context.from_config` (the executor's shutdown)."""
        search = search_config_from(cfg.search) if cfg.get("search") is not None else None
        return cls(ctx=Context.from_config(cfg, resources), search=search)

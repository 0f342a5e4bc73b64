"""stage=view: one self-contained HTML page per search tree (``rest_mcts.view``).

    python run.py stage=view tree=outputs/search/<time>                # every tree + index.html
    python run.py stage=view tree=outputs/search/<time>/trees/<id>.json view.out=/tmp/pages
    python run.py stage=view tree=outputs/loop_runs/<name>             # every run of a loop
    python run.py stage=view tree=multirun/<date>/<time>               # every job of a multirun

It opens no tracker run (``rest_mcts.stages.UNTRACKED_STAGES``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from rest_mcts.config import ConfigError
from rest_mcts.view import TreeFileError, write_views

if TYPE_CHECKING:
    from rest_mcts.runtime.spec import RunSpec

log = logging.getLogger(__name__)


def view(cfg: DictConfig, spec: RunSpec | None = None) -> dict[str, float]:
    """``spec``: unused (this stage needs no Context)."""
    target = cfg.get("tree")
    if target is None:
        raise ConfigError("stage=view needs tree=<a tree JSON, a search run's folder, a loop "
                          "folder or a multirun folder>")
    out = (cfg.get("view") or {}).get("out")
    try:
        pages = write_views(Path(str(target)), None if out is None else Path(str(out)))
    except TreeFileError as err:
        raise ConfigError(str(err)) from None
    log.info("view: open %s", pages[0])
    return {"view/pages": float(len(pages))}

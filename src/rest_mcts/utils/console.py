"""What a run prints: each log line once, without library noise that says nothing about it.

`setup_console()` is called once per job, after Hydra has configured the root logger
(`run_stage` calls it):

- Lightning gives its `lightning` logger a handler of its own ("INFO: ...") that also
  propagates to the root logger, where Hydra's handler prints the same line again. Lightning's
  loggers lose their own handlers and go through the root logger only: one line each, in the
  job's format, also written to the job's log file.
- Messages that only advertise or describe library internals are dropped by name (a filter on
  the Lightning loggers, a warnings filter); every other warning still shows.
"""

from __future__ import annotations

import logging
import sys
import warnings

# Lightning loggers that may carry their own console handler.
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")

# Lightning INFO lines that say nothing about the run (start of the message).
LIGHTNING_NOISE = (
    "💡 Tip:",  # adverts for litlogger / litmodels
    "Loading `train_dataloader` to estimate number of stepping batches",
)

# Python warnings that say nothing about the run: (message regex, category).
WARNING_NOISE: tuple[tuple[str, type[Warning]], ...] = (
    # lightning.pytorch.utilities._pytree uses torch's deprecated LeafSpec (torch >= 2.10).
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)


class _DropNoise(logging.Filter):
    """Drop records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


_NOISE_FILTER = _DropNoise(LIGHTNING_NOISE)


def setup_console() -> None:
    """Make every log line of the job print once and drop known library noise (idempotent).

    Lightning adds its handlers when it is imported: a job that has not imported it yet
    (a search needs no Lightning, and its import costs seconds) gets only the warning
    filters here, and the training code calls this again once Lightning is loaded."""
    for message, category in WARNING_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)
    if "lightning" not in sys.modules and "pytorch_lightning" not in sys.modules:
        return
    root_has_handlers = logging.getLogger().hasHandlers()
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if root_has_handlers:  # else (no Hydra, e.g. a library user) keep Lightning's own
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:  # not a FileHandler
                    logger.removeHandler(handler)
            logger.propagate = True
    # Filters on a logger do not see records propagated from its children: filter on the
    # logger that emits (rank_zero_info, Trainer connectors log through it).
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _NOISE_FILTER not in logger.filters:
            logger.addFilter(_NOISE_FILTER)

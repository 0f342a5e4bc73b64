"""What a run prints: each log line once, without library noise that says nothing about it.

`setup_console()` is called once per job, after Hydra has configured the root logger
(`run_stage` calls it):

- Lightning gives its `lightning` logger a handler of its own ("INFO: ...") that also
  propagates to the root logger, where Hydra's handler prints the same line again. Lightning's
  loggers lose their own handlers and go through the root logger only: one line each, in the
  job's format, also written to the job's log file.
- Messages that only advertise or describe library internals are dropped by name (a filter on
  the Lightning loggers, a warnings filter); every other warning still shows.
- Floats in log lines print rounded (:func:`round_floats`: 4 significant digits, e.g.
  ``0.8588`` for ``0.8588235294117647``): a value passed to ``%s`` or ``%r``, alone or inside
  a dict, list or tuple (a metrics dict), is rounded by a filter on the job's console and
  log-file handlers (Hydra's, on the root logger); ``%.3f`` and other numeric formats are
  left as the caller wrote them.
- transformers' progress bars of every model load and save (``Loading weights``,
  ``Writing model shards``: dozens per loop on the tiny models, one per model a step
  loads) stay hidden; the step's own bar (search, evaluation, Lightning's training) is the
  one progress display. Downloads from the hub keep their bars.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import warnings
from typing import Any

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


# transformers' bars shown on every model load / save (`desc` of its tqdm calls).
MODEL_BARS = ("Loading weights", "Writing model shards", "Loading checkpoint shards")

SIGNIFICANT = 4  # digits a float keeps in a log line

# One %-conversion of a log message: its conversion type is the last group.
_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?([a-zA-Z%])")


def round_float(value: float, digits: int = SIGNIFICANT) -> float:
    """``value`` to ``digits`` significant digits, its integer part kept whole
    (``0.8588235294117647`` -> ``0.8588``, ``1234.5678`` -> ``1235.0``)."""
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


def round_floats(value: Any, digits: int = SIGNIFICANT) -> Any:
    """``value`` with every float rounded (:func:`round_float`), inside dicts, lists and
    tuples too (new containers; the caller's are left alone); anything else as it is."""
    if isinstance(value, float):
        return round_float(value, digits)
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):  # not a namedtuple
        return type(value)(round_floats(v, digits) for v in value)
    return value


class _RoundFloats(logging.Filter):
    """Round the floats a record's message shows through ``%s`` / ``%r`` (:func:`round_floats`);
    numeric conversions (``%.3f``, ``%d``) and ``{}``-style messages are left alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not args or not isinstance(args, tuple) or not isinstance(record.msg, str):
            return True
        kinds = [k for k in _CONVERSION.findall(record.msg) if k != "%"]
        if len(kinds) != len(args):  # `*` widths, or a message Python will refuse anyway
            return True
        record.args = tuple(round_floats(a) if k in "sra" else a for k, a in zip(kinds, args))
        return True


_ROUND_FILTER = _RoundFloats()


def _quiet_model_bars() -> None:
    """Hide transformers' bars of :data:`MODEL_BARS` (once transformers is imported; it is
    not imported for this). transformers >= 5.19 has a hook on its tqdm calls: only those
    bars go; an older one turns its own bars off and leaves the hub's download bars on."""
    if "transformers" not in sys.modules:
        return
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    set_hook = getattr(hf_logging, "set_tqdm_hook", None)
    if set_hook is None:
        hf_logging.disable_progress_bar()
        try:
            from huggingface_hub.utils import enable_progress_bars
        except ImportError:
            return
        enable_progress_bars()
        return

    def hook(factory: Any, args: tuple, kwargs: dict) -> Any:
        if str(kwargs.get("desc", "")).startswith(MODEL_BARS):
            kwargs = {**kwargs, "disable": True}
        return factory(*args, **kwargs)

    set_hook(hook)


class _DropNoise(logging.Filter):
    """Drop records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


_NOISE_FILTER = _DropNoise(LIGHTNING_NOISE)


def setup_console() -> None:
    """Make every log line of the job print once, with rounded floats, and drop known
    library noise and repeated model-loading bars (idempotent).

    Lightning adds its handlers when it is imported: a job that has not imported it yet
    (a search needs no Lightning, and its import costs seconds) gets the warning filters,
    the rounding and the quiet model bars here, and the training code calls this again once
    Lightning is loaded."""
    for message, category in WARNING_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)
    for handler in logging.getLogger().handlers:  # the job's console and log file (Hydra's)
        if type(handler) in (logging.StreamHandler, logging.FileHandler) and \
                _ROUND_FILTER not in handler.filters:
            handler.addFilter(_ROUND_FILTER)
    _quiet_model_bars()
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

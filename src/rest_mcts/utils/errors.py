"""The user-facing error every layer may raise: `run.py` turns it into one line and exit 2."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value or an input file is invalid; the message names the option (or the file
    and line) and what is allowed."""

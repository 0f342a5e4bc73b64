"""Keep secrets (API keys) out of log lines and error messages.

A secret is registered where it is read (:func:`protect`: the key a
:class:`~rest_mcts.backends.openai_client.ServerPool` reads from the variable its
``api_key_env`` names). From then on :func:`redact` replaces it in any text, and a filter on
every handler of the root logger (:class:`RedactSecrets`) rewrites each record before it is
printed or written (console, the job's ``run.log``, and what a logger copies of the console),
its traceback included. Code that puts a server's words into an exception redacts them first:
a proxy may echo the ``Authorization`` header back.
"""

from __future__ import annotations

import logging
import threading

REDACTED = "***"

# Shorter values are not treated as secrets: replacing them would garble every log line.
MIN_SECRET_LENGTH = 6

_secrets: set[str] = set()
_lock = threading.Lock()


def protect(secret: str | None) -> None:
    """Register ``secret`` (no-op for None or one shorter than :data:`MIN_SECRET_LENGTH`) and
    make sure every handler of the root logger redacts it."""
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        return
    with _lock:
        _secrets.add(secret)
    install_filter()


def redact(text: str) -> str:
    """``text`` with every registered secret (so also ``Bearer <secret>``) replaced by
    :data:`REDACTED`, longest first (a secret inside another goes with it)."""
    if not _secrets or not text:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message (arguments merged in) and its traceback text with
    :func:`redact`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactSecrets()


def install_filter() -> None:
    """Add the redacting filter to every handler of the root logger (idempotent; handlers
    added later get it at the next :func:`protect`)."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)

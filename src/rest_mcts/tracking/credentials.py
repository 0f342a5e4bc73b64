"""Online or offline: whether wandb credentials exist (without asking the network), and
whether the wandb server answers at all (:func:`server_unreachable`, one short probe that
sends no key), so that a run with a key but no network logs offline at once instead of
waiting out wandb's own 90 s start timeout."""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.wandb.ai"
PROBE_SECONDS = 3.0  # how long the wandb server may take to answer the probe


def has_credentials() -> bool:
    """Is there a wandb key without asking the network: ``WANDB_API_KEY`` (or an identity
    token file), or a key ``wandb login`` stored in the netrc file (``NETRC`` or ~/.netrc)
    for ``WANDB_BASE_URL``?"""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        from wandb.sdk.lib.wbauth import read_netrc_auth

        return bool(read_netrc_auth(host=base_url()))
    except Exception as err:  # an unreadable or malformed netrc: no credentials
        log.debug("no wandb credentials from netrc: %s", err)
        return False


def wandb_mode(offline: bool | None) -> str:
    """``WANDB_MODE`` when set in the environment; else offline/online by ``offline``, and
    when that is None by whether credentials exist."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if offline is None:
        offline = not has_credentials()
    return "offline" if offline else "online"


def base_url() -> str:
    """The wandb server: ``WANDB_BASE_URL``, else wandb's cloud."""
    return os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL


def shown_url(url: str) -> str:
    """``url`` as scheme, host and port only (no user or password a URL might carry)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def server_unreachable(url: str | None = None, timeout: float = PROBE_SECONDS) -> str | None:
    """Why the wandb server at ``url`` (default :func:`base_url`) cannot be used now, or None
    when it answers.

    One GET of the server's root, without the key (no credentials leave the machine): any
    HTTP answer, an error status included, means the server is there. The whole probe (name
    lookup, connect, answer) gets ``timeout`` seconds of wall clock; it runs on a daemon
    thread, so a lookup that hangs is left behind, not waited for.

    Returns:
        None, or the reason in a few words (``no answer within 3 s``, ``ConnectionRefusedError``).
    """
    url = url or base_url()
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout):
                pass
            outcome.append(None)
        except urllib.error.HTTPError:  # an answer: the server is there
            outcome.append(None)
        except Exception as err:  # noqa: BLE001 -- any failure to get an answer
            reason = getattr(err, "reason", err)
            outcome.append(type(reason).__name__ if isinstance(reason, BaseException)
                           else str(reason))

    worker = threading.Thread(target=probe, name="wandb-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return f"no answer within {timeout:g} s"
    return outcome[0]

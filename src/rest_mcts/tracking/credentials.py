"""Online or offline: whether wandb credentials exist, without asking the network."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def has_credentials() -> bool:
    """Is there a wandb key without asking the network: ``WANDB_API_KEY`` (or an identity
    token file), or a key ``wandb login`` stored in the netrc file (``NETRC`` or ~/.netrc)
    for ``WANDB_BASE_URL``?"""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        from wandb.sdk.lib.wbauth import read_netrc_auth

        host = os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"
        return bool(read_netrc_auth(host=host))
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

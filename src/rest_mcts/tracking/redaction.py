"""The config a run records: resolved, with every secret left out."""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

# Keys that hold secrets (a key ending in `_env` names an environment variable: kept).
SECRET_KEY = re.compile(r"(^|_)(api_?key|token|secret|password|passwd|credentials?)($|_)", re.I)
REDACTED = "<redacted>"


def _secret_values(plain: Any) -> set[str]:
    """Values of the environment variables that hold secrets: those whose name looks like a
    secret (WANDB_API_KEY, HF_TOKEN, ...) and those a `*_env` option names (api_key_env)."""
    names = {k for k in os.environ if SECRET_KEY.search(k.lower())}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if str(key).endswith("_env") and isinstance(value, str):
                    names.add(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(plain)
    return {os.environ[n] for n in names if len(os.environ.get(n) or "") >= 4}


def redact(plain: Any, secrets: Iterable[str] = ()) -> Any:
    """``plain`` with the value of every secret-named key and every string holding one of
    ``secrets`` replaced by :data:`REDACTED` (`*_env` keys hold names and stay)."""
    secrets = [s for s in secrets if s]

    def clean(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(key, v) for v in value]
        if isinstance(value, str):
            secret_key = SECRET_KEY.search(key) and not key.endswith("_env")
            if secret_key or any(s in value for s in secrets):
                return REDACTED
        return value

    return clean("", plain)


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The composed config, resolved (as written where a value resolves only inside a job),
    secrets left out: what the run folder's ``config.yaml`` and the wandb run record."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:  # an interpolation that only resolves inside a job
        log.warning("config recorded unresolved: %s", err)
        plain = OmegaConf.to_container(cfg, resolve=False)
    return redact(plain, _secret_values(plain))

"""Stable fingerprints of config subtrees, used to key cached artefacts."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf


def fingerprint(*parts: Any, length: int = 12) -> str:
    """A short hash of JSON-able parts (OmegaConf nodes are resolved first)."""
    plain = [OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig) else p for p in parts]
    text = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def held_out(key: str, share: float, seed: int = 0) -> bool:
    """Is ``key`` (e.g. a question) in the held-out share? A deterministic hash of (seed, key),
    so every item of one question lands on the same side of a train/validation split."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share

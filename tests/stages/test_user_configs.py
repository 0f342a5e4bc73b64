"""Config groups and options from the user's own folders (rest_mcts.config_sources): a folder
outside the repository adds a model option and a search option, used through
``--config-dir``, ``--config-path`` and ``hydra.searchpath``; a typo is still one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rest_mcts.config import ConfigError, check_cli_choices, normalize_cli_args
from rest_mcts.config_sources import sources_from_argv
from rest_mcts.overrides import check_overrides

from tests.helpers.paths import CONF, ROOT

MODEL = "defaults:\n  - tiny\n  - _self_\nname: mine\n"
SEARCH = "defaults:\n  - mcts_star\n  - _self_\nalpha: 0.25\n"


def user_folder(tmp_path: Path, primary: bool = False) -> Path:
    """``tmp_path/myconf`` with ``model/mine.yaml`` and ``search/my_mcts.yaml``; with
    ``primary``, also a ``config.yaml`` (the project's, choosing both)."""
    folder = tmp_path / "myconf"
    (folder / "model").mkdir(parents=True)
    (folder / "search").mkdir()
    (folder / "model" / "mine.yaml").write_text(MODEL)
    (folder / "search" / "my_mcts.yaml").write_text(SEARCH)
    if primary:
        text = (CONF / "config.yaml").read_text()
        text = text.replace("  - model: tiny ", "  - model: mine ", 1)
        text = text.replace("  - search: mcts_star", "  - search: my_mcts", 1)
        (folder / "config.yaml").write_text(text)
    return folder


def mechanisms(folder: Path) -> dict[str, list[str]]:
    """The three ways to name the folder, each choosing the user's options."""
    chosen = ["model=mine", "search=my_mcts"]
    return {"config-dir": ["--config-dir", str(folder), *chosen],
            "config-path": ["--config-path", str(folder)],
            "searchpath": [f"hydra.searchpath=[file://{folder}]", *chosen]}


@pytest.mark.parametrize("how", ["config-dir", "config-path", "searchpath"])
def test_the_checks_see_the_users_options(tmp_path, how):
    folder = user_folder(tmp_path, primary=how == "config-path")
    argv = normalize_cli_args(CONF, mechanisms(folder)[how])
    check_cli_choices(CONF, argv)
    check_overrides(CONF, [*argv, "search.alpha=0.5", f"hydra.run.dir={tmp_path / 'run'}"])
    sources = sources_from_argv(CONF, argv)
    assert "mine" in sources.options("model") and "tiny" in sources.options("model")
    assert "my_mcts" in sources.options("search") and "cot" in sources.options("search")


@pytest.mark.parametrize("how", ["config-dir", "config-path", "searchpath"])
def test_a_typo_is_still_one_line(tmp_path, how):
    folder = user_folder(tmp_path, primary=how == "config-path")
    argv = normalize_cli_args(CONF, mechanisms(folder)[how])
    with pytest.raises(ConfigError) as err:
        normalize_cli_args(CONF, [*argv, "model=mien"])
    message = str(err.value)
    assert message.startswith("unknown model 'mien': choose one of ") and "\n" not in message
    assert "mine" in message and "conf/model/" in message and str(folder / "model") in message
    with pytest.raises(ConfigError, match=r"^search.alpah is not an option: did you mean "
                                          r"search.alpha\?"):
        check_overrides(CONF, [*argv, "search.alpah=0.5", f"hydra.run.dir={tmp_path / 'run'}"])


def test_without_a_users_folder_its_options_are_unknown(tmp_path):
    user_folder(tmp_path)
    with pytest.raises(ConfigError, match=r"^unknown model 'mine': .* \(files in conf/model/\)$"):
        check_cli_choices(CONF, ["model=mine"])


def test_a_relative_folder_is_taken_from_the_current_folder(tmp_path, monkeypatch):
    user_folder(tmp_path, primary=True)
    monkeypatch.chdir(tmp_path)
    argv = normalize_cli_args(CONF, ["--config-path", "myconf"])
    assert argv == [f"hydra.searchpath=['file://{CONF}']",  # conf/ stays searched, last
                    f"--config-path={tmp_path / 'myconf'}"]
    for extra in (["--config-dir", "myconf"], ["hydra.searchpath=[file://myconf]"]):
        check_cli_choices(CONF, [*extra, "model=mine"])


@pytest.mark.slow
@pytest.mark.parametrize("how", ["config-dir", "config-path", "searchpath"])
def test_run_py_searches_with_the_users_options(tmp_path, how):
    """A mock search through run.py from another folder: the run's config holds the user's
    model and search options (~3 s each)."""
    folder = user_folder(tmp_path, primary=how == "config-path")
    run = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "run.py"), *mechanisms(folder)[how], "stage=search",
           "backend=mock", "prm=oracle", "data=countdown3", "data.limit=2", "logger=null",
           f"hydra.run.dir={run}"]
    env = {**os.environ, "REST_MCTS_ROOT": str(tmp_path)}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["name"] == "mine" and config["search"]["alpha"] == 0.25
    assert (run / "metrics.json").is_file()


@pytest.mark.slow
def test_run_py_refuses_a_typo_in_one_line(tmp_path):
    folder = user_folder(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config-dir", str(folder),
                           "model=mien"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown model 'mien': choose one of ")
    assert proc.stderr.count("\n") == 1

"""The package installs with its dependencies and runs from any folder: pyproject.toml's
dependencies are requirements.txt's pins, and the command line (``python -m rest_mcts``, the
console scripts) finds ``conf/`` wherever it is started (``pip install -e .``; here the
package is made importable with PYTHONPATH instead)."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from rest_mcts.cli import conf_dir

from tests.helpers.paths import CONF, ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

COMMENT = re.compile(r"(^|\s)#.*$")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(lines: list[str]) -> dict[str, str]:
    """name (normalised) -> specifier, of each requirement line."""
    found = {}
    for line in lines:
        text = COMMENT.sub("", line).strip()
        if text:
            req = Requirement(text)
            found[re.sub(r"[-_.]+", "-", req.name).lower()] = str(req.specifier)
    return found


def test_pyproject_declares_the_pins_of_requirements_txt():
    project = pyproject()["project"]
    declared = pins(project["dependencies"] + project["optional-dependencies"]["test"])
    assert declared == pins((ROOT / "requirements.txt").read_text().splitlines())
    assert "pytest" not in pins(project["dependencies"])  # test tools: the `test` extra


def test_console_scripts_name_functions():
    for name, target in pyproject()["project"]["scripts"].items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name


def test_conf_is_found_beside_the_source():
    assert conf_dir() == CONF


def run_from(folder, *args: str) -> subprocess.CompletedProcess:
    """``python -m rest_mcts ...`` started in ``folder``, the package on PYTHONPATH only."""
    env = {k: v for k, v in os.environ.items() if k != "REST_MCTS_ROOT"}
    env["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run([sys.executable, *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)


def test_python_m_rest_mcts_refuses_a_typo_from_another_folder(tmp_path):
    proc = run_from(tmp_path, "-m", "rest_mcts", "model=nope")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown model 'nope'") and proc.stderr.count("\n") == 1


@pytest.mark.slow
def test_python_m_rest_mcts_runs_a_stage_from_another_folder(tmp_path):
    """A mock search (~3 s): conf/ is found, the run goes where hydra.run.dir says, its log is
    run.log, and nothing lands in the folder it was started from."""
    (tmp_path / "cwd").mkdir()
    run = tmp_path / "run"
    proc = run_from(tmp_path / "cwd", "-m", "rest_mcts", "stage=search", "backend=mock",
                    "prm=oracle", "data=countdown3", "data.limit=2", "logger=null",
                    f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["search/num_questions"] == 2
    assert (run / "run.log").is_file()
    assert list((tmp_path / "cwd").iterdir()) == []


@pytest.mark.slow
def test_the_console_script_functions_run_from_another_folder(tmp_path):
    """``rest-mcts --cfg job`` and the sweep summary's script, called as pip's wrappers call
    them (the function, sys.exit of its result)."""
    for target, args in (("rest_mcts.cli:main", ["--cfg", "job"]),
                         ("rest_mcts.sweeps.aggregate:main", ["--help"])):
        module, _, function = target.partition(":")
        code = (f"import sys; sys.argv = ['x', *{args!r}]; from {module} import {function}; "
                f"sys.exit({function}())")
        proc = run_from(tmp_path, "-c", code)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip()

"""Command-line overrides checked before Hydra runs (rest_mcts.overrides): a misspelt key and
an output folder that cannot be made are one ConfigError line each."""

from __future__ import annotations

import pytest

from rest_mcts.config import ConfigError
from rest_mcts.overrides import check_output_folder, check_overrides

from tests.helpers.paths import CONF


@pytest.mark.parametrize("argv, message", [
    (["stage=search", "search.alpah=0.5"],
     "search.alpah is not an option: did you mean search.alpha? "
     "(a new key is added with +search.alpah=...)"),
    (["seach.alpha=0.5"], "seach.alpha is not an option: did you mean search.alpha?"),
    (["-m", "stage=search", "search.alpah=0.3,0.5"],
     "search.alpah is not an option: did you mean search.alpha?"),
    (["stage=search", "stage.num_problem=4"],
     "stage.num_problem is not an option: did you mean stage.num_problems?"),
    (["zzzzzz=1"], "zzzzzz is not an option (a new key is added with +zzzzzz=...)"),
])
def test_an_unknown_key_names_the_closest_option(tmp_path, argv, message):
    with pytest.raises(ConfigError) as err:
        check_overrides(CONF, [*argv, f"hydra.run.dir={tmp_path / 'run'}",
                               f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("argv", [
    ["stage=search", "search.alpha=0.5", "stage.num_problems=4", "~logger"],
    ["stage=search", "+search.brand_new=1"],              # + adds a key
    ["experiment=debug"],                                 # an overlay's own keys
    ["-m", "stage=search,eval", "stage.nonsense=1"],      # per-job configs: Hydra's to check
    ["--cfg", "job", "nonsense=1"],                       # other flags: Hydra's to handle
    ["stage=search", "search.alpha="],                    # Hydra reports what it cannot parse
])
def test_good_and_undecidable_overrides_pass(tmp_path, argv):
    check_overrides(CONF, [*argv, f"hydra.run.dir={tmp_path / 'run'}"])


def test_an_output_folder_behind_a_file_is_refused(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("")
    with pytest.raises(ConfigError) as err:
        check_overrides(CONF, ["stage=search", f"hydra.run.dir={blocker / 'a' / 'b'}"])
    assert str(err.value) == (f"hydra.run.dir={blocker / 'a' / 'b'}: {blocker} is a file, "
                              "not a folder")
    with pytest.raises(ConfigError, match=r"^hydra.sweep.dir=.*taken is a file"):
        check_overrides(CONF, ["-m", "seed=0,1", f"hydra.sweep.dir={blocker}"])


def test_a_read_only_folder_is_refused(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    # as root every folder is writable: the check asks os.access, which is asked here
    monkeypatch.setattr("rest_mcts.overrides.os.access",
                        lambda path, mode: str(path) != str(locked))
    with pytest.raises(ConfigError) as err:
        check_output_folder(locked / "run", "hydra.run.dir")
    assert str(err.value) == (f"hydra.run.dir={locked / 'run'}: {locked} is not writable "
                              f"(where {locked / 'run'} would be made)")
    with pytest.raises(ConfigError, match=r"locked is not writable$"):
        check_output_folder(locked, "hydra.run.dir")
    check_output_folder(tmp_path / "free" / "run", "hydra.run.dir")

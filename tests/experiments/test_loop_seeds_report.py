"""experiments/loop_seeds.py on hand-made loop folders (results.csv written by the loop's own
writer, loop_config.json): the claims, their standard errors over seeds, the held-out marks,
the iteration-0 gates and the columns a folder lacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import loop_seeds as ls  # experiments/ is on pytest's pythonpath (pyproject.toml)

from rest_mcts.loop.report import COLUMNS, write_csv


def rows(**columns: list[float]) -> list[dict[str, float]]:
    """Rows of iterations 0..K from ``key=[value per iteration]`` ('/' spelled '__', '@' '_at_')."""
    table = {k.replace("__", "/").replace("_at_", "@"): v for k, v in columns.items()}
    n = len(next(iter(table.values())))
    return [{"iteration": i, **{k: v[i] for k, v in table.items()}} for i in range(n)]


def loop_folder(root: Path, name: str, rows: list[dict], seed: int | None = None) -> Path:
    """A finished loop folder: results.csv and, with ``seed``, loop_config.json."""
    folder = root / name
    folder.mkdir(parents=True)
    write_csv(rows, folder / "results.csv")
    if seed is not None:
        (folder / "loop_config.json").write_text(
            json.dumps({"fingerprint": "x", "config": {"seed": seed}}))
    return folder


# Hand-made numbers. Claim (a), MCTS* - SC: seed 0 +0.1 +0.2 +0.3; seed 1 +0.2 -0.1 +0.3;
# seed 3 +0.3 +0.2 +0.3. Mean at iteration 0: 0.2, sample std 0.1, SE 0.1 / sqrt(3) = 0.0577.
COMMON = dict(cot__acc=[0.1, 0.1, 0.1], cot__tokens=[60, 60, 60], mcts__acc=[0.5, 0.5, 0.5],
              mcts__tokens=[300, 290, 280], mcts__prompt_tokens=[900, 900, 900],
              mcts__prm_calls=[12, 11, 10], sc__tokens=[310, 300, 290], sc__prompt_tokens=[50] * 3,
              best_of_n__tokens=[310, 300, 290], best_of_n__prm_calls=[5, 5, 5],
              policy__pass_at_k=[0.4, 0.5, 0.6], prm__val_oracle_mse=[0.05, 0.04, 0.03],
              data__d_v_rows=[100, 200, 300], data__d_g_traces=[0, 50, 60])
SEED0 = rows(**COMMON, sc__acc=[0.4, 0.3, 0.2], best_of_n__acc=[0.4, 0.5, 0.4],
             best_of_n_prod__acc=[0.45, 0.45, 0.45], sampled__bracketed=[1, 0, 1],
             prm__val_sibling_acc=[0.70, 0.75, 0.80], policy__greedy_acc=[0.10, 0.15, 0.20],
             policy__step_skill_at_1=[0.30, 0.35, 0.40], policy__step_skill_at_2=[0.20, 0.2, 0.30],
             policy__step_skill_ratio_at_1=[3.0, 3, 3], policy__step_skill_ratio_at_2=[2.5, 2, 2],
             prm__val_sibling_acc_at_1=[0.9, 0.9, 0.9], prm__val_sibling_acc_at_2=[0.85, 0.8, 0.8])
SEED1 = rows(**COMMON, sc__acc=[0.3, 0.6, 0.2], best_of_n__acc=[0.3, 0.4, 0.4],
             sampled__bracketed=[1, 1, 1],  # no best_of_n_prod column: claim (c) n/a
             prm__val_sibling_acc=[0.70, 0.60, 0.65], policy__greedy_acc=[0.10, 0.10, 0.20],
             policy__step_skill_at_1=[0.30, 0.3, 0.30], policy__step_skill_at_2=[0.20, 0.2, 0.10],
             policy__step_skill_ratio_at_1=[3.0, 3, 3], policy__step_skill_ratio_at_2=[1.5, 2, 2],
             prm__val_sibling_acc_at_1=[0.9, 0.9, 0.9], prm__val_sibling_acc_at_2=[0.85, 0.8, 0.8])
SEED3 = rows(**COMMON, sc__acc=[0.2, 0.3, 0.2], best_of_n__acc=[0.3, 0.3, 0.3],
             best_of_n_prod__acc=[0.4, 0.4, 0.4], sampled__bracketed=[1, 1, 1],
             prm__val_sibling_acc=[0.60, 0.70, 0.75], policy__greedy_acc=[0.10, 0.15, 0.20])
# seed 3 has no step-skill or per-depth columns: claim (f) n/a, its gates not measured


@pytest.fixture
def folders(tmp_path):
    return [loop_folder(tmp_path, "countdown-s9-aaa", SEED0, seed=0),  # the config wins
            loop_folder(tmp_path, "countdown-s1-bbb", SEED1),  # the seed from the name
            loop_folder(tmp_path, "countdown-s3-ccc", SEED3, seed=3)]


def run_report(folders, tmp_path, *extra: str) -> str:
    out = tmp_path / "report.md"
    text = ls.main([*map(str, folders), "--out", str(out), *extra])
    assert out.read_text() == text
    return text


def line_of(text: str, start: str, after: str) -> str:
    """The first line starting with ``start`` after the first occurrence of ``after``."""
    rest = text[text.index(after):]
    return next(line for line in rest.splitlines() if line.startswith(start))


def test_the_per_depth_columns_reach_results_csv():
    keys = {key for key, _, _ in COLUMNS}
    assert {"policy/step_skill@3", "policy/step_random@2", "policy/step_skill_ratio@1",
            "prm/val_sibling_acc@3"} <= keys


def test_seeds_from_config_or_name_and_duplicates_refused(folders, tmp_path):
    assert [ls.seed_of(f) for f in folders] == [0, 1, 3]
    again = loop_folder(tmp_path, "other-s1-x", SEED1)
    with pytest.raises(SystemExit, match="more than one folder for seed"):
        ls.load_runs([folders[1], again], set())
    with pytest.raises(SystemExit, match="no seed"):
        ls.seed_of(loop_folder(tmp_path, "nameless", SEED1))


def test_standard_error_over_seeds():
    mean, se = ls.mean_se([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and se == pytest.approx(0.1 / 3 ** 0.5)
    assert ls.mean_se([0.1, float("nan")])[0] != ls.mean_se([0.1, float("nan")])[0]  # nan
    assert ls.plus_minus(*ls.mean_se([0.4])) == "0.400"  # one seed: no ± part


def test_claims_every_iteration_per_seed_and_mean(folders, tmp_path):
    text = run_report(folders, tmp_path, "--held-out", "3,4,5")
    claim_a = "### (a) MCTS* > self-consistency at every iteration"
    assert line_of(text, "| 0 |", claim_a) == "| 0 | +0.100 yes | +0.200 yes | +0.300 yes | yes |"
    assert line_of(text, "| 1 |", claim_a) == "| 1 | +0.200 yes | -0.100 NO | +0.300 yes | NO |"
    assert line_of(text, "| 3* |", claim_a) == (
        "| 3* | +0.300 yes | +0.200 yes | +0.300 yes | yes |")
    # iteration 0: 0.1, 0.2, 0.3 -> 0.2 ± 0.1/sqrt(3); iteration 1: 0.2, -0.1, 0.2 -> 0.1 ±
    # sqrt(0.03)/sqrt(3) = 0.1; iteration 2: 0.3, 0.3, 0.3 -> 0.3 ± 0
    assert line_of(text, "| mean", claim_a) == (
        "| mean ± SE (n=3) | +0.200 ± 0.058 yes | +0.100 ± 0.100 yes | +0.300 ± 0.000 yes "
        "| yes |")
    claim_b = "### (b) MCTS* > PRM best-of-N (last step's value)"
    assert line_of(text, "| 0 |", claim_b) == "| 0 | +0.100 yes | +0.000 NO | +0.100 yes | NO |"
    # (c): seed 1 has no best_of_n_prod column
    claim_c = "### (c) MCTS* > PRM best-of-N (product of step values)"
    assert line_of(text, "| 0 |", claim_c) == "| 0 | +0.050 yes | +0.050 yes | +0.050 yes | yes |"
    assert line_of(text, "| 1 |", claim_c) == "| 1 | n/a | n/a | n/a | n/a |"
    assert line_of(text, "| mean", claim_c) == "| mean ± SE (n=3) | n/a | n/a | n/a | n/a |"


def test_claims_from_iteration_zero_to_the_last(folders, tmp_path):
    text = run_report(folders, tmp_path, "--held-out", "3")
    rises = "### (d)-(f)"
    assert line_of(text, "| seed |", rises) == (
        "| seed | (d) PRM sibling accuracy rises | (e) policy greedy accuracy rises "
        "| (f) policy step skill (mean of depths 1, 2) rises |")
    assert line_of(text, "| 0 |", rises) == "| 0 | +0.100 yes | +0.100 yes | +0.100 yes |"
    # (f) seed 1: (0.3 + 0.1) / 2 - (0.3 + 0.2) / 2 = -0.05
    assert line_of(text, "| 1 |", rises) == "| 1 | -0.050 NO | +0.100 yes | -0.050 NO |"
    assert line_of(text, "| 3* |", rises) == "| 3* | +0.150 yes | +0.100 yes | n/a |"
    # (d): 0.1, -0.05, 0.15 -> mean 0.0667, sample std 0.1041, SE 0.0601; (e): 0.1 ± 0
    assert line_of(text, "| mean", rises) == (
        "| mean ± SE (n=3) | +0.067 ± 0.060 yes | +0.100 ± 0.000 yes | n/a |")


def test_held_out_marks_header_and_notes(folders, tmp_path):
    text = run_report(folders, tmp_path, "--held-out", "3,4,5", "--notes", "load 4, 9 h/seed")
    assert text.startswith("# The self-training loop over seeds\n\n`python "
                           "experiments/loop_seeds.py ")
    assert "--held-out 3,4,5 --notes 'load 4, 9 h/seed'`\n\nload 4, 9 h/seed\n" in text
    assert f"- seed 0: `{folders[0]}` (iterations 0-2)" in text
    assert f"- seed 3*: `{folders[2]}`" in text and "- seed 1: " in text
    assert ("`*` held out: run once after the defaults were frozen; never used to choose "
            "settings.") in text
    assert "### seed 3* (`countdown-s3-ccc`)" in text and "### seed 0 (`countdown-s9-aaa`)" in text
    assert "| 3* | 0 | 0.100 |" in text  # the base models' table
    assert "seed 3*:\n" in text  # the gates
    assert "| 0* " not in text and "| 1* " not in text and "seed 1*" not in text
    plain = run_report(folders, tmp_path)
    assert "held out" not in plain and "3*" not in plain


def test_tables_dagger_missing_columns_and_gates(folders, tmp_path):
    text = run_report(folders, tmp_path)
    seed0 = "### seed 0 "
    assert line_of(text, "| SC |", seed0) == "| SC | 0.400 (310) | 0.300 (300 †) | 0.200 (290) |"
    assert line_of(text, "| MCTS* |", seed0) == (
        "| MCTS* | 0.500 (300) | 0.500 (290) | 0.500 (280) |")
    assert line_of(text, "| BoN (PRM prod) |", "### seed 1 ") == "| BoN (PRM prod) | - | - | - |"
    assert "| MCTS* | 900 / 12.0 | 900 / 11.0 | 900 / 10.0 |" in text  # prompt tok / PRM calls
    assert "| SC | 50 / - | 50 / - | 50 / - |" in text
    assert "| pass@N |" not in text  # no folder has it
    assert line_of(text, "| 0 | 0 |", "## Base models") == (
        "| 0 | 0 | 0.100 | 0.400 | 0.300 (3.0x) | 0.200 (2.5x) | - | 0.700 | 0.900 | 0.850 | - "
        "| 0.0500 | 100 | 0 |")
    assert line_of(text, "| 3 | 2 |", "## Base models").startswith("| 3 | 2 | 0.200 | 0.600 | - |")
    # the mean over seeds, iteration 0: SC 0.4, 0.3, 0.2 -> 0.3 ± 0.058
    assert line_of(text, "| SC |", "### mean over seeds") == (
        "| SC | 0.300 ± 0.058 (310) | 0.400 ± 0.100 (300 †) | 0.200 ± 0.000 (290) |")
    gates = text[text.index("## Iteration-0 gates"):text.index("## Claims")]
    assert "seed 0:\n\n- PASS: policy step skill at depth 1" in gates
    assert "all gates passed" in gates
    assert ("- FAIL: policy step skill at depth 2 over a random legal move's = 1.500 "
            "(gate >= 2)") in gates
    assert "1 of 4 gates FAILED" in gates
    assert "- not measured: PRM sibling ranking accuracy at depth 1 (prm/val_sibling_acc@1 " \
           "missing)" in gates


def test_a_column_the_csv_lacks_comes_from_the_step_manifest(tmp_path):
    bare = [{k: v for k, v in row.items() if "@" not in k} for row in SEED0]
    folder = loop_folder(tmp_path, "countdown-s0-old", bare)
    prm = folder / "iter_0" / "eval_prm"
    prm.mkdir(parents=True)
    (prm / "manifest.json").write_text(json.dumps({"outputs": {
        "val/sibling_acc@1": 0.95, "val/sibling_acc": 0.5, "note": "text"}}))
    policy = folder / "iter_0" / "eval_policy"
    policy.mkdir(parents=True)
    (policy / "manifest.json").write_text(json.dumps({"outputs": {
        "eval/step_skill_ratio@1": 4.0, "eval/greedy_acc": 0.9}}))
    first = ls.read_rows(folder)[0]
    assert first["prm/val_sibling_acc@1"] == 0.95 and first["policy/step_skill_ratio@1"] == 4.0
    assert first["prm/val_sibling_acc"] == 0.70  # the CSV wins
    assert "policy/greedy_acc" in first and first["policy/greedy_acc"] == 0.10
    assert "PASS: PRM sibling ranking accuracy at depth 1 = 0.950" in run_report([folder], tmp_path)


def test_the_loop_report_states_the_wall_time_by_part(tmp_path):
    from rest_mcts.loop.report import step_seconds, time_table, write_report
    from rest_mcts.utils.io import write_json

    for step, seconds in [("iter_0/d_v0", 60), ("iter_0/prm", 30), ("prm_eval_set", 6),
                          ("iter_1/search", 120), ("iter_1/prm", 30), ("iter_1/policy", 60),
                          ("iter_0/eval_cot", 3), ("iter_0/eval_mcts_star", 57),
                          ("iter_0/eval_policy", 12), ("iter_0/eval_prm", 6)]:
        write_json(tmp_path / step / "manifest.json", {"step": step, "seconds": seconds})
    write_json(tmp_path / "iter_1" / "prm" / "model" / "manifest.json", {"seconds": 999})
    assert "iter_1/prm/model" not in step_seconds(tmp_path)
    table = time_table(tmp_path, bootstrap_seconds=240)
    lines = dict(line.strip("| ").split(" | ") for line in table.splitlines()[2:])
    assert lines["policy_0 bootstrap"] == "4.0"
    assert lines["PRM_k training"] == "0.5" and lines["PRM_0 training"] == "0.5"
    assert lines["evaluation: search methods"] == "1.0"
    assert lines["evaluation: the policy alone"] == "0.2"
    assert lines["total"] == "10.4"
    paths = write_report([{"iteration": 0, "cot/acc": 0.1, "policy/step_skill_ratio@1": 1.5}],
                         tmp_path, "t", 240)
    text = paths["markdown"].read_text()
    assert "## Wall time" in text
    assert "- FAIL: policy step skill at depth 1 over a random legal move's = 1.500" in text

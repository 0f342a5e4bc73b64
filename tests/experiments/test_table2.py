"""experiments/_table2.py: the loops it runs (ReST-MCTS* first, the baselines matched to its
folder) and the table it writes, on hand-made loop folders (results.csv by the loop's writer)."""

from __future__ import annotations

from pathlib import Path

import _table2 as t2  # experiments/ is on pytest's pythonpath (pyproject.toml)

from rest_mcts.loop.report import write_csv

# greedy accuracy by method, seed, iteration; training tokens by method and seed (k >= 1)
ACC = {"rest_mcts": {0: [0.20, 0.30, 0.40], 1: [0.10, 0.20, 0.30]},
       "rest_em": {0: [0.20, 0.25, 0.30], 1: [0.10, 0.15, 0.20]},
       "dpo": {0: [0.20, 0.20, 0.10], 1: [0.10, 0.10, 0.10]}}
TOKENS = {"rest_mcts": {0: 800.0, 1: 600.0}, "rest_em": {0: 790.0, 1: 610.0},
          "dpo": {0: 805.0, 1: 590.0}}


def fake_run(root: Path, calls: list[list[str]]):
    """Stands in for ``run.py``: records the command and writes its loop's results.csv."""

    def run(cmd: list[str]) -> None:
        calls.append(cmd)
        opts = dict(a.split("=", 1) for a in cmd if "=" in a)
        method, seed = opts.get("stage.method", "rest_mcts"), int(opts["seed"])
        assert opts["stage.dir"] == str(t2.loop_folder(root, method, seed))
        rows = [{"iteration": k, "policy/greedy_acc": acc,
                 **({"data/train_tokens_per_question": TOKENS[method][seed]} if k else {})}
                for k, acc in enumerate(ACC[method][seed])]
        folder = Path(opts["stage.dir"])
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(rows, folder / "results.csv")

    return run


def test_run_table2_matches_the_baselines_to_rest_mcts_and_writes_the_table(tmp_path):
    calls: list[list[str]] = []
    out = tmp_path / "table2.md"
    text = t2.run_table2([0, 1], root=tmp_path / "loops", out=out, overrides=["threads=1"],
                         run=fake_run(tmp_path / "loops", calls))
    methods = [dict(a.split("=", 1) for a in c if "=" in a).get("stage.method", "rest_mcts")
               for c in calls]
    assert methods == ["rest_mcts", "rest_em", "dpo"] * 2  # per seed, rest_mcts first
    for cmd in calls:
        assert "threads=1" in cmd and "stage.iterations=2" in cmd
        if "stage.method=rest_em" in cmd or "stage.method=dpo" in cmd:
            seed = [a for a in cmd if a.startswith("seed=")][0][5:]
            assert f"stage.budget.match={tmp_path / 'loops' / f'rest_mcts-s{seed}'}" in cmd
    assert out.read_text() == text and "Machine load before:" in text
    lines = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert lines["| ReST-MCTS*"] == ("| ReST-MCTS* | 0.150 (0.100..0.200) | 0.250 (0.200..0.300)"
                                     " · 700 tok/q | 0.350 (0.300..0.400) · 700 tok/q |")
    assert "0.200 (0.150..0.250) · 700 tok/q" in lines["| ReST-EM"]
    assert lines["| DPO (verifier pairs; Self-Rewarding in the paper)"].endswith(
        "| 0.100 (0.100..0.100) · 698 tok/q |")
    assert "| method | iteration 0 | iteration 1 | iteration 2 |" in text


def test_a_missing_iteration_reads_as_a_dash():
    rows = {"rest_mcts": {0: [{"iteration": 0, "cot/acc": 0.5}]}}
    table = t2.table2_markdown(rows)
    assert "| ReST-MCTS* | 0.500 (0.500..0.500) | - | - |" in table

"""The iteration-0 gates: step skill over random and PRM sibling accuracy, per depth."""

from __future__ import annotations

from rest_mcts.loop.gates import any_failed, gates, summary


def test_gates_pass_fail_and_not_measured():
    row = {"policy/step_skill_ratio@1": 2.5, "policy/step_skill_ratio@2": 1.5,
           "prm/val_sibling_acc@1": 0.85, "prm/val_sibling_acc@2": float("nan")}
    by_key = {g.key: g for g in gates(row)}
    assert by_key["policy/step_skill_ratio@1"].passed
    assert not by_key["policy/step_skill_ratio@2"].passed
    assert by_key["prm/val_sibling_acc@1"].passed
    assert not by_key["prm/val_sibling_acc@2"].measured
    lines = summary(row)
    assert lines[1].startswith("FAIL: policy step skill at depth 2")
    assert lines[-1].startswith("1 of 4 gates FAILED")
    assert any_failed(row)


def test_all_gates_passed_and_a_world_without_oracle():
    row = {"policy/step_skill_ratio@1": 3, "policy/step_skill_ratio@2": 2,
           "prm/val_sibling_acc@1": 0.9, "prm/val_sibling_acc@2": 0.8}
    assert summary(row)[-1] == "all gates passed" and not any_failed(row)
    assert all(line.startswith("not measured") for line in summary({}))

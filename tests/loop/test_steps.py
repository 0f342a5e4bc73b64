"""StepRunner's progress line: "step i of n" from the loop's plan, and a rough ETA once a step
has run in this process; steps outside the plan and finished steps as before."""

from __future__ import annotations

import logging

from rest_mcts.loop.steps import StepRunner


def test_progress_counts_the_plan_and_estimates_what_is_left(tmp_path, caplog):
    runner = StepRunner(tmp_path, plan=["a", "b/c", "d"])
    assert runner.progress("a") == "step 1 of 3: a"  # nothing ran yet: no estimate
    assert runner.progress("x") == "step x"
    with caplog.at_level(logging.INFO, logger="rest_mcts.loop.steps"):
        runner.run("a", lambda d: {"n": 1}, produced_by="first")
        runner._ran_seconds = 120.0  # as if step a had taken two minutes
        line = runner.progress("b/c")
        runner.run("b/c", lambda d: {}, produced_by="second")
    assert line == "step 2 of 3: b/c [2 min so far, about 4 min to go]"  # 2 steps left
    assert "step 1 of 3: a: running (first)" in caplog.text
    assert "step 2 of 3: b/c [" in caplog.text
    again = StepRunner(tmp_path, plan=["a", "b/c", "d"])
    assert again.run("a", lambda d: {"n": 2}, produced_by="first") == {"n": 1}
    assert again.skipped == ["a"]


def test_a_runner_without_a_plan_logs_as_before(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="rest_mcts.loop.steps"):
        StepRunner(tmp_path).run("iter_0/x", lambda d: {}, produced_by="p")
    assert "step iter_0/x: running (p)" in caplog.text

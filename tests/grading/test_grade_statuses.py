"""Grading a small assignment on the real daemon: every kind of submission ends with its status
and score, and the batch goes on."""

from __future__ import annotations

import json

import builders as b
import pytest

from graders.grading import GradingOptions, grade_assignment
from graders.outcome import Status
from graders.release import generate_release

pytestmark = [pytest.mark.docker, pytest.mark.slow]

FAST = GradingOptions(cell_timeout=10, submission_timeout=90, feedback=False)


@pytest.fixture
def course(tmp_path):
    root = b.course_folder(tmp_path / "course", b.mini_source())
    generate_release(root, root / "release", assignments=[b.MINI])
    return root


def _grade(course, options=FAST):
    batch = grade_assignment(course, b.MINI, options)
    return {r.student: r for r in batch.results}


def test_each_kind_of_submission_gets_its_status_and_score(course, no_leftovers):
    solved = b.solved(course)
    b.submit(course, "perfect", solved)
    b.submit(course, "blank", b.released(course))
    b.submit(course, "not-json", '{"cells": [')
    b.submit(course, "hangs", b.with_cell_source(
        solved, "double-solution", "import time\nwhile True:\n    time.sleep(1)"))
    b.submit(course, "crashes", b.with_cell_source(
        solved, "start-solution", "import os\nos._exit(3)"))
    no_tests = b.solved(course)
    no_tests.cells = [c for c in no_tests.cells if not c.id.endswith("-tests")]
    b.submit(course, "deleted-tests", no_tests)
    results = _grade(course)
    got = {s: (r.status, r.score) for s, r in results.items()}
    assert got == {
        "perfect": (Status.GRADED, 3.0),
        "blank": (Status.GRADED, 0.0),
        "not-json": (Status.INVALID, 0.0),
        "hangs": (Status.TIMED_OUT, 2.0),
        "crashes": (Status.KERNEL_DIED, 1.0),
        "deleted-tests": (Status.GRADED, 3.0),
    }
    assert "JSON" in results["not-json"].detail and "\n" not in results["not-json"].detail
    outcome = json.loads((course / "grading" / b.MINI / "deleted-tests.json").read_text())
    assert outcome["restored_cells"] == ["double-tests", "start-tests"]


def test_a_student_cannot_move_the_parameter_injection(course, no_leftovers):
    """Tagging another cell `injected-parameters` would let the student pick the namespace."""
    nb = b.solved(course)
    for cell in nb.cells:
        if cell.id == "start-tests":
            cell.metadata["tags"] = ["injected-parameters"]
        if cell.id == "parameters":
            cell.metadata["tags"] = []
    b.submit(course, "sneaky", nb)
    _grade(course)
    graded = b.read_autograded(course, "sneaky")
    injected = [c for c in graded.cells if "NAMESPACE = " in c.source and c.id != "parameters"]
    assert len(injected) == 1
    position = graded.cells.index(injected[0])
    assert graded.cells[position - 1].id == "parameters"


def test_a_submission_that_outlives_its_limit_has_remaining_cells_marked_not_run(course,
                                                                                 no_leftovers):
    slow = b.with_cell_source(b.solved(course), "double-solution",
                              "import time\ntime.sleep(4)\ndef double(x):\n    return 2 * x")
    b.submit(course, "slow", slow)
    results = _grade(course, GradingOptions(cell_timeout=10, submission_timeout=3,
                                            feedback=False))
    assert results["slow"].status == Status.TIMED_OUT and results["slow"].score == 0.0
    graded = b.read_autograded(course, "slow")
    last = [c for c in graded.cells if c.cell_type == "code"][-1]
    assert last.outputs[0]["ename"] == "NotRun"


def test_graded_submissions_are_not_graded_again_unless_forced(course, no_leftovers):
    b.submit(course, "alice", b.solved(course))
    assert _grade(course)["alice"].status == Status.GRADED
    again = _grade(course)["alice"]
    assert again.status == Status.ALREADY_GRADED and again.score == 3.0
    b.submit(course, "alice", b.released(course))
    forced = _grade(course, GradingOptions(cell_timeout=10, force=True, feedback=False))["alice"]
    assert forced.status == Status.GRADED and forced.score == 0.0


def test_a_missing_daemon_is_an_infrastructure_error_not_a_zero(course, monkeypatch,
                                                                tmp_path):
    from graders.grading import Coordinator
    from graders.worker import grade_task

    b.submit(course, "alice", b.solved(course))
    coordinator = Coordinator(course, b.MINI, FAST)
    task = coordinator.task(coordinator.prepare(), "alice")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    result = grade_task(task)
    assert result.status == Status.INFRASTRUCTURE and "DockerException" in result.outcome.detail
    coordinator.recorder.record(result)
    assert coordinator.recorder.score("alice")[0] is None
    assert coordinator.recorder.previous("alice") is None

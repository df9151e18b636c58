"""The order submissions go to the workers: the longest expected first (no daemon needed)."""

from __future__ import annotations

import builders as b

from graders.grading import BatchResult, Coordinator, GradingOptions, _pending
from graders.outcome import Outcome, Status
from graders.release import generate_release

BIG = "big-assignment"


def _course(tmp_path):
    root = b.course_folder(tmp_path / "course", b.mini_source())
    bigger = b.mini_source()
    for index in range(3):
        bigger = b.with_added_cell(bigger, "x = 1", cell_id=f"extra{index}")
    b.course_folder(root, bigger, assignment=BIG)
    generate_release(root, root / "release", assignments=[b.MINI, BIG])
    return root


def _order(root, assignments, options):
    jobs = [job for assignment in assignments
            for job in _pending(Coordinator(root, assignment, options),
                                BatchResult(assignment), None)]
    jobs.sort(key=lambda job: job.order)
    return [(job.coordinator.assignment, job.student) for job in jobs]


def test_untouched_releases_last_then_bigger_notebooks_then_bigger_submissions_first(tmp_path):
    root = _course(tmp_path)
    for assignment in (b.MINI, BIG):
        b.submit(root, "blank", b.released(root, assignment), assignment)
        b.submit(root, "solved", b.solved(root, assignment), assignment)
        b.submit(root, "verbose", b.with_added_cell(b.solved(root, assignment),
                                                    "# worked it all out\n" * 50), assignment)
    assert _order(root, [b.MINI, BIG], GradingOptions()) == [
        (BIG, "verbose"), (BIG, "solved"), (b.MINI, "verbose"), (b.MINI, "solved"),
        (BIG, "blank"), (b.MINI, "blank")]

    # A regrade knows how long each took last time, which says more than the file's size.
    Outcome(status=Status.TIMED_OUT, wall_seconds=40.0).save(
        root / "grading" / b.MINI / "solved.json")
    Outcome(status=Status.GRADED, wall_seconds=5.0).save(
        root / "grading" / b.MINI / "verbose.json")
    assert _order(root, [b.MINI], GradingOptions(force=True)) == [
        (b.MINI, "solved"), (b.MINI, "verbose"), (b.MINI, "blank")]


def test_an_unreadable_submission_counts_as_attempted(tmp_path):
    root = _course(tmp_path)
    b.submit(root, "broken", "{ not json", b.MINI)
    b.submit(root, "blank", b.released(root, b.MINI), b.MINI)
    coordinator = Coordinator(root, b.MINI, GradingOptions())
    assert not coordinator.unattempted("broken") and coordinator.unattempted("blank")

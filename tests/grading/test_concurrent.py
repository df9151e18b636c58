"""Two grading runs at the same time on one daemon do not disturb each other."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import builders as b
import pytest

from graders.release import generate_release

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_two_simultaneous_runs_with_the_same_student_names_both_score_full(tmp_path,
                                                                          no_leftovers):
    course = Path(sys.executable).parent / "course"
    runs = []
    for name in ("course-a", "course-b"):
        root = b.course_folder(tmp_path / name, b.mini_source())
        generate_release(root, root / "release", assignments=[b.MINI])
        for student in ("alice", "bob"):
            b.submit(root, student, b.solved(root))
        runs.append((root, subprocess.Popen(
            [str(course), "grade", b.MINI, "--course-dir", str(root), "--no-feedback"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    for root, process in runs:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        with (root / "exports" / f"{b.MINI}-status.csv").open() as handle:
            rows = {r["student_id"]: (r["status"], float(r["score"]))
                    for r in csv.DictReader(handle)}
        assert rows == {"alice": ("graded", 3.0), "bob": ("graded", 3.0)}, output

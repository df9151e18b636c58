"""Names an LMS gives downloaded files: a resubmission's counter is read past, only for a file
the release has (pure logic: nbgrader's collector plugin, no download)."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from graders.classroom import CANVAS_FILE_NAMES
from graders.lms_names import LmsFileNames


def _collector(release_files: list[str]) -> LmsFileNames:
    config = Config()
    config.FileNameCollectorPlugin.named_regexp = CANVAS_FILE_NAMES
    config.LmsFileNames.release_files = release_files
    return LmsFileNames(config=config)


@pytest.mark.parametrize(("download", "release", "student", "file_id"), [
    ("alice_1001_5002_problem1.ipynb", ["problem1.ipynb"], "alice", "problem1.ipynb"),
    ("alice_1001_5002_problem1-1.ipynb", ["problem1.ipynb"], "alice", "problem1.ipynb"),
    ("bob_LATE_1002_5003_problem1-12.ipynb", ["problem1.ipynb"], "bob", "problem1.ipynb"),
    ("carol_1003_5004_lab-2.ipynb", ["lab.ipynb", "lab-2.ipynb"], "carol", "lab-2.ipynb"),
    ("dan_1004_5005_scratch-1.ipynb", ["problem1.ipynb"], "dan", "scratch-1.ipynb"),
])
def test_a_resubmission_counts_as_the_release_file_it_names(download, release, student,
                                                            file_id):
    found = _collector(release).collect(f"/course/downloaded/ps1/extracted/{download}")
    assert (found["student_id"], found["file_id"]) == (student, file_id)


def test_a_name_of_another_form_is_still_skipped():
    assert _collector(["problem1.ipynb"]).collect("/x/problem1-1.ipynb") is None

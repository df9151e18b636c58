"""The CLI as a mapping from flags to one library call, and how it shows errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from graders import cli, grading, release
from graders.errors import GradingError
from graders.grading import BatchResult


@pytest.fixture
def runner():
    return CliRunner()


def test_grade_turns_flags_into_options(runner, monkeypatch, tmp_path):
    calls = []

    def fake_grade(root, assignments, options, on_start=None, on_result=None):
        calls.append((root, assignments, options))
        return [BatchResult(a, grades_csv=tmp_path / "g.csv",
                            status_csv=tmp_path / "s.csv", feedback_dir=tmp_path)
                for a in assignments]

    monkeypatch.setattr(grading, "grade_assignments", fake_grade)
    result = runner.invoke(cli.main, ["grade", "02-containers", "--course-dir", str(tmp_path),
                                      "--student", "alice", "--student", "bob", "--force",
                                      "--cell-timeout", "7", "--timeout", "70", "--no-feedback",
                                      "--workers", "3"])
    assert result.exit_code == 0, result.output
    [(root, assignment, options)] = calls
    assert (root, assignment) == (Path(tmp_path), ["02-containers"])
    assert options.students == ["alice", "bob"] and options.force and not options.feedback
    assert (options.cell_timeout, options.submission_timeout, options.workers) == (7, 70, 3)


def test_a_course_error_prints_one_error_line_and_the_remedy(runner, monkeypatch):
    def failing(*args, **kwargs):
        raise GradingError("no source notebook for x", remedy="Check the assignment id.")

    monkeypatch.setattr(grading, "grade_assignments", failing)
    result = runner.invoke(cli.main, ["grade", "x"])
    assert result.exit_code == 1
    assert "ERROR no source notebook for x" in result.output
    assert "Check the assignment id." in result.output
    assert "Traceback" not in result.output


def test_release_check_fails_and_lists_stale_files(runner, monkeypatch):
    monkeypatch.setattr(release, "stale_files", lambda root: ["release/a/a.ipynb (out of date)"])
    result = runner.invoke(cli.main, ["release", "--check"])
    assert result.exit_code == 1
    assert "release/a/a.ipynb (out of date)" in result.output

"""The CLI as a mapping from flags to one library call, and how it shows errors."""

from __future__ import annotations

import re
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


def test_release_assignment_reads_the_exchange_from_nbgrader_config(runner, tmp_path):
    from nbgrader_course import ASSIGNMENT, write_source

    exchange = tmp_path / "exchange"
    write_source(tmp_path / "course", f'c = get_config()\nc.Exchange.root = "{exchange}"\n'
                                      'c.CourseDirectory.course_id = "dc101"\n')
    args = ["release-assignment", ASSIGNMENT, "--course-dir", str(tmp_path / "course")]
    result = runner.invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    outbound = exchange / "dc101" / "outbound" / ASSIGNMENT
    assert (outbound / "problem1.ipynb").is_file(), result.output
    again = runner.invoke(cli.main, args)  # students may have fetched it: not replaced unasked
    assert again.exit_code == 1 and "ERROR releasing ps1 failed" in again.output, again.output
    assert runner.invoke(cli.main, [*args, "--force"]).exit_code == 0


def test_collect_from_a_missing_exchange_says_so(runner, tmp_path):
    from nbgrader_course import ASSIGNMENT, write_source

    write_source(tmp_path)
    result = runner.invoke(cli.main, ["collect", ASSIGNMENT, "--course-dir", str(tmp_path),
                                      "--exchange", str(tmp_path / "no-exchange")])
    assert result.exit_code == 1
    shown = " ".join(result.output.split())
    assert "ERROR collecting ps1 failed" in shown and "no-exchange" in shown, shown
    assert "what to do:" in result.output
    assert not (tmp_path / "submitted").exists()


def test_export_writes_nbgrader_and_canvas_files(runner, tmp_path):
    from nbgrader.api import Gradebook

    from graders.nbgrader_env import sqlite_url, stamp_new_gradebook

    db_url = sqlite_url(tmp_path / "gradebook.db")
    stamp_new_gradebook(db_url)
    with Gradebook(db_url) as gradebook:
        gradebook.add_assignment("ps1")
        gradebook.add_student("alice")
    result = runner.invoke(cli.main, ["export", "--course-dir", str(tmp_path),
                                      "--canvas-id", "ps1=42"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "exports" / "grades.csv").is_file()
    header = (tmp_path / "exports" / "canvas.csv").read_text().splitlines()[0]
    assert header.endswith(",ps1 (42)")
    wrong = runner.invoke(cli.main, ["export", "--course-dir", str(tmp_path), "--canvas-id", "42"])
    assert wrong.exit_code == 2 and "ASSIGNMENT=ID" in wrong.output


def test_every_course_command_the_readme_names_exists():
    readme = (Path(cli.__file__).parents[1] / "README.md").read_text()
    named = set(re.findall(r"`(?:\.venv/bin/)?course ([a-z][a-z-]+)", readme))
    named |= set(re.findall(r"^\.venv/bin/course ([a-z][a-z-]+)", readme, re.MULTILINE))
    assert {"grade", "collect", "collect-zip", "release-feedback", "export"} <= named
    assert named <= set(cli.main.commands), named - set(cli.main.commands)


@pytest.mark.parametrize("command", [["grade", "ps1"], ["collect", "ps1"], ["export"]])
def test_a_broken_nbgrader_config_is_one_error_line(runner, tmp_path, command):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config(\n")
    result = runner.invoke(cli.main, [*command, "--course-dir", str(tmp_path)])
    assert result.exit_code == 1, result.output
    shown = " ".join(result.output.split())
    assert "ERROR" in shown and "nbgrader_config.py could not be loaded: SyntaxError" in shown
    assert "Traceback" not in result.output

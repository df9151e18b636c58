"""Feedback HTML for students: their graded notebook with the hidden tests taken out."""

from __future__ import annotations

from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.apps import NbGraderAPI
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from .nbgrader_env import course_config, tools_on_path
from .preprocessors import StripHiddenTracebacks


def generate_feedback(root: Path, db_url: str, assignment: str, student: str) -> Path | None:
    """Write ``feedback/<student>/<assignment>/*.html``; return the folder, or None on failure.

    nbgrader's feedback shows restored hidden tests unless ClearHiddenTests runs as well, and
    tracebacks quote hidden lines unless they are stripped first.
    """
    config = course_config(root, db_url)
    config.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor,
                                             StripHiddenTracebacks, ClearHiddenTests]
    with tools_on_path():
        result = NbGraderAPI(config=config).generate_feedback(assignment, student, force=True)
    folder = root / "feedback" / student / assignment
    return folder if result["success"] and folder.is_dir() else None

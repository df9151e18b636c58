"""The main job: grade the bundled sample submissions of the demo assignment in a work folder."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .errors import GradingError
from .grading import BatchResult, GradingOptions, grade_assignment
from .outcome import Outcome
from .settings import DEMO_ASSIGNMENT

#: A file that marks a folder as the demo's own, so a re-run may clear it without losing data.
MARKER = ".course-demo"


def prepare_work_folder(root: Path, work: Path) -> None:
    """Lay out a fresh course folder: the demo's source and the sample submissions."""
    if work.exists():
        if not (work / MARKER).exists():
            raise GradingError(f"{work} exists and is not a demo folder; refusing to clear it",
                               remedy="Pass --work-dir with a new or empty folder.")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MARKER).write_text("Made by `course demo`; cleared by the next demo run.\n")
    shutil.copytree(root / "source" / DEMO_ASSIGNMENT, work / "source" / DEMO_ASSIGNMENT)
    samples = root / "examples" / "submissions"
    for student_dir in sorted(p for p in samples.iterdir() if p.is_dir()):
        shutil.copytree(student_dir, work / "submitted" / student_dir.name)


def run_demo(
    root: Path,
    work: Path,
    options: GradingOptions | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[Outcome], None] | None = None,
) -> BatchResult:
    """Grade every bundled sample of the demo assignment; the work folder holds all results."""
    prepare_work_folder(root, work)
    options = options or GradingOptions(cell_timeout=15, submission_timeout=180)
    return grade_assignment(work, DEMO_ASSIGNMENT, options, on_result=on_result,
                            on_start=on_start)

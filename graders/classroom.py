"""The classroom loop on nbgrader's exchange: hand an assignment out, collect it (from the
exchange or from the zip an LMS gives), and hand feedback back.

Every step is nbgrader's own exchange class or app, configured from the course folder's
nbgrader_config.py as ``nbgrader`` itself would be, with two changes: collecting never follows
a symbolic link (``graders.link_free_collect``), and the feedback handed back is the course's
(hidden tests and their tracebacks removed).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.auth import Authenticator
from nbgrader.coursedir import CourseDirectory
from nbgrader.exchange.default import ExchangeReleaseAssignment, ExchangeReleaseFeedback
from nbgrader.utils import capture_log
from traitlets.config import Config

from .errors import ExchangeError
from .folders import read_no_link
from .link_free_collect import LinkFreeCollect
from .nbgrader_env import (
    configured,
    course_config,
    file_config,
    stamp_new_gradebook,
    tools_on_path,
)

#: nbgrader's own default exchange folder, used when nbgrader_config.py names none.
NBGRADER_EXCHANGE = "/srv/nbgrader/exchange"
#: Canvas names each downloaded file ``<name>_[LATE_]<user id>_<submission id>_<file name>``;
#: the name part becomes the student id, the file name the notebook.
CANVAS_FILE_NAMES = r".*/(?P<student_id>[^/_]+)_(?:LATE_)?\d+_\d+_(?P<file_id>[^/]+)$"
#: What a submission's own folder carries for nbgrader's feedback exchange.
SUBMISSION_RECORDS = ("timestamp.txt", "submission_secret.txt")


@dataclass
class FeedbackReleased:
    """Whose feedback went into the exchange, and why the others' did not."""

    assignment: str
    students: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class Collected:
    """Who was collected, and what had to be left out of or skipped in their files."""

    assignment: str
    students: list[str] = field(default_factory=list)
    left_out: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def exchange_config(root: Path, db_url: str, exchange: Path | None = None) -> Config:
    """The course's nbgrader configuration with the shared exchange in use.

    The exchange is ``exchange`` if given, else nbgrader_config.py's ``Exchange.root``, else
    nbgrader's default; grading alone uses a private one instead.
    """
    config = course_config(root, db_url)
    config.Exchange.root = str(exchange) if exchange else configured(
        file_config(root), "Exchange.root", default=NBGRADER_EXCHANGE)
    config.ExchangeFactory.collect = LinkFreeCollect
    return config


def _run(app, step: str) -> str:
    """Start an nbgrader exchange step; its log, or an ExchangeError with its error lines."""
    with tools_on_path():
        result = capture_log(app)
    log = result.get("log", "")
    if not result["success"]:
        errors = [line.split("] ", 1)[1] for line in log.splitlines()
                  if line.startswith(("[ERROR] ", "[CRITICAL] "))]
        raise ExchangeError(f"{step} failed: " + (" ".join(errors) or result.get("error", "")))
    return log


def _warnings(log: str) -> list[str]:
    return [line.removeprefix("[WARNING] ").strip() for line in log.splitlines()
            if line.startswith("[WARNING]")]


def _coursedir(config: Config, assignment: str, student: str = "*") -> CourseDirectory:
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = assignment
    coursedir.student_id = student
    return coursedir


def _exchange_step(kind, config: Config, assignment: str, student: str = "*"):
    return kind(coursedir=_coursedir(config, assignment, student),
                authenticator=Authenticator(config=config), config=config)


def release_assignment(root: Path, db_url: str, assignment: str, exchange: Path | None = None,
                       regenerate: bool = False, force: bool = False) -> Path:
    """Put ``release/<assignment>`` into the exchange's outbound folder for students to fetch.

    The release is generated from source/ (nbgrader generate_assignment, cells recorded in the
    gradebook) if it is missing or ``regenerate``; an assignment already in the exchange is
    replaced only with ``force``, since students may have fetched it.
    """
    from .release import generate_release

    if regenerate or not (root / "release" / assignment).is_dir():
        generate_release(root, root / "release", [assignment], db_url=db_url)
    config = exchange_config(root, db_url, exchange)
    step = _exchange_step(ExchangeReleaseAssignment, config, assignment)
    step.force = force
    _run(step, f"releasing {assignment}")
    return Path(config.Exchange.root) / config.CourseDirectory.course_id / "outbound" / assignment


def collect(root: Path, db_url: str, assignment: str, exchange: Path | None = None,
            update: bool = True) -> Collected:
    """Copy each student's latest submission from the exchange into submitted/, links left out.

    With ``update`` a newer submission replaces an older one already collected; a due date in
    the gradebook makes nbgrader keep the latest one before it, if
    ``ExchangeCollect.before_duedate`` is set.
    """
    stamp_new_gradebook(db_url)
    step = _exchange_step(LinkFreeCollect, exchange_config(root, db_url, exchange), assignment)
    step.update = update
    log = _run(step, f"collecting {assignment}")
    return Collected(assignment, sorted(step.collected), step.left_out,
                     [w for w in _warnings(log) if "left out of" not in w])


def collect_zip(root: Path, db_url: str, assignment: str, archives: list[Path],
                file_names: str | None = None, force: bool = False) -> Collected:
    """Collect the files an LMS gives for download (zips or loose files) into submitted/.

    nbgrader's zip_collect does the work: ``archives`` are copied into
    ``downloaded/<assignment>/archive/`` and extracted, and each file's name is read with
    ``file_names`` (a regular expression with ``student_id`` and ``file_id`` groups, matched
    against the extracted file's path), else nbgrader_config.py's
    ``FileNameCollectorPlugin.named_regexp``, else Canvas's naming. A resubmission's counter
    (``problem1-1.ipynb``) is read past (graders.lms_names). Files whose notebook name is not
    one of the release's are skipped and reported.
    """
    from nbgrader.apps import ZipCollectApp

    config = course_config(root, db_url)
    config.FileNameCollectorPlugin.named_regexp = file_names or configured(
        config, "FileNameCollectorPlugin.named_regexp", default="") or CANVAS_FILE_NAMES
    config.ZipCollectApp.strict = True
    config.ZipCollectApp.force = force
    release = root / "release" / assignment
    if not release.is_dir():
        from .release import generate_release

        generate_release(root, root / "release", [assignment], db_url=db_url)
    if configured(config, "ZipCollectApp.collector_plugin") is None:
        from .lms_names import LmsFileNames

        config.ZipCollectApp.collector_plugin = LmsFileNames
        config.LmsFileNames.release_files = sorted(
            str(path.relative_to(release)) for path in release.rglob("*") if path.is_file())
    inbox = root / "downloaded" / assignment / "archive"
    inbox.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        if not archive.is_file():
            raise ExchangeError(f"{archive} is not a file",
                                "Give the zip (or the files) the LMS let you download.")
        shutil.copy(archive, inbox / archive.name)
    app = ZipCollectApp(config=config)
    app.coursedir = _coursedir(config, assignment)
    before = _submitted(root, assignment)
    log = _run(app, f"collecting the downloads of {assignment}")
    after = _submitted(root, assignment)
    return Collected(assignment, sorted(s for s, stamp in after.items()
                                        if before.get(s) != stamp),
                     warnings=_warnings(log))


def _submitted(root: Path, assignment: str) -> dict[str, float]:
    """Each student with a submitted folder for ``assignment``, with its last change time."""
    folders = (root / "submitted").glob(f"*/{assignment}")
    return {folder.parent.name: max((p.stat().st_mtime_ns for p in folder.rglob("*")),
                                    default=0) for folder in folders if folder.is_dir()}


def release_feedback(root: Path, db_url: str, assignment: str, exchange: Path | None = None,
                     students: list[str] | None = None) -> FeedbackReleased:
    """Put the feedback pages of ``feedback/<student>/<assignment>/`` into the exchange.

    nbgrader files each page under a hash of the submission's secret, which students' fetch
    recomputes from their own copy; the secret and time stamp travel with the page from the
    collected submission (read without following links). A submission that did not come
    through the exchange has no secret, so its page stays where it is.
    """
    from .feedback import generate_feedback

    config = exchange_config(root, db_url, exchange)
    released = FeedbackReleased(assignment)
    for folder in sorted((root / "submitted").glob(f"*/{assignment}")):
        student = folder.parent.name
        if students and student not in students:
            continue
        pages = root / "feedback" / student / assignment
        if not any(pages.glob("*.html")) and generate_feedback(root, db_url, assignment,
                                                               student) is None:
            released.skipped[student] = "no feedback: is the submission graded?"
            continue
        missing = [name for name in SUBMISSION_RECORDS if not (folder / name).is_file()
                   or (folder / name).is_symlink()]
        if missing:
            released.skipped[student] = (f"no {' or '.join(missing)}: not submitted through "
                                         "the exchange")
            continue
        for name in SUBMISSION_RECORDS:
            (pages / name).write_bytes(read_no_link(folder / name))
        _run(_exchange_step(ExchangeReleaseFeedback, config, assignment, student),
             f"releasing {student}'s feedback on {assignment}")
        released.students.append(student)
    return released

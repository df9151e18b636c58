"""One root exception for the course tooling, with a subclass per failure a user can act on.

Every error carries a ``remedy`` so the CLI can print one ERROR line and what to do next, and
every error pickles, because it may travel back from a worker process.
"""

from __future__ import annotations


class CourseError(Exception):
    """Base class: a failure the user can understand and act on."""

    remedy: str = ""

    def __init__(self, message: str, remedy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if remedy is not None:
            self.remedy = remedy

    def __reduce__(self):
        return (type(self), (self.message, self.remedy))

    def __str__(self) -> str:
        return self.message


class DaemonUnavailable(CourseError):
    """No Docker daemon answers, and none could be started."""

    remedy = ("Start Docker (Docker Desktop, or `sudo dockerd`), or set DOCKER_HOST, "
              "then run `course doctor`.")


class ImageUnavailable(CourseError):
    """A course image is missing and could neither be pulled nor built."""

    remedy = "Run `course images` on a machine with Debian packages or internet access."


class NotebookInvalid(CourseError):
    """A notebook file cannot be read or does not follow the course's conventions."""

    remedy = ("Open the notebook in JupyterLab and check that it saves; "
              "compare it with its release version.")


class ReleaseError(CourseError):
    """Generating the release or self-paced edition failed."""

    remedy = "Fix the source notebook named above, then run `course release` again."


class GradingError(CourseError):
    """The grading run itself could not proceed (not one submission's fault)."""

    remedy = "Run `course doctor`; the gradebook and submissions are untouched."


class ConfigInvalid(CourseError):
    """The course folder's nbgrader_config.py cannot be loaded."""

    remedy = "Fix nbgrader_config.py (nbgrader itself would stop on it too), then run again."


class ExchangeError(CourseError):
    """A step of the classroom loop (release, collect, feedback) could not be done."""

    remedy = ("Check Exchange.root in nbgrader_config.py (or --exchange): the folder must "
              "exist and be writable by the instructor, as nbgrader's exchange requires.")

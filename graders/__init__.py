"""A Docker course in Jupyter notebooks, graded automatically: the tooling behind `course`."""

from .errors import (
    CourseError,
    DaemonUnavailable,
    GradingError,
    ImageUnavailable,
    NotebookInvalid,
    ReleaseError,
)
from .namespace import Namespace

__all__ = [
    "CourseError",
    "DaemonUnavailable",
    "GradingError",
    "ImageUnavailable",
    "Namespace",
    "NotebookInvalid",
    "ReleaseError",
]
__version__ = "0.1.0"

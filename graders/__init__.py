"""A Docker course in Jupyter notebooks, graded automatically: the tooling behind `course`."""

import sys

from .errors import (
    CourseError,
    DaemonUnavailable,
    GradingError,
    ImageUnavailable,
    NotebookInvalid,
    ReleaseError,
)
from .namespace import Namespace

# jsonschema loads the optional rfc3987_syntax (Jupyter installs it) for an "iri" format check
# that no notebook or gradebook schema uses; it compiles a grammar on import, about a second of
# CPU in every grading process. Marked absent, jsonschema skips that one check.
sys.modules.setdefault("rfc3987_syntax", None)

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

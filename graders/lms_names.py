"""Reading the names an LMS gives downloaded submissions, resubmissions included.

Canvas names a file handed in again with ``-1``, ``-2``... before its extension
(``alice_1001_5002_problem1-1.ipynb``); nbgrader's file-name collector takes that for a file the
release does not have and skips it, so the student's latest work would not be graded.
"""

from __future__ import annotations

import re

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import List, Unicode

#: The counter an LMS puts before the extension of a file handed in again.
RESUBMITTED = re.compile(r"-\d+(\.[^./]+)$")


class LmsFileNames(FileNameCollectorPlugin):
    """nbgrader's collector, where a name the release lacks counts as the release's file once
    a resubmission counter goes: ``problem1-1.ipynb`` is ``problem1.ipynb`` unless the release
    itself has a ``problem1-1.ipynb``."""

    release_files = List(Unicode(), help="The release's files, relative to its folder.").tag(
        config=True)

    def collect(self, submitted_file: str) -> dict | None:
        found = super().collect(submitted_file)
        if found and found["file_id"] not in self.release_files:
            unnumbered = RESUBMITTED.sub(r"\1", found["file_id"])
            if unnumbered in self.release_files:
                found["file_id"] = unnumbered
        return found

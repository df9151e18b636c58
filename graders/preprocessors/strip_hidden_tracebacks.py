"""Keeping hidden tests out of feedback tracebacks.

ClearHiddenTests removes the hidden lines from a test cell's source, but a failing test's
traceback quotes the lines around the failure, hidden ones included. For cells with hidden tests
only the error's name and message stay, which is what the student needs to act on.
"""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade
from traitlets import Unicode


class StripHiddenTracebacks(NbGraderPreprocessor):
    """Reduce each error in a cell with hidden tests to ``ename: evalue``."""

    begin_hidden = Unicode("### BEGIN HIDDEN TESTS",
                           help="The marker that opens hidden tests.").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and is_grade(cell) and self.begin_hidden in cell.source:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: "
                                           f"{output.get('evalue', '')}"]
        return cell, resources

"""Putting back grade and locked cells a student deleted, so they run and score honestly."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

#: Notebook metadata key under which the course records what grading did to a submission.
METADATA_KEY = "docker_course"


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _is_protected(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade") or meta.get("locked"))


class RestoreDeletedCells(NbGraderPreprocessor):
    """Re-insert, with their released source, the protected cells missing from a submission.

    nbgrader's own ``add_missing_cells`` re-adds a missing test as a commented-out cell, which
    produces no output and so scores full marks. Here the released cell goes back where it was
    (after the nearest surviving predecessor) and OverwriteCells then restores its real source,
    hidden tests included, so deleting a test gains nothing.
    """

    release_folder = Unicode(
        "", help="The released assignment the submission was made from: each notebook is "
                 "restored from the released notebook of the same name there."
    ).tag(config=True)

    def preprocess(self, nb, resources):
        notebook = resources.get("nbgrader", {}).get("notebook", "")
        release = Path(self.release_folder) / f"{notebook}.ipynb"
        if not self.release_folder or not notebook or not release.exists():
            return nb, resources
        released = nbformat.read(str(release), as_version=4).cells
        present = {_grade_id(cell) for cell in nb.cells} - {None}
        position, restored = 0, []
        for cell in released:
            grade_id = _grade_id(cell)
            if grade_id in present:
                position = next(i for i, c in enumerate(nb.cells) if _grade_id(c) == grade_id) + 1
            elif grade_id and _is_protected(cell):
                nb.cells.insert(position, cell)
                present.add(grade_id)
                restored.append(grade_id)
                position += 1
        if restored:
            self.log.warning("Restored deleted cells: %s", ", ".join(restored))
            nb.metadata.setdefault(METADATA_KEY, {})["restored_cells"] = restored
        return nb, resources

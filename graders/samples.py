"""The bundled sample submissions the demo grades, made from an assignment's two editions.

Each sample is what a kind of student hands in (a perfect one, a partial one, the untouched
release, one that hangs, one whose kernel crashes, one with its tests deleted, one that is not
JSON), together with the score and status grading must give it. The expectations follow from the
points in the notebook and the convention that ``<item>-tests`` checks ``<item>-solution``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .outcome import Status
from .settings import PARAMETERS_GRADE_ID

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


@dataclass(frozen=True)
class Sample:
    student: str
    content: nbformat.NotebookNode | str
    score: float
    status: Status


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _item(grade_id: str) -> str:
    return grade_id.rsplit("-", 1)[0]


def _answer(source_cell) -> str:
    """A reference solution as a student would type it: without the solution markers."""
    return "\n".join(line for line in source_cell.source.splitlines()
                     if line.strip() not in SOLUTION_MARKERS)


def _copy(nb) -> nbformat.NotebookNode:
    return nbformat.from_dict(json.loads(json.dumps(nb)))


class SampleMaker:
    """Builds samples for one assignment from its source (solved) and release notebooks."""

    def __init__(self, source: nbformat.NotebookNode, release: nbformat.NotebookNode) -> None:
        self.source = source
        self.release = release
        self.answers = {_nbgrader(c)["grade_id"]: _answer(c) for c in source.cells
                        if _nbgrader(c).get("solution")}
        self.tests = [(_nbgrader(c)["grade_id"], float(_nbgrader(c).get("points", 0)))
                      for c in release.cells if _nbgrader(c).get("grade")]
        self.items = [_item(grade_id) for grade_id in self.answers]

    def solved(self, items: set[str]) -> nbformat.NotebookNode:
        nb = _copy(self.release)
        for cell in nb.cells:
            grade_id = _nbgrader(cell).get("grade_id", "")
            if _nbgrader(cell).get("solution") and _item(grade_id) in items:
                cell.source = self.answers[grade_id]
        return nb

    def points(self, items: set[str]) -> float:
        return sum(points for grade_id, points in self.tests if _item(grade_id) in items)

    def _replace_solution(self, item: str, source: str) -> nbformat.NotebookNode:
        nb = self.solved(set(self.items))
        for cell in nb.cells:
            if _nbgrader(cell).get("grade_id") == f"{item}-solution":
                cell.source = source
        return nb

    def _tests_before(self, item: str) -> set[str]:
        return set(self.items[: self.items.index(item)])

    def samples(self) -> list[Sample]:
        everything = set(self.items)
        partial = set(self.items[::2])
        hung, crashed = self.items[-1], self.items[len(self.items) // 2]
        perfect = self.solved(everything)
        no_tests = _copy(perfect)
        no_tests.cells = [c for c in no_tests.cells if not _nbgrader(c).get("grade")]
        return [
            Sample("perfect", perfect, self.points(everything), Status.GRADED),
            Sample("partial", self.solved(partial), self.points(partial), Status.GRADED),
            Sample("untouched", _copy(self.release), 0.0, Status.GRADED),
            Sample("hangs", self._replace_solution(
                hung, "import time\n\nwhile True:  # never returns\n    time.sleep(1)"),
                self.points(everything - {hung}), Status.TIMED_OUT),
            Sample("crashes", self._replace_solution(
                crashed, "import os\n\nos._exit(1)  # the kernel process ends here"),
                self.points(self._tests_before(crashed)), Status.KERNEL_DIED),
            Sample("deleted-tests", no_tests, self.points(everything), Status.GRADED),
            Sample("not-json", nbformat.writes(perfect)[:300], 0.0, Status.INVALID),
        ]


def run_twice(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` as handed in by a learner who ran every cell after the settings twice in one kernel.

    The first pass is plain copies (no nbgrader metadata: none of it is graded), the second the
    cells themselves, so grading it tells whether a second run trips over what the first one
    left. The settings cell comes once, before both: the grader injects its values after it.
    """
    nb = _copy(nb)
    start = 1 + next(index for index, cell in enumerate(nb.cells)
                     if _nbgrader(cell).get("grade_id") == PARAMETERS_GRADE_ID)
    first_pass = []
    for cell in nb.cells[start:]:
        if cell.cell_type == "code":
            copy = _copy(cell)
            copy.metadata.pop("nbgrader", None)
            copy.id = f"first-{cell.id}"
            first_pass.append(copy)
    nb.cells[start:start] = first_pass
    return nb


def write_samples(source_path: Path, release_path: Path, out: Path) -> dict[str, dict]:
    """Write ``out/<student>/<assignment>/<assignment>.ipynb`` and ``out/expected.json``."""
    assignment = source_path.stem
    maker = SampleMaker(nbformat.read(str(source_path), as_version=4),
                        nbformat.read(str(release_path), as_version=4))
    expected = {}
    for sample in maker.samples():
        path = out / sample.student / assignment / f"{assignment}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(sample.content, str):
            path.write_text(sample.content)
        else:
            nbformat.write(sample.content, str(path))
        expected[sample.student] = {"score": sample.score, "status": sample.status.value}
    (out / "expected.json").write_text(json.dumps({assignment: expected}, indent=2) + "\n")
    return expected

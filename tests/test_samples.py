"""Sample submissions made from a notebook's editions: pure notebook logic, no Docker."""

from __future__ import annotations

import nbformat
import pytest
from conftest import ROOT

from graders.release import source_assignments
from graders.samples import run_twice
from graders.settings import PARAMETERS_GRADE_ID


def _grade_id(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


@pytest.mark.parametrize("assignment", source_assignments(ROOT)[:3])
def test_run_twice_repeats_every_code_cell_after_the_settings_ungraded(assignment):
    release = nbformat.read(str(ROOT / "release" / assignment / f"{assignment}.ipynb"), 4)
    twice = run_twice(release)
    nbformat.validate(twice)
    settings = [_grade_id(c) for c in release.cells].index(PARAMETERS_GRADE_ID)
    after = [c for c in release.cells[settings + 1:] if c.cell_type == "code"]
    first_pass = twice.cells[settings + 1: settings + 1 + len(after)]
    assert [c.source for c in first_pass] == [c.source for c in after]
    assert not any("nbgrader" in c.metadata for c in first_pass)
    assert twice.cells[: settings + 1] == release.cells[: settings + 1]
    assert twice.cells[settings + 1 + len(after):] == release.cells[settings + 1:]
    ids = [c.id for c in twice.cells]
    assert len(ids) == len(set(ids))
    assert [_grade_id(c) for c in twice.cells if _grade_id(c)] == \
        [_grade_id(c) for c in release.cells if _grade_id(c)]

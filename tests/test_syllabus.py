"""The fast checks of `course validate` on every source notebook: outputs cleared, nbgrader
metadata sound, every syllabus item covered by a graded exercise that makes its call."""

from __future__ import annotations

import pytest
from conftest import ROOT

from graders import manifest
from graders.release import source_assignments
from graders.validate import check_metadata, check_outputs_cleared, check_syllabus

ASSIGNMENTS = source_assignments(ROOT)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_item_has_a_graded_exercise_that_makes_its_call(assignment):
    problems = check_syllabus(ROOT, assignment)
    assert not problems, "\n".join(map(str, problems))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_metadata_and_outputs(assignment):
    problems = check_metadata(ROOT, assignment) + check_outputs_cleared(ROOT, assignment)
    assert not problems, "\n".join(map(str, problems))


def test_manifest_lists_every_item_once_per_course():
    ids = [(nb.id, item.id) for nb in manifest.load() for item in nb.items]
    assert len(ids) == len(set(ids))

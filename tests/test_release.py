"""The generated editions: fresh in the repository, and shaped right for each audience."""

from __future__ import annotations

import json

import nbformat
import pytest
from conftest import ROOT

from graders import manifest
from graders.errors import ReleaseError
from graders.release import (
    SELF_CHECK_PASSED,
    SELF_CHECK_TAG,
    _differences,
    readme_with_table,
    self_paced,
    source_assignments,
    stale_files,
    start_page,
)

HIDDEN = "### BEGIN HIDDEN TESTS"
SOLUTION = "### BEGIN SOLUTION"


@pytest.mark.slow
def test_committed_generated_files_are_fresh():
    assert stale_files(ROOT) == [], "run `course release` and commit the result"


@pytest.mark.parametrize("assignment", source_assignments(ROOT))
def test_release_has_no_solutions_and_no_hidden_tests(assignment):
    text = (ROOT / "release" / assignment / f"{assignment}.ipynb").read_text()
    assert HIDDEN not in text and SOLUTION not in text
    nb = nbformat.reads(text, as_version=4)
    assert all("checksum" in c.metadata["nbgrader"] for c in nb.cells
               if c.metadata.get("nbgrader", {}).get("grade"))


@pytest.mark.parametrize("assignment", source_assignments(ROOT))
def test_self_paced_edition_drops_grading_bookkeeping_and_tags_self_checks(assignment):
    released = nbformat.read(str(ROOT / "release" / assignment / f"{assignment}.ipynb"), 4)
    edition = self_paced(released)
    assert all("nbgrader" not in c.metadata for c in edition.cells)
    graded = [c for c in released.cells if c.metadata.get("nbgrader", {}).get("grade")
              and c.cell_type == "code"]
    tagged = [c for c in edition.cells if SELF_CHECK_TAG in c.metadata.get("tags", [])]
    assert len(tagged) == len(graded) > 0
    assert all(c.source.rstrip().endswith('.")') and SELF_CHECK_PASSED in c.source
               for c in tagged)
    assert [c.id for c in edition.cells] == [c.id for c in released.cells]


def test_start_page_links_available_notebooks_in_manifest_order():
    page = start_page(["02-containers"])
    contents = page.cells[1].source
    assert "(02-containers.ipynb)" in contents
    assert "(01-setup.ipynb)" not in contents and "in preparation" in contents
    titles = [nb.title for nb in manifest.load()]
    positions = [contents.index(t) for t in titles]
    assert positions == sorted(positions)


def test_differences_reports_changed_missing_and_extra_files(tmp_path):
    fresh, committed = tmp_path / "fresh", tmp_path / "committed"
    for root in (fresh, committed):
        (root / "release").mkdir(parents=True)
        (root / "release" / "same.txt").write_text("x")
    (fresh / "release" / "changed.txt").write_text("new")
    (committed / "release" / "changed.txt").write_text("old")
    (fresh / "release" / "new.txt").write_text("n")
    (committed / "release" / "gone.txt").write_text("g")
    assert _differences(fresh, committed, ("release",)) == [
        "release/changed.txt (out of date)",
        "release/gone.txt (no longer generated)",
        "release/new.txt (missing)",
    ]


def test_readme_table_needs_its_markers():
    with pytest.raises(ReleaseError):
        readme_with_table("# no markers here", [])


def test_source_notebooks_are_clean_and_have_stable_ids():
    for path in (ROOT / "source").glob("*/*.ipynb"):
        nb = json.loads(path.read_text())
        ids = [c.get("id") for c in nb["cells"]]
        assert all(ids) and len(set(ids)) == len(ids), f"{path}: cell ids missing or repeated"
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell["outputs"] and cell["execution_count"] is None, \
                    f"{path}: cell {cell['id']} has outputs; clear them"


def test_nbgrader_finds_alembic_without_an_activated_environment(tmp_path, monkeypatch):
    """Creating the release's gradebook needs no `alembic` on PATH (none of the venv here)."""
    import builders as b

    from graders.release import generate_release

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    root = b.course_folder(tmp_path, b.mini_source())
    generate_release(root, root / "release", assignments=[b.MINI], db_url=f"sqlite:///{tmp_path}/g.db")
    assert (root / "release" / b.MINI / f"{b.MINI}.ipynb").exists()
    assert (tmp_path / "g.db").stat().st_size > 0


def test_a_new_gradebook_is_stamped_with_nbgraders_schema_version_in_process(tmp_path,
                                                                              monkeypatch):
    """The version nbgrader would ask an `alembic heads` subprocess for, without the subprocess."""
    import sqlite3

    import nbgrader.api
    from nbgrader.api import Gradebook

    from graders.nbgrader_env import stamp_new_gradebook, tools_on_path

    with tools_on_path():
        expected = nbgrader.api.get_alembic_version()

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"nbgrader ran a subprocess: {args}")

    monkeypatch.setattr(nbgrader.api.sp, "check_output", no_subprocess)
    url = f"sqlite:///{tmp_path}/gradebook.db"
    stamp_new_gradebook(url)
    with Gradebook(url) as gradebook:
        gradebook.add_student("learner")
    stamp_new_gradebook(url)  # an existing gradebook is left as it is
    with sqlite3.connect(tmp_path / "gradebook.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(expected,)]
        assert db.execute("SELECT id FROM student").fetchall() == [("learner",)]

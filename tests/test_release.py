"""The generated editions: fresh in the repository, and shaped right for each audience."""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from conftest import ROOT

from graders import manifest
from graders.errors import ReleaseError
from graders.release import (
    SELF_CHECK_PASSED,
    SELF_CHECK_TAG,
    _differences,
    copy_support_files,
    readme_with_table,
    released_text,
    self_paced,
    solved_text,
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
    page = start_page({"02-containers": 95})
    contents = page.cells[1].source
    assert "(02-containers.ipynb), about 1 h 35 min" in contents
    assert "(01-setup.ipynb)" not in contents and "in preparation" in contents
    titles = [nb.title for nb in manifest.load()]
    positions = [contents.index(t) for t in titles]
    assert positions == sorted(positions)


def test_start_page_states_prerequisites_and_suggested_paths_with_their_time():
    minutes = {nb.id: 60 for nb in manifest.load()}
    page = start_page(minutes)
    assert "What you need first" in page.cells[0].source
    routes = page.cells[2].source.splitlines()[2:]
    paths = manifest.paths()
    assert len(routes) == len(paths) >= 2
    for route, path in zip(routes, paths, strict=True):
        assert route.startswith(f"- **{path.title}** (about {len(path.notebooks)} h)")
        assert [link for link in re.findall(r"\]\(([^)]+)\.ipynb\)", route)] == list(
            path.notebooks)
    assert len(paths[0].notebooks) < len(paths[-1].notebooks) == len(manifest.load())


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


LEARNER_FILE = """ARG BASE_IMAGE
FROM $BASE_IMAGE
# Complete the image below this line.
### BEGIN SOLUTION
LABEL title="solved"
### END SOLUTION
  ### BEGIN SOLUTION
CMD ["true"]
  ### END SOLUTION
"""


def test_a_learner_file_is_released_without_its_solutions_and_handed_in_without_markers():
    assert released_text(LEARNER_FILE) == \
        "ARG BASE_IMAGE\nFROM $BASE_IMAGE\n# Complete the image below this line.\n"
    assert solved_text(LEARNER_FILE) == ("ARG BASE_IMAGE\nFROM $BASE_IMAGE\n# Complete the image "
                                         'below this line.\nLABEL title="solved"\nCMD ["true"]\n')


@pytest.mark.parametrize("text, named", [
    ("### BEGIN SOLUTION\nx\n", "line 1: ### BEGIN SOLUTION is never closed"),
    ("x\n### END SOLUTION\n", "line 2: ### END SOLUTION without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "line 2: ### BEGIN SOLUTION "
     "inside a solution region opened on line 1"),
])
def test_unbalanced_solution_markers_are_refused_with_their_line(text, named):
    with pytest.raises(ReleaseError, match=named):
        released_text(text, "context/Dockerfile")


def test_the_release_hands_out_learner_files_unsolved(tmp_path, monkeypatch):
    """nbgrader copies an assignment's other files as they are; generate_release then strips
    the solutions of the learner files, and refuses a learner file that is not there."""
    import builders as b

    from graders.release import generate_release

    root = b.course_folder(tmp_path, b.mini_source())
    folder = root / "source" / b.MINI
    (folder / "context").mkdir()
    (folder / "context" / "Dockerfile").write_text(LEARNER_FILE)
    (folder / "context" / "motd.txt").write_text("as it is\n")
    monkeypatch.setattr(manifest, "learner_files",
                        lambda assignment: ("context/Dockerfile",) if assignment == b.MINI else ())
    generate_release(root, root / "release", assignments=[b.MINI])
    released = root / "release" / b.MINI / "context"
    assert (released / "Dockerfile").read_text() == released_text(LEARNER_FILE)
    assert (released / "motd.txt").read_text() == "as it is\n"

    (folder / "context" / "Dockerfile").unlink()
    with pytest.raises(ReleaseError, match="lists the learner file context/Dockerfile"):
        generate_release(root, root / "release", assignments=[b.MINI])


@pytest.mark.parametrize("assignment", [a for a in source_assignments(ROOT)
                                        if manifest.learner_files(a)])
def test_committed_learner_files_are_released_unsolved_and_beside_the_self_paced_notebook(
        assignment):
    for relative in manifest.learner_files(assignment):
        source = (ROOT / "source" / assignment / relative).read_text()
        assert SOLUTION in source, f"source/{assignment}/{relative} has no solution to strip"
        released = (ROOT / "release" / assignment / relative).read_text()
        assert released == released_text(source) and SOLUTION not in released
        assert (ROOT / "notebooks" / relative).read_text() == released


def test_two_assignments_may_not_put_the_same_file_beside_the_self_paced_notebooks(tmp_path):
    beside: dict[str, str] = {}
    for assignment in ("a1", "a2"):
        (tmp_path / assignment / "data").mkdir(parents=True)
        (tmp_path / assignment / "data" / "input.txt").write_text(assignment)
    copy_support_files(tmp_path / "a1", tmp_path / "notebooks", beside)
    assert (tmp_path / "notebooks" / "data" / "input.txt").read_text() == "a1"
    with pytest.raises(ReleaseError, match="a2 and a1 both have a file data/input.txt"):
        copy_support_files(tmp_path / "a2", tmp_path / "notebooks", beside)

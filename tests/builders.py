"""Builders for the small notebooks and course folders the tests grade."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

MINI = "mini"


def _nbgrader(grade_id: str, *, grade=False, solution=False, locked=False, points=0) -> dict:
    meta = {"grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id,
            "schema_version": 3}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def mini_source() -> nbformat.NotebookNode:
    """A two-exercise assignment that creates a labelled container in its namespace."""
    cells = [
        new_markdown_cell("# Mini assignment", id="title"),
        new_code_cell('NAMESPACE = "learner"\nBUSYBOX_IMAGE = "busybox:1.35.0"', id="parameters",
                      metadata={"tags": ["parameters"], **_nbgrader("parameters", locked=True)}),
        new_code_cell(
            "from graders.lab import quiet, connect, labels, reset\nquiet()\n"
            "client = connect()\nLABELS = labels(NAMESPACE)\nreset(client, NAMESPACE)",
            id="setup", metadata=_nbgrader("setup", locked=True)),
        new_code_cell(
            "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
            id="double-solution", metadata=_nbgrader("double-solution", solution=True)),
        new_code_cell(
            'assert double(2) == 4, "double(2) should be 4"\n'
            "### BEGIN HIDDEN TESTS\nassert double(21) == 42\n### END HIDDEN TESTS",
            id="double-tests", metadata=_nbgrader("double-tests", grade=True, locked=True,
                                                   points=1)),
        new_code_cell(
            "def start(client, image, name, labels):\n    ### BEGIN SOLUTION\n"
            "    return client.containers.run(image, ['sleep', '300'], name=name, labels=labels,"
            " detach=True)\n    ### END SOLUTION",
            id="start-solution", metadata=_nbgrader("start-solution", solution=True)),
        new_code_cell(
            'c = start(client, BUSYBOX_IMAGE, f"{NAMESPACE}-sleeper", LABELS)\n'
            "c.reload()\n"
            'assert c.status == "running", "the container should be running"\n'
            "### BEGIN HIDDEN TESTS\n"
            'assert c.exec_run("true").exit_code == 0\n'
            "### END HIDDEN TESTS",
            id="start-tests", metadata=_nbgrader("start-tests", grade=True, locked=True,
                                                  points=2)),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def course_folder(root: Path, source_nb: nbformat.NotebookNode, assignment: str = MINI) -> Path:
    """A course folder with ``source/<assignment>/<assignment>.ipynb``."""
    write(source_nb, root / "source" / assignment / f"{assignment}.ipynb")
    return root


def submit(root: Path, student: str, nb_or_text, assignment: str = MINI) -> Path:
    """Place a submission (a notebook, or raw text for a broken file) for ``student``."""
    path = root / "submitted" / student / assignment / f"{assignment}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(nb_or_text, str):
        path.write_text(nb_or_text)
    else:
        nbformat.write(nb_or_text, str(path))
    return path


def released(root: Path, assignment: str = MINI) -> nbformat.NotebookNode:
    return nbformat.read(str(root / "release" / assignment / f"{assignment}.ipynb"), as_version=4)


def solved(root: Path, assignment: str = MINI) -> nbformat.NotebookNode:
    """The source notebook, which is what a perfect student would hand in."""
    return nbformat.read(str(root / "source" / assignment / f"{assignment}.ipynb"), as_version=4)


def with_cell_source(nb, cell_id: str, source: str) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if cell.get("id") == cell_id:
            cell.source = source
    return nb


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def read_autograded(root: Path, student: str, assignment: str = MINI) -> nbformat.NotebookNode:
    path = root / "autograded" / student / assignment / f"{assignment}.ipynb"
    return nbformat.read(str(path), as_version=4)

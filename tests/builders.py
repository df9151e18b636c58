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


def exercises_only(nb, exercises: set[str] | None = None) -> nbformat.NotebookNode:
    """A course notebook without its worked examples, and kept to ``exercises`` when given.

    For tests where the examples are not what is tested: each costs seconds of container
    starts and builds per copy graded. The settings, set-up and clean-up cells stay, and an
    exercise keeps its solution and its tests (cells ``<exercise>-solution``/``-tests``).
    """
    def kept(cell) -> bool:
        exercise, _, role = cell.get("id", "").rpartition("-")
        if cell.cell_type != "code" or role not in ("example", "solution", "tests"):
            return True
        return role != "example" and (exercises is None or exercise in exercises)

    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells = [cell for cell in nb.cells if kept(cell)]
    return nb


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def read_autograded(root: Path, student: str, assignment: str = MINI) -> nbformat.NotebookNode:
    path = root / "autograded" / student / assignment / f"{assignment}.ipynb"
    return nbformat.read(str(path), as_version=4)


def cell_errors(root: Path, student: str, assignment: str = MINI) -> dict[str, str]:
    """The error each cell of an autograded notebook ended with, by cell id: what an assertion
    shows so that a score below the maximum says which check failed and why."""
    errors = {}
    for cell in read_autograded(root, student, assignment).cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors[cell.get("id")] = f"{output.ename}: {output.evalue}"[-400:]
    return errors


SANDBOX = "sandbox"


def sandbox_source() -> nbformat.NotebookNode:
    """Three honest exercises that each leave a labelled object on the daemon and check it:
    a running container (2 points), a volume a container writes to (2), and a port published
    on a host port the daemon chooses (1)."""
    nb = mini_source()
    keep = ("title", "parameters", "setup", "start-solution", "start-tests")
    nb.cells = [c for c in nb.cells if c.id in keep]
    nb.cells += [
        new_code_cell(
            "def make_volume(client, name, labels):\n    ### BEGIN SOLUTION\n"
            "    return client.volumes.create(name, labels=labels)\n    ### END SOLUTION",
            id="volume-solution", metadata=_nbgrader("volume-solution", solution=True)),
        new_code_cell(
            'v = make_volume(client, f"{NAMESPACE}-data", LABELS)\n'
            'assert v is not None, "make_volume should return the volume"\n'
            "written = client.containers.run(\n"
            "    BUSYBOX_IMAGE, ['sh', '-c', 'echo kept > /data/f && cat /data/f'],\n"
            "    volumes={v.name: {'bind': '/data'}}, labels=LABELS, remove=True)\n"
            'assert written == b"kept\\n", written\n'
            "### BEGIN HIDDEN TESTS\n"
            "assert client.volumes.get(v.name).attrs['Labels'] == LABELS\n"
            "### END HIDDEN TESTS",
            id="volume-tests", metadata=_nbgrader("volume-tests", grade=True, locked=True,
                                                  points=2)),
        new_code_cell(
            "def publish(client, image, name, labels):\n    ### BEGIN SOLUTION\n"
            "    return client.containers.run(image, ['sleep', '300'], name=name, labels=labels,\n"
            "                                 ports={'8080/tcp': ('127.0.0.1', None)},"
            " detach=True)\n    ### END SOLUTION",
            id="publish-solution", metadata=_nbgrader("publish-solution", solution=True)),
        new_code_cell(
            'p = publish(client, BUSYBOX_IMAGE, f"{NAMESPACE}-web", LABELS)\n'
            "p.reload()\n"
            "bound = p.ports['8080/tcp'][0]\n"
            'assert bound["HostIp"] == "127.0.0.1" and int(bound["HostPort"]) > 0, bound',
            id="publish-tests", metadata=_nbgrader("publish-tests", grade=True, locked=True,
                                                   points=1)),
    ]
    return nb


def with_added_cell(nb, source: str, cell_id: str = "added") -> nbformat.NotebookNode:
    """The notebook with a plain code cell a student appended at the end."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.cells.append(new_code_cell(source, id=cell_id))
    return nb


def cell_text(nb: nbformat.NotebookNode, cell_id: str) -> str:
    """Everything a cell showed: its streams, results and errors, as one text."""
    parts = []
    for cell in nb.cells:
        if cell.get("id") != cell_id:
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif output.get("output_type") == "error":
                parts.append(f"{output.get('ename')}: {output.get('evalue')}")
            elif "data" in output:
                parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)

"""Running a source notebook twice in one kernel, as a learner re-running every cell does.

A module of its own so that a process pool can import it: the runs are independent and mostly
wait on the daemon, so several go at once, each in its own namespace.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from papermill.parameterize import parameterize_notebook

from graders.namespace import Namespace


def run_twice(root: Path, assignment: str) -> dict[str, list]:
    """Every cell of the solution twice in one kernel; the errors and stderr cells it produced."""
    nb = nbformat.read(str(root / "source" / assignment / f"{assignment}.ipynb"), 4)
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
    nb.metadata.setdefault("papermill", {})
    # Its own namespace, injected after the parameters cell, so that runs can go side by side.
    namespace = Namespace.for_submission(assignment, "two-passes", salt=str(root)).value
    nb = parameterize_notebook(nb, {"NAMESPACE": namespace})
    twice = nbformat.v4.new_notebook(metadata=nb.metadata)
    for round_ in ("first", "second"):
        for cell in nb.cells:
            copy = nbformat.from_dict(dict(cell))
            copy["id"] = f"{round_}-{cell.id}"
            twice.cells.append(copy)
    client = NotebookClient(twice, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(root / "source" / assignment)}})
    try:
        client.execute()
    except Exception as error:  # reported as text: nbclient's errors do not cross processes
        return {"errors": [f"{type(error).__name__}: {str(error)[-2000:]}"], "stderr": []}
    code = [c for c in twice.cells if c.cell_type == "code"]
    return {"errors": [(c.id, o.get("ename")) for c in code for o in c.outputs
                       if o.output_type == "error"],
            "stderr": [c.id for c in code for o in c.outputs if o.get("name") == "stderr"]}

"""How long a notebook takes a learner, estimated from the notebook itself, so the start page's
times follow the notebooks as they change rather than a number someone once wrote down."""

from __future__ import annotations

import re

import nbformat

#: Reading speed for technical prose with code in it.
WORDS_PER_MINUTE = 150
#: Time to write, run and fix one graded exercise.
MINUTES_PER_EXERCISE = 8


def exercises(nb: nbformat.NotebookNode) -> int:
    """The graded code cells: one per exercise."""
    return sum(1 for cell in nb.cells if cell.cell_type == "code"
               and cell.get("metadata", {}).get("nbgrader", {}).get("grade"))


def minutes(nb: nbformat.NotebookNode) -> int:
    """Reading time of the explanations plus time per exercise, to the nearest 5 minutes."""
    words = sum(len(re.findall(r"\w+", cell.source)) for cell in nb.cells
                if cell.cell_type == "markdown")
    estimate = words / WORDS_PER_MINUTE + MINUTES_PER_EXERCISE * exercises(nb)
    return max(5, 5 * round(estimate / 5))


def spoken(total: int) -> str:
    """Minutes as a person says them: "50 min", "1 h 35 min", "6 h"."""
    hours, rest = divmod(total, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h" + (f" {rest} min" if rest else "")

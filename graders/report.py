"""`course report`: one HTML page an instructor opens to see how a class did.

Plots are drawn with matplotlib and embedded as PNG, so the page is a single file that opens
offline: score distribution per notebook, pass rate per graded cell, and the most common
failure messages (the error's name and message only, never hidden test code).
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from .exports import failure_message


@dataclass
class AssignmentStats:
    assignment: str
    max_score: float
    scores: list[float] = field(default_factory=list)
    cells: dict[str, list[bool]] = field(default_factory=dict)
    failures: Counter = field(default_factory=Counter)


def collect(root: Path, db_url: str) -> list[AssignmentStats]:
    """Scores, per-cell passes and failure messages of every assignment in the gradebook."""
    stats = []
    with Gradebook(db_url) as gradebook:
        for assignment in sorted(gradebook.assignments, key=lambda a: a.name):
            entry = AssignmentStats(assignment.name, assignment.max_score)
            for submission in assignment.submissions:
                entry.scores.append(submission.score)
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        entry.cells.setdefault(grade.name, []).append(
                            grade.score == grade.max_score)
                entry.failures.update(_failures(root, assignment.name, submission.student.id))
            stats.append(entry)
    return stats


def _failures(root: Path, assignment: str, student: str) -> list[str]:
    messages = []
    for path in sorted((root / "autograded" / student / assignment).glob("*.ipynb")):
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
                message = failure_message(cell)
                if message:
                    grade_id = cell.metadata["nbgrader"]["grade_id"]
                    messages.append(f"{grade_id}: {message.splitlines()[0][:160]}")
    return messages


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _score_plot(entry: AssignmentStats) -> str:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 2.6))
    bins = max(1, int(entry.max_score)) + 1
    axes.hist(entry.scores, bins=bins, range=(-0.5, entry.max_score + 0.5), color="#3572a5")
    axes.set(xlabel="score", ylabel="submissions", title=f"{entry.assignment}: scores")
    return _png(figure)


def _pass_rate_plot(entry: AssignmentStats) -> str:
    import matplotlib.pyplot as plt

    names = list(entry.cells)
    rates = [100 * sum(passes) / len(passes) for passes in entry.cells.values()]
    figure, axes = plt.subplots(figsize=(5, 0.35 * len(names) + 1))
    axes.barh(names, rates, color="#4c9a2a")
    axes.invert_yaxis()
    axes.set(xlim=(0, 100), xlabel="% of submissions passing", title="pass rate per graded cell")
    return _png(figure)


def render(stats: list[AssignmentStats], title: str = "Grading report") -> str:
    """The report as one self-contained HTML page."""
    import matplotlib

    matplotlib.use("Agg")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
             ".plots img{margin-right:1em;vertical-align:top}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if not stats:
        parts.append("<p>The gradebook holds no assignments yet.</p>")
    for entry in stats:
        mean = sum(entry.scores) / len(entry.scores) if entry.scores else 0
        parts.append(f"<h2>{html.escape(entry.assignment)}</h2><p>{len(entry.scores)} "
                     f"submissions, mean {mean:.1f} of {entry.max_score:g}</p>")
        if entry.scores:
            parts.append(f"<div class='plots'><img alt='score distribution' "
                         f"src='data:image/png;base64,{_score_plot(entry)}'>"
                         f"<img alt='pass rate per cell' "
                         f"src='data:image/png;base64,{_pass_rate_plot(entry)}'></div>")
        parts.append("<h3>Most common failures</h3><table><tr><th>count</th><th>cell: error"
                     "</th></tr>")
        for message, count in entry.failures.most_common(10):
            parts.append(f"<tr><td>{count}</td><td>{html.escape(message)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def write_report(root: Path, db_url: str, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(collect(root, db_url)))
    return out

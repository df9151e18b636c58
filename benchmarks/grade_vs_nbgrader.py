"""Benchmark: `course grade` against stock `nbgrader autograde` on the same batch, in one run.

The batch mixes, for each notebook, a perfect, a partial, a blank and a hanging submission.
Stock nbgrader runs the plain way (its CLI, one process per assignment, submissions one after
the other, the same per-cell timeout); `course grade` runs with its worker pool. The script
prints both times, their ratio, checks that the scores are identical, and compares the
per-submission time of `course grade` with executing the same notebook with plain nbclient.
Last it grades the tampering suite (tests/tampering.py: the untouched release with each known
way of forging a verdict) with both, and prints side by side which forgeries each accepted.

    .venv/bin/python benchmarks/grade_vs_nbgrader.py --notebooks 02-containers 06-exec
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbgrader.api import Gradebook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tampering import FAMILIES, tampered  # noqa: E402

from graders.pool import default_extra_workers, default_workers  # noqa: E402
from graders.release import generate_release  # noqa: E402
from graders.samples import SampleMaker  # noqa: E402

BIN = Path(sys.executable).parent
HANG = "import time\n\nwhile True:\n    time.sleep(1)"


def make_batch(course: Path, notebooks: list[str], copies: int) -> None:
    """Source, release and submissions (perfect, partial, blank, hanging) for each notebook."""
    for notebook in notebooks:
        shutil.copytree(ROOT / "source" / notebook, course / "source" / notebook)
        generate_release(course, course / "release", assignments=[notebook])
        maker = SampleMaker(
            nbformat.read(str(course / "source" / notebook / f"{notebook}.ipynb"), 4),
            nbformat.read(str(course / "release" / notebook / f"{notebook}.ipynb"), 4))
        everything = set(maker.items)
        hanging = maker.solved(everything)
        for cell in hanging.cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == \
                    f"{maker.items[-1]}-solution":
                cell.source = HANG
        kinds = {"perfect": maker.solved(everything),
                 "partial": maker.solved(set(maker.items[::2])),
                 "blank": maker.release, "hanging": hanging}
        for copy in range(copies):
            for kind, nb in kinds.items():
                path = course / "submitted" / f"{kind}{copy}" / notebook / f"{notebook}.ipynb"
                path.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, str(path))


def make_tampering_batch(course: Path, notebook: str) -> None:
    """The untouched release of ``notebook``, and that release with each forgery."""
    shutil.copytree(ROOT / "source" / notebook, course / "source" / notebook)
    generate_release(course, course / "release", assignments=[notebook])
    release = nbformat.read(str(course / "release" / notebook / f"{notebook}.ipynb"), 4)
    editions = {"honest": release, **{family: tampered(release, family) for family in FAMILIES}}
    for student, nb in editions.items():
        path = course / "submitted" / student / notebook / f"{notebook}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))


def compare_tampering(root: Path, notebook: str, cell_timeout: int, workers: int | None) -> None:
    stock_dir, course_dir = root / "tamper-stock", root / "tamper-course"
    make_tampering_batch(stock_dir, notebook)
    shutil.copytree(stock_dir, course_dir)
    run_stock(stock_dir, [notebook], cell_timeout)
    run_course(course_dir, [notebook], cell_timeout, workers)
    stock, ours = scores(stock_dir), scores(course_dir)
    honest = (stock[(notebook, "honest")], ours[(notebook, "honest")])
    print(f"tampering, on the untouched release of {notebook} (honest score: stock "
          f"{honest[0]:g}, course grade {honest[1]:g}):")
    print(f"  {'forgery':20} {'stock nbgrader':>16} {'course grade':>16}")
    for family in FAMILIES:
        cells = []
        for found, base in ((stock, honest[0]), (ours, honest[1])):
            score = found.get((notebook, family))
            verdict = "ACCEPTED" if score is not None and score > base else "refused"
            cells.append(f"{score if score is not None else '-':>5} {verdict:>9}")
        print(f"  {family:20} {cells[0]:>16} {cells[1]:>16}")


def scores(course: Path) -> dict[tuple[str, str], float]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {(s.assignment.name, s.student.id): s.score
                for a in gradebook.assignments for s in a.submissions}


def run_stock(course: Path, notebooks: list[str], cell_timeout: int) -> float:
    # A bare environment, but the same daemon as `course grade`: DOCKER_HOST reaches the kernels.
    env = {"PATH": f"{BIN}:/usr/bin:/bin",
           **{k: v for k, v in os.environ.items() if k == "DOCKER_HOST"}}
    started = time.monotonic()
    for notebook in notebooks:
        subprocess.run([str(BIN / "nbgrader"), "generate_assignment", notebook, "--force",
                        "--log-level=ERROR"], cwd=course, check=True,
                       env=env)
        subprocess.run([str(BIN / "nbgrader"), "autograde", notebook, "--force",
                        f"--ExecutePreprocessor.timeout={cell_timeout}",
                        "--Execute.raise_on_iopub_timeout=False", "--log-level=ERROR"],
                       cwd=course, check=True, env=env)
    return time.monotonic() - started


def run_course(course: Path, notebooks: list[str], cell_timeout: int, workers: int | None
               ) -> float:
    """One `course grade` for all notebooks: they share one pool of warm workers."""
    started = time.monotonic()
    pool = ["--workers", str(workers)] if workers else []
    subprocess.run([str(BIN / "course"), "grade", *notebooks, "--course-dir", str(course),
                    "--force", "--no-feedback", "--cell-timeout", str(cell_timeout), *pool],
                   check=True, capture_output=True)
    return time.monotonic() - started


def worker_seconds(course: Path, notebook: str, repeats: int) -> float:
    """Median time one worker takes per perfect submission, alone on the machine."""
    for copy in range(repeats):
        source = course / "submitted" / "perfect0" / notebook / f"{notebook}.ipynb"
        target = course / "submitted" / f"alone{copy}" / notebook / f"{notebook}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    students = [arg for copy in range(repeats) for arg in ("--student", f"alone{copy}")]
    subprocess.run([str(BIN / "course"), "grade", notebook, "--course-dir", str(course),
                    "--force", "--no-feedback", "--workers", "1", *students], check=True,
                   capture_output=True)
    from graders.outcome import Outcome

    return statistics.median(Outcome.load(course / "grading" / notebook / f"alone{c}.json")
                             .wall_seconds for c in range(repeats))


def nbclient_seconds(notebook: str, repeats: int) -> float:
    """Median time to execute the solution notebook with plain nbclient."""
    times = []
    for _ in range(repeats):
        nb = nbformat.read(str(ROOT / "source" / notebook / f"{notebook}.ipynb"), 4)
        started = time.monotonic()
        NotebookClient(nb, timeout=60, kernel_name="python3").execute()
        times.append(time.monotonic() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="+", default=["02-containers"])
    parser.add_argument("--copies", type=int, default=1, help="submissions of each kind")
    parser.add_argument("--cell-timeout", type=int, default=10)
    parser.add_argument("--workers", type=int, default=None,
                        help="course grade's workers [default: its own default]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        stock_dir, course_dir = Path(tmp) / "stock", Path(tmp) / "course"
        make_batch(stock_dir, args.notebooks, args.copies)
        shutil.copytree(stock_dir, course_dir)
        n = sum(1 for _ in stock_dir.glob("submitted/*/*/*.ipynb"))
        print(f"batch: {n} submissions of {', '.join(args.notebooks)} "
              f"(perfect, partial, blank, hanging), cell timeout {args.cell_timeout} s")
        stock = run_stock(stock_dir, args.notebooks, args.cell_timeout)
        print(f"stock nbgrader autograde: {stock:7.1f} s")
        ours = run_course(course_dir, args.notebooks, args.cell_timeout, args.workers)
        pool = (f"{args.workers} workers" if args.workers else
                f"{default_workers()} workers, up to {default_extra_workers()} more while the "
                f"cores idle")
        print(f"course grade ({pool}): {ours:7.1f} s")
        print(f"speed-up: {stock / ours:.2f}x")
        same = scores(stock_dir) == scores(course_dir)
        print(f"scores identical: {same}")
        if not same:
            print(f"  stock:  {sorted(scores(stock_dir).items())}")
            print(f"  course: {sorted(scores(course_dir).items())}")
        notebook = args.notebooks[0]
        plain = nbclient_seconds(notebook, 3)
        mine = worker_seconds(course_dir, notebook, 3)
        print(f"{notebook}, one worker alone: {mine:.1f} s per perfect submission (sanitize, "
              f"execute, record) vs {plain:.1f} s to execute it with plain nbclient: "
              f"overhead {100 * (mine / plain - 1):+.0f}%")
        compare_tampering(Path(tmp), notebook, args.cell_timeout, args.workers)


if __name__ == "__main__":
    main()

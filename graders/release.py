"""Generating the two editions from ``source/``: the classroom release and the self-paced notebooks.

``release/<id>/`` comes from nbgrader's generate_assignment (solutions stubbed, hidden tests
removed, checksums computed). nbgrader copies the assignment's other files as they are; the
files a learner edits (``learner_files`` in graders/course.yml, a Dockerfile say) hold their
solution between solution marker lines in source/, and the release hands them out without it.
``notebooks/<id>.ipynb`` is derived from it for learners working on their own: the same cells
without nbgrader's bookkeeping, test cells tagged as self-checks, the assignments' other files
beside them, plus a start page listing the course in order.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import manifest, pacing
from .errors import ReleaseError
from .nbgrader_env import course_config, sqlite_url, stamp_new_gradebook, tools_on_path
from .samples import SOLUTION_MARKERS, write_samples
from .settings import DEMO_ASSIGNMENT

#: Trees generated from source/, relative to the repository root.
GENERATED_TREES = ("release", "notebooks", "examples/submissions")
SELF_CHECK_TAG = "self-check"
SELF_CHECK_PASSED = "Self-check passed:"
TABLE_START, TABLE_END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"
START_PAGE = "00-start-here.ipynb"


@dataclass
class ReleaseResult:
    """What a release run wrote."""

    assignments: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def source_assignments(root: Path) -> list[str]:
    """Assignment ids that have a source notebook, in manifest order."""
    known = [nb.id for nb in manifest.load()]
    present = {p.parent.name for p in (root / "source").glob("*/*.ipynb")
               if p.stem == p.parent.name}
    unknown = present - set(known)
    if unknown:
        raise ReleaseError(
            f"source/ has notebooks the manifest does not list: {', '.join(sorted(unknown))}",
            remedy="Add them to graders/course.yml (order, title, syllabus items).",
        )
    return [nb_id for nb_id in known if nb_id in present]


def generate_release(root: Path, release_dir: Path, assignments: list[str] | None = None,
                     db_url: str | None = None) -> list[str]:
    """Run nbgrader generate_assignment for each assignment into ``release_dir``.

    The gradebook at ``db_url`` receives the assignment's cells (hidden tests included); by
    default a throwaway one is used, since only grading needs them.
    """
    from nbgrader.apps import NbGraderAPI

    assignments = assignments if assignments is not None else source_assignments(root)
    with tempfile.TemporaryDirectory() as scratch:
        db_url = db_url or sqlite_url(Path(scratch) / "gradebook.db")
        stamp_new_gradebook(db_url)
        config = course_config(root, db_url)
        config.CourseDirectory.release_directory = str(release_dir.resolve())
        config.CourseDirectory.source_directory = str((root / "source").resolve())
        config.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", ".*"]
        with tools_on_path():
            api = NbGraderAPI(config=config)
            for assignment in assignments:
                result = api.generate_assignment(assignment, force=True, create=True)
                if not result["success"]:
                    raise ReleaseError(
                        f"nbgrader could not generate {assignment}:\n"
                        f"{result.get('error') or result.get('log', '')}"
                    )
                hand_out_learner_files(root / "source" / assignment, release_dir / assignment,
                                       manifest.learner_files(assignment))
    return assignments


def released_text(text: str, name: str = "the file") -> str:
    """A learner file as the release hands it out: each solution region, from a
    ``### BEGIN SOLUTION`` line to its ``### END SOLUTION`` line, removed."""
    begin, end = SOLUTION_MARKERS
    kept, opened = [], 0
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker == begin:
            if opened:
                raise ReleaseError(f"{name}, line {number}: {begin} inside a solution region "
                                   f"opened on line {opened}")
            opened = number
        elif marker == end:
            if not opened:
                raise ReleaseError(f"{name}, line {number}: {end} without a {begin} before it")
            opened = 0
        elif not opened:
            kept.append(line)
    if opened:
        raise ReleaseError(f"{name}, line {opened}: {begin} is never closed by {end}")
    return "".join(kept)


def solved_text(text: str) -> str:
    """A learner file as a learner who solved it hands it in: the solution marker lines
    dropped, the solution kept."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if line.strip() not in SOLUTION_MARKERS)


def hand_out_learner_files(source: Path, released: Path, learner_files: tuple[str, ...]) -> None:
    """Write each learner file of the assignment into its release without its solution
    (nbgrader copied it as it is). `course validate` reports other files holding one."""
    for relative in learner_files:
        origin = source / relative
        if not origin.is_file():
            raise ReleaseError(
                f"{source.name}: graders/course.yml lists the learner file {relative}, which "
                f"is not in {source}",
                remedy="Add the file to the assignment folder or remove it from learner_files.")
        (released / relative).parent.mkdir(parents=True, exist_ok=True)
        (released / relative).write_text(released_text(origin.read_text(), str(origin)))


def holds_solution(path: Path) -> bool:
    """Whether a text file has a solution marker line (a binary file has none)."""
    try:
        lines = {line.strip() for line in path.read_text().splitlines()}
    except (UnicodeDecodeError, OSError):
        return False
    return bool(lines & set(SOLUTION_MARKERS))


def self_paced(release_notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The self-paced edition of one released notebook.

    Each check cell is tagged as a self-check and ends by saying, in plain words, that its
    checks passed and which exercise comes next; a failed check already says what is wrong.
    """
    nb = nbformat.from_dict(json.loads(json.dumps(release_notebook)))
    checks = [cell for cell in nb.cells if cell.cell_type == "code"
              and cell.get("metadata", {}).get("nbgrader", {}).get("grade")]
    names = [cell.metadata["nbgrader"]["grade_id"].removesuffix("-tests") for cell in checks]
    for index, cell in enumerate(checks):
        following = (f"next, the exercise `{names[index + 1]}`" if index + 1 < len(names)
                     else "that was the last exercise: read the key points")
        cell.source = cell.source.rstrip() + (
            f"\n\nprint(\"{SELF_CHECK_PASSED} {names[index]}: every check here passed; "
            f"{following}.\")")
        tags = cell.metadata.setdefault("tags", [])
        if SELF_CHECK_TAG not in tags:
            tags.append(SELF_CHECK_TAG)
    for cell in nb.cells:
        cell.get("metadata", {}).pop("nbgrader", None)
    nb.metadata.pop("nbgrader", None)
    return nb


PREREQUISITES = (
    "**What you need first**\n\n"
    "- Python: writing a function, lists and dictionaries, `with` and `try`/`finally`, and "
    "reading a traceback to its last line.\n"
    "- A terminal: running a command, and what a process, a port and a file path are.\n"
    "- No Docker at all: the course starts from the first container and explains every "
    "term as it comes.\n"
)


def start_page(available: dict[str, int]) -> nbformat.NotebookNode:
    """notebooks/00-start-here.ipynb: how the course works, what it assumes, the suggested
    paths and every notebook in order, each with its estimated time (``available`` maps the
    notebooks that exist to their minutes)."""
    rows = []
    for number, nb in enumerate(manifest.load(), start=1):
        items = ", ".join(f"`{item.id}`" for item in nb.items)
        if nb.id in available:
            rows.append(f"{number}. [{nb.title}]({nb.id}.ipynb), about "
                        f"{pacing.spoken(available[nb.id])}: {items}")
        else:
            rows.append(f"{number}. {nb.title} (in preparation): {items}")
    routes = []
    for path in manifest.paths():
        ready = [nb for nb in path.notebooks if nb in available]
        steps = ", ".join(f"[{nb}]({nb}.ipynb)" for nb in ready)
        total = pacing.spoken(sum(available[nb] for nb in ready))
        routes.append(f"- **{path.title}** (about {total}), for {path.audience}: {steps}.")
    intro = (
        "# Start here: a Docker course in notebooks\n\n"
        "Each notebook teaches one part of Docker by driving a real Docker daemon from Python "
        "with the Docker SDK (`import docker`). You read a short explanation, run a worked "
        "example, then write a small function in an exercise cell; the cell after it checks "
        "your function against the daemon and tells you what is right and what to look at.\n\n"
        + PREREQUISITES + "\n"
        "**Before you begin**\n\n"
        "- A Docker daemon must answer: Docker Desktop, or Docker Engine on Linux. "
        "`course doctor` in a terminal checks it and says what to fix.\n"
        "- The course images (`busybox`, `registry`) must exist locally: `course images` "
        "provides them, even without internet access.\n"
        "- Run each notebook from the top (*Run > Run All Cells* works). Every object a notebook "
        "creates carries a label with your `NAMESPACE`; the last cell removes them all, and "
        "`graders.lab.reset(client, NAMESPACE)` does the same at any time.\n"
    )
    timing = (f"Times are estimates: the explanations read at {pacing.WORDS_PER_MINUTE} words "
              f"a minute, plus {pacing.MINUTES_PER_EXERCISE} minutes for each exercise.")
    cells = [
        nbformat.v4.new_markdown_cell(intro, id="start-intro"),
        nbformat.v4.new_markdown_cell("## The notebooks, in order\n\n" + "\n".join(rows)
                                      + "\n\n" + timing, id="start-contents"),
        nbformat.v4.new_markdown_cell("## Suggested paths\n\n" + "\n".join(routes),
                                      id="start-paths"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    return nb


def notebook_table(available: list[str]) -> str:
    """The README's table of notebooks and the syllabus items each covers."""
    rows = ["| # | Notebook | Syllabus items | Status |", "|---|---|---|---|"]
    for number, nb in enumerate(manifest.load(), start=1):
        items = ", ".join(f"`{item.id}`" for item in nb.items)
        status = "ready" if nb.id in available else "planned"
        name = f"[`{nb.id}`](source/{nb.id}/{nb.id}.ipynb)" if nb.id in available else f"`{nb.id}`"
        rows.append(f"| {number} | {name}: {nb.title} | {items} | {status} |")
    return "\n".join(rows)


def readme_with_table(readme: str, available: list[str]) -> str:
    """``readme`` with the text between the table markers replaced by the current table."""
    if TABLE_START not in readme or TABLE_END not in readme:
        raise ReleaseError(f"README.md lacks the markers {TABLE_START} and {TABLE_END}")
    head, rest = readme.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_START}\n{notebook_table(available)}\n{TABLE_END}{tail}"


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def copy_support_files(released: Path, notebooks_dir: Path, beside: dict[str, str]) -> None:
    """Put the released files of one assignment other than its notebooks (a build context,
    data) into notebooks/, where its self-paced notebook finds them as it does in release/.
    ``beside`` records which assignment each file came from: two may not share a path."""
    for path in sorted(released.rglob("*")):
        relative = path.relative_to(released).as_posix()
        if not path.is_file() or path.suffix == ".ipynb":
            continue
        if relative in beside:
            raise ReleaseError(
                f"{released.name} and {beside[relative]} both have a file {relative}: in "
                "notebooks/ the self-paced notebooks share one folder",
                remedy="Give one of them another name (a folder named after the assignment).")
        beside[relative] = released.name
        (notebooks_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, notebooks_dir / relative)


def build_editions(root: Path, out: Path) -> ReleaseResult:
    """Write every generated tree (see GENERATED_TREES) under ``out`` from ``root/source``."""
    result = ReleaseResult()
    release_dir, notebooks_dir = out / "release", out / "notebooks"
    result.assignments = generate_release(root, release_dir)
    beside: dict[str, str] = {}
    for assignment in result.assignments:
        released = nbformat.read(str(release_dir / assignment / f"{assignment}.ipynb"),
                                 as_version=4)
        write_notebook(self_paced(released), notebooks_dir / f"{assignment}.ipynb")
        copy_support_files(release_dir / assignment, notebooks_dir, beside)
    minutes = {assignment: pacing.minutes(nbformat.read(
        str(root / "source" / assignment / f"{assignment}.ipynb"), as_version=4))
        for assignment in result.assignments}
    write_notebook(start_page(minutes), notebooks_dir / START_PAGE)
    if DEMO_ASSIGNMENT in result.assignments:
        write_samples(root / "source" / DEMO_ASSIGNMENT / f"{DEMO_ASSIGNMENT}.ipynb",
                      release_dir / DEMO_ASSIGNMENT / f"{DEMO_ASSIGNMENT}.ipynb",
                      out / "examples" / "submissions")
    result.files = sorted(p for p in out.rglob("*") if p.is_file())
    return result


def release(root: Path) -> ReleaseResult:
    """Regenerate every generated tree in the course repository ``root``."""
    with tempfile.TemporaryDirectory() as tmp:
        built = build_editions(root, Path(tmp))
        for tree in GENERATED_TREES:
            target = root / tree
            if target.exists():
                shutil.rmtree(target)
            if (Path(tmp) / tree).exists():
                shutil.copytree(Path(tmp) / tree, target)
        built.files = [root / p.relative_to(tmp) for p in built.files]
    readme = root / "README.md"
    readme.write_text(readme_with_table(readme.read_text(), built.assignments))
    return built


def stale_files(root: Path) -> list[str]:
    """Generated files that differ from what ``source/`` generates now."""
    with tempfile.TemporaryDirectory() as tmp:
        built = build_editions(root, Path(tmp))
        stale = _differences(Path(tmp), root, GENERATED_TREES)
    readme = (root / "README.md").read_text()
    if readme_with_table(readme, built.assignments) != readme:
        stale.append("README.md (notebook table out of date)")
    return stale


def _differences(fresh_root: Path, committed_root: Path, trees: tuple[str, ...]) -> list[str]:
    stale = []
    for tree in trees:
        fresh = {p.relative_to(fresh_root) for p in (fresh_root / tree).rglob("*") if p.is_file()}
        committed = {p.relative_to(committed_root) for p in (committed_root / tree).rglob("*")
                     if p.is_file() and ".ipynb_checkpoints" not in p.parts}
        for rel in sorted(fresh | committed):
            if rel not in committed:
                stale.append(f"{rel} (missing)")
            elif rel not in fresh:
                stale.append(f"{rel} (no longer generated)")
            elif not filecmp.cmp(fresh_root / rel, committed_root / rel, shallow=False):
                stale.append(f"{rel} (out of date)")
    return stale

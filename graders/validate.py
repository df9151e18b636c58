"""`course validate`: what a course repository's CI checks, each problem naming its cell.

The checks: source notebooks have cleared outputs and sound nbgrader metadata, every test cell
can be judged (it reads only what the locked cells and the learner's functions define), every
syllabus item has a graded exercise that makes its call, the generated trees are fresh, and,
graded for real (through the judges), each reference solution runs clean and earns full marks
while the untouched release earns nothing in every grade cell.
"""

from __future__ import annotations

import ast
import io
import re
import shutil
import tempfile
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from . import manifest
from .grading import GradingOptions, grade_assignments
from .nbgrader_env import sqlite_url
from .pool import local_pool
from .release import (
    generate_release,
    holds_solution,
    solved_text,
    source_assignments,
    stale_files,
)
from .samples import SOLUTION_MARKERS, SampleMaker, run_twice
from .settings import PARAMETERS_GRADE_ID

MIN_EXERCISES, MIN_POINTS = 5, 10


@dataclass(frozen=True)
class Problem:
    notebook: str
    cell: str
    message: str

    def __str__(self) -> str:
        where = f"{self.notebook}:{self.cell}" if self.cell else self.notebook
        return f"{where}: {self.message}"


def _source(root: Path, assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(str(root / "source" / assignment / f"{assignment}.ipynb"), as_version=4)


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def check_outputs_cleared(root: Path, assignment: str) -> list[Problem]:
    return [Problem(assignment, cell.get("id", f"#{i}"), "has outputs or an execution count")
            for i, cell in enumerate(_source(root, assignment).cells)
            if cell.cell_type == "code" and (cell.outputs or cell.execution_count)]


def check_metadata(root: Path, assignment: str) -> list[Problem]:
    """Cell ids and nbgrader metadata the grading pipeline relies on."""
    nb, problems = _source(root, assignment), []
    ids = [cell.get("id") for cell in nb.cells]
    for cell_id in {i for i in ids if ids.count(i) > 1 or not i}:
        problems.append(Problem(assignment, str(cell_id), "cell id missing or repeated"))
    grade_ids = [_meta(c)["grade_id"] for c in nb.cells if _meta(c).get("grade_id")]
    for grade_id in {g for g in grade_ids if grade_ids.count(g) > 1}:
        problems.append(Problem(assignment, grade_id, "grade_id repeated"))
    parameters = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(parameters) != 1 or _meta(parameters[0]).get("grade_id") != PARAMETERS_GRADE_ID \
            or not _meta(parameters[0]).get("locked"):
        problems.append(Problem(assignment, "parameters", "needs exactly one locked cell tagged "
                                "`parameters` with grade_id `parameters`"))
    for cell in nb.cells:
        meta, name = _meta(cell), _meta(cell).get("grade_id", cell.get("id"))
        if meta.get("grade"):
            if not meta.get("points"):
                problems.append(Problem(assignment, name, "grade cell without points"))
            if not meta.get("locked"):
                problems.append(Problem(assignment, name, "grade cell is not locked"))
            if cell.cell_type == "code" and _ends_with_number(cell.source):
                problems.append(Problem(assignment, name, "ends with a bare number, which "
                                        "nbgrader reads as partial credit"))
        if meta.get("solution") and cell.cell_type == "code" and (
                "### BEGIN SOLUTION" not in cell.source or "### END SOLUTION" not in cell.source):
            problems.append(Problem(assignment, name, "solution cell without solution markers"))
    return problems


def _bound_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def check_judgeable(root: Path, assignment: str) -> list[Problem]:
    """Every name a test cell reads is there in the judge (graders.judging): defined by a
    locked cell, an earlier test cell or the cell itself, a built-in, or a learner's function.
    The judge never runs example cells, nor anything else of the learner's."""
    import builtins

    known, learner, problems = set(dir(builtins)) | {"get_ipython"}, set(), []
    for cell in _source(root, assignment).cells:
        meta = _meta(cell)
        if cell.cell_type != "code" or not (meta.get("locked") or meta.get("solution")):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as error:
            problems.append(Problem(assignment, meta.get("grade_id", ""), f"not Python: {error}"))
            continue
        if meta.get("solution"):
            learner |= {n.name for n in tree.body
                        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            continue
        bound = _bound_names(tree)
        if meta.get("grade"):
            read = {n.id for n in ast.walk(tree)
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            for name in sorted(read - bound - known - learner):
                problems.append(Problem(assignment, meta["grade_id"],
                                        f"reads {name!r}, which the judge does not have: define "
                                        "it in the setup cell or in the test cell"))
        known |= bound
    return problems


MIN_LEAKED_LINE, MIN_LEAKED_KEYWORD = 16, 10
_BARE = re.compile(r"[\w.]+(\(\))?")


def _python(source: str) -> str:
    """A cell's source with its IPython lines (`%magic`, `!shell`) blanked, lines kept in place."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def _normalised(text: str) -> str:
    """Whitespace collapsed and quotes unified, so that `"a",  'b'` and `'a', 'b'` compare."""
    return " ".join(text.replace('"', "'").split())


def _leakable(line: str) -> list[str]:
    """What of one solution line a message must not quote: the line, and for `return x` or
    `name = x` the expression x; none of them if shorter than MIN_LEAKED_LINE, a `def` line,
    or only a name or a call without arguments."""
    line = line.strip().rstrip(",").strip()
    if line.startswith(("def ", "async def ")):
        return []
    pieces = [line]
    if line.startswith("return "):
        pieces.append(line.removeprefix("return ").strip())
    target, equals, value = line.partition(" = ")
    if equals and _BARE.fullmatch(target.replace(", ", "").replace(" ", "")):
        pieces.append(value.strip())
    return [_normalised(p) for p in pieces
            if len(p) >= MIN_LEAKED_LINE and not _BARE.fullmatch(p)]


def solution_fragments(source: str) -> tuple[set[str], set[str]]:
    """What a message must not quote from one solution cell: its code lines and the lines of
    its string literals that hold a space (a Dockerfile instruction, a command: not a single
    value such as a path, which a message may well expect), between the solution markers,
    without comments and docstrings (see _leakable); and its `name=value` keyword arguments of
    at least MIN_LEAKED_KEYWORD characters. All normalised (see _normalised)."""
    source = _python(source)
    try:
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError):
        return set(), set()
    lines = source.splitlines()
    marked = [i + 1 for i, line in enumerate(lines) if line.strip() in SOLUTION_MARKERS]
    regions = list(zip(marked[::2], marked[1::2], strict=False)) or [(0, len(lines) + 1)]

    def solved(node: ast.AST) -> bool:
        return any(begin < node.lineno <= node.end_lineno < end for begin, end in regions)

    for token in tokens:
        if token.type == tokenize.COMMENT:
            row, col = token.start
            lines[row - 1] = lines[row - 1][:col]
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            docstrings.add(id(body[0].value))
            for row in range(body[0].lineno, body[0].end_lineno + 1):
                lines[row - 1] = ""
    pieces = {piece for begin, end in regions for line in lines[begin:end - 1]
              for piece in _leakable(line)}
    keywords = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg and solved(node):
            text = _normalised(f"{node.arg}={ast.get_source_segment(source, node.value)}")
            if len(text) >= MIN_LEAKED_KEYWORD:
                keywords.add(text)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings and solved(node):
            pieces |= {piece for line in node.value.splitlines() if " " in line.strip()
                       for piece in _leakable(line)}
    return pieces, keywords


def _string_texts(node: ast.AST, strings: dict[str, list[ast.AST]]) -> list[str]:
    """The texts of the string constants in ``node``: an f-string's literal parts joined, a
    name followed to the strings assigned to it in the cell."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(part.value for part in node.values if isinstance(part, ast.Constant))]
    if isinstance(node, ast.Name):
        return [text for value in strings.get(node.id, []) if not isinstance(value, ast.Name)
                for text in _string_texts(value, strings)]
    return [text for child in ast.iter_child_nodes(node) for text in _string_texts(child, strings)]


def assert_messages(source: str) -> list[str]:
    """The messages of a test cell: of its asserts, and of the AssertionErrors it raises."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return []
    strings: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    strings.setdefault(target.id, []).append(node.value)
    messages = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.msg is not None:
            messages += _string_texts(node.msg, strings)
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                and isinstance(node.exc.func, ast.Name) and node.exc.func.id == "AssertionError":
            for argument in node.exc.args:
                messages += _string_texts(argument, strings)
    return messages


def check_messages_hide_solutions(root: Path, assignment: str) -> list[Problem]:
    """A failed check says what is wrong without handing out the answer: no message quotes a
    solution line of the notebook (whitespace and quotes normalised; at least 16 characters, not
    a comment, docstring, `def` line or bare name or call), or a `name=value` keyword argument
    of a solution call of at least 10 characters (`detach=True` yes, `name=name` no)."""
    nb = _source(root, assignment)
    lines, keywords = set(), set()
    for cell in nb.cells:
        if cell.cell_type == "code" and _meta(cell).get("solution"):
            cell_lines, cell_keywords = solution_fragments(cell.source)
            lines |= cell_lines
            keywords |= cell_keywords
    keyword_patterns = {k: re.compile(r"(?<![\w.])" + re.escape(k) + r"(?![\w])")
                        for k in keywords}
    problems = []
    for cell in nb.cells:
        meta = _meta(cell)
        if cell.cell_type != "code" or not meta.get("grade"):
            continue
        name = meta.get("grade_id", cell.get("id", ""))
        for message in dict.fromkeys(_normalised(m) for m in assert_messages(cell.source)):
            quoted = sorted(line for line in lines if line in message)
            quoted += sorted(k for k, pattern in keyword_patterns.items()
                             if pattern.search(message) and not any(k in q for q in quoted))
            if quoted:
                problems.append(Problem(assignment, name, f"the message {message[:80]!r} "
                                        f"quotes the solution: {quoted[0]!r}"))
    return problems


def check_support_files(root: Path, assignment: str) -> list[Problem]:
    """The files of the assignment folder besides its notebooks: nbgrader releases them as
    they are, so only a learner file (graders/course.yml), whose solution the release strips,
    may hold solution markers; and a learner file with none would be handed out solved."""
    folder, problems = root / "source" / assignment, []
    learner_files = manifest.learner_files(assignment)
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if not path.is_file() or path.suffix == ".ipynb" or ".ipynb_checkpoints" in path.parts:
            continue
        if relative in learner_files and not holds_solution(path):
            problems.append(Problem(assignment, relative, "a learner file without solution "
                                    "markers: the release would hand it out as it is"))
        elif relative not in learner_files and holds_solution(path):
            problems.append(Problem(assignment, relative, "holds solution markers but is not a "
                                    "learner file: the release would hand out its solution; "
                                    "list it under learner_files in graders/course.yml"))
    return problems


def _ends_with_number(source: str) -> bool:
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    return bool(body) and isinstance(body[-1], ast.Expr) and isinstance(
        body[-1].value, ast.Constant) and isinstance(body[-1].value.value, (int, float))


def exercise_for(nb: nbformat.NotebookNode, item_id: str):
    """The solution and test cells of the exercise covering ``item_id``, or (None, None).

    That is `<item>-solution` / `<item>-tests`, or an `<x>-solution` cell listing the item in
    its `docker_course.items` metadata, with its `<x>-tests`.
    """
    cells = {_meta(c)["grade_id"]: c for c in nb.cells if _meta(c).get("grade_id")}
    for grade_id, cell in cells.items():
        covers = cell.metadata.get("docker_course", {}).get("items", [])
        if grade_id == f"{item_id}-solution" or (grade_id.endswith("-solution")
                                                 and item_id in covers):
            return cell, cells.get(grade_id.removesuffix("-solution") + "-tests")
    return None, None


def check_syllabus(root: Path, assignment: str) -> list[Problem]:
    """Every item has a graded exercise whose solution makes its call; enough exercises."""
    nb, problems = _source(root, assignment), []
    for item in manifest.entry(assignment).items:
        solution, tests = exercise_for(nb, item.id)
        if solution is None or not _meta(solution).get("solution"):
            problems.append(Problem(assignment, f"{item.id}-solution", "no exercise covers "
                                    f"syllabus item `{item.id}` ({item.command})"))
            continue
        if not any(use in solution.source for use in item.solution_uses):
            problems.append(Problem(assignment, _meta(solution)["grade_id"], f"the solution "
                                    f"makes none of {list(item.solution_uses)} for `{item.id}`"))
        if tests is None or not _meta(tests).get("points"):
            problems.append(Problem(assignment, _meta(solution)["grade_id"],
                                    f"no grade cell with points for `{item.id}`"))
    grades = [_meta(c) for c in nb.cells if _meta(c).get("grade")]
    if len(grades) < MIN_EXERCISES or sum(g.get("points", 0) for g in grades) < MIN_POINTS:
        problems.append(Problem(assignment, "", f"needs at least {MIN_EXERCISES} graded "
                                f"exercises and {MIN_POINTS} points"))
    return problems


#: The editions of a notebook a validation grades: the reference solution, the untouched release.
EDITIONS = ("solution", "release")


@dataclass
class EditionGrades:
    """Per-cell scores of the solved and the untouched edition (empty when it was not graded),
    and the solved notebook."""

    solution: dict[str, tuple[float, float]]
    release: dict[str, tuple[float, float]]
    statuses: dict[str, str]
    solved_notebook: nbformat.NotebookNode | None


def grade_editions(root: Path, assignment: str, workdir: Path,
                   options: GradingOptions | None = None, pool=None) -> EditionGrades:
    """Grade the reference solution (as a student would hand it in) and the untouched release,
    each with the assignment's learner files (graders/course.yml) in the same edition.

    ``pool`` lets several assignments share one pool of warm workers.
    """
    return grade_all_editions(root, [assignment], workdir, options, pool)[assignment]


def grade_all_editions(root: Path, assignments: list[str], workdir: Path,
                       options: GradingOptions | None = None, pool=None,
                       editions: tuple[str, ...] = EDITIONS,
                       rerun: bool = False) -> dict[str, EditionGrades]:
    """The ``editions`` (both, unless fewer are asked for) of every assignment, graded as one
    run, so the workers never wait.

    With ``rerun`` the solution is handed in run twice in one kernel (samples.run_twice): full
    marks then also show that a learner can re-run every cell, and the solved notebook holds
    whatever the first pass wrote.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    course = Path(tempfile.mkdtemp(prefix="editions-", dir=workdir))
    for assignment in assignments:
        shutil.copytree(root / "source" / assignment, course / "source" / assignment)
    generate_release(course, course / "release", assignments=assignments)
    for assignment in assignments:
        maker = SampleMaker(_source(course, assignment), nbformat.read(
            str(course / "release" / assignment / f"{assignment}.ipynb"), as_version=4))
        solved = maker.solved(set(maker.items))
        notebooks = {"solution": run_twice(solved) if rerun else solved,
                     "release": maker.release}
        for student in editions:
            path = course / "submitted" / student / assignment / f"{assignment}.ipynb"
            path.parent.mkdir(parents=True)
            nbformat.write(notebooks[student], str(path))
        for relative in manifest.learner_files(assignment):  # handed in beside the notebook
            texts = {"solution": solved_text((course / "source" / assignment / relative)
                                             .read_text()),
                     "release": (course / "release" / assignment / relative).read_text()}
            for student in editions:
                path = course / "submitted" / student / assignment / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(texts[student])
    batches = grade_assignments(course, assignments,
                                options or GradingOptions(feedback=False), pool=pool)
    return {batch.assignment: _editions(course, batch, editions) for batch in batches}


def _editions(course: Path, batch, editions: tuple[str, ...]) -> EditionGrades:
    assignment = batch.assignment
    with Gradebook(sqlite_url(course / "gradebook.db")) as gradebook:
        cells = {student: {g.name: (g.score, g.max_score) for g in gradebook
                           .find_submission_notebook(assignment, assignment, student).grades}
                 for student in editions}
    solved_path = course / "autograded" / "solution" / assignment / f"{assignment}.ipynb"
    solved = nbformat.read(str(solved_path), as_version=4) if solved_path.exists() else None
    return EditionGrades(cells.get("solution", {}), cells.get("release", {}),
                         {r.student: f"{r.status.value} {r.detail}".strip()
                          for r in batch.results}, solved)


def check_grading(root: Path, assignment: str, workdir: Path, pool=None) -> list[Problem]:
    """The solution runs clean and earns every point; the release earns none in any cell."""
    graded, problems = grade_editions(root, assignment, workdir, pool=pool), []
    if not graded.statuses.get("solution", "").startswith("graded"):
        problems.append(Problem(assignment, "", f"grading the solution ended "
                                f"{graded.statuses.get('solution')}"))
    if graded.solved_notebook is not None:
        for cell in graded.solved_notebook.cells:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" or output.get("name") == "stderr":
                    what = output.get("ename") or "stderr"
                    text = output.get("evalue") or output.get("text", "")
                    problems.append(Problem(assignment, _meta(cell).get("grade_id")
                                            or cell.get("id", ""),
                                            f"the solution writes {what}: {text[:200]}"))
    for name, (score, top) in graded.solution.items():
        if score != top:
            problems.append(Problem(assignment, name, f"fails on the solution ({score}/{top})"))
    for name, (score, _) in graded.release.items():
        if score:
            problems.append(Problem(assignment, name, "passes on the unsolved release version"))
    return problems


def validate(root: Path, assignments: list[str] | None = None, grading: bool = True,
             on_step: Callable[[str], None] | None = None) -> list[Problem]:
    """Run every check on the course repository ``root``; return the problems found."""
    step = on_step or (lambda _message: None)
    assignments = assignments or source_assignments(root)
    problems: list[Problem] = []
    for assignment in assignments:
        step(f"checking {assignment}")
        for check in (check_outputs_cleared, check_metadata, check_judgeable, check_syllabus,
                      check_messages_hide_solutions, check_support_files):
            problems += check(root, assignment)
    step("checking that release/, notebooks/ and the samples are fresh")
    problems += [Problem("generated", "", f"{path}: stale, run `course release`")
                 for path in stale_files(root)]
    if grading:
        pool = local_pool()
        try:
            with tempfile.TemporaryDirectory(prefix="course-validate-") as workdir:
                for assignment in assignments:
                    step(f"grading the solution and the release of {assignment}")
                    problems += check_grading(root, assignment, Path(workdir), pool=pool)
        finally:
            pool.close()
    return problems

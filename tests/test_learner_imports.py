"""The learner's notebooks off Linux: no POSIX-only module or call on the way.

On Windows Python has no ``fcntl``, ``pwd``, ``grp``, ``resource`` or ``termios`` and no
``os.getuid``/``os.getgid``. A subprocess that refuses those modules and lacks those functions
runs every import statement of every notebook in ``notebooks/`` (``graders.lab`` among them)
and, with the daemon, each notebook's cells that guard such a call; a static check finds every
``os.getuid``-like use in a code cell and requires a guard around it.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import uuid

import nbformat
import pytest
from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
POSIX_MODULES = ("fcntl", "pwd", "grp", "resource", "termios")
POSIX_IDS = ("getuid", "geteuid", "getgid", "getegid")

#: Run first in the subprocess: what Windows lacks is gone.
WITHOUT_POSIX = textwrap.dedent(f"""
    import importlib.abc, os, sys

    BLOCKED = {POSIX_MODULES!r}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (refused)", name=name)
            return None

    for loaded in [m for m in sys.modules if m.partition(".")[0] in BLOCKED]:
        del sys.modules[loaded]
    sys.meta_path.insert(0, Refuse())
    for attribute in {POSIX_IDS!r}:
        if hasattr(os, attribute):
            delattr(os, attribute)
""")


def code_cells(path):
    """The notebook's code cells, each as (cell, its source parsed), magics left out."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        lines = [line for line in cell.source.splitlines()
                 if not line.lstrip().startswith(("%", "!"))]
        yield cell, ast.parse("\n".join(lines), filename=f"{path.name}:{cell.get('id')}")


def import_statements(path) -> list[str]:
    found = []
    for _, tree in code_cells(path):
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                statement = ast.unparse(node)
                if statement not in found:
                    found.append(statement)
    return found


def without_posix(script: str, timeout: float = 120) -> dict:
    """Run ``script`` after WITHOUT_POSIX in a fresh interpreter; it prints one JSON line."""
    done = subprocess.run([sys.executable, "-c", WITHOUT_POSIX + textwrap.dedent(script)],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"the subprocess failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_refusal_itself_works():
    result = without_posix("""
        import json, os
        refused = []
        for name in BLOCKED:
            try:
                __import__(name)
            except ImportError:
                refused.append(name)
        print(json.dumps({"refused": refused, "getuid": hasattr(os, "getuid")}))
    """)
    assert sorted(result["refused"]) == sorted(POSIX_MODULES) and result["getuid"] is False


def test_every_notebook_import_works_without_posix_only_modules():
    statements = {path.name: import_statements(path) for path in NOTEBOOKS}
    assert any("graders.lab" in s for found in statements.values() for s in found)
    result = without_posix(f"""
        import json, sys
        failures = []
        for notebook, found in {statements!r}.items():
            for statement in found:
                try:
                    exec(statement, {{}})
                except Exception as error:
                    failures.append(
                        f"{{notebook}}: {{statement}} -> {{type(error).__name__}}: {{error}}")
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
        print(json.dumps({{"failures": failures, "loaded": loaded}}))
    """)
    assert not result["failures"], "\n".join(result["failures"])
    assert not result["loaded"], f"POSIX-only modules were loaded anyway: {result['loaded']}"


def test_without_flock_resetting_goes_ahead_and_a_build_lock_says_grading_needs_linux():
    result = without_posix("""
        import json
        from graders.daemon_lock import BuildHold, removing_images
        from graders.errors import GradingError

        with removing_images():  # what graders.lab.reset takes: no lock there, no error
            pass
        try:
            with BuildHold():
                message = None
        except GradingError as error:
            message = f"{error} {error.remedy}"
        print(json.dumps({"message": message}))
    """)
    assert result["message"] and "Linux" in result["message"], result


def _guarded_by(test: ast.expr) -> bool:
    """Whether ``test`` (an if's condition) is true only where os has the POSIX id functions."""
    for node in ast.walk(test):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("hasattr", "getattr") and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name) and node.args[0].id == "os"
                and isinstance(node.args[1], ast.Constant) and node.args[1].value in POSIX_IDS):
            return True
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return False
    return False


def unguarded_uses(tree: ast.AST) -> list[int]:
    """Lines where os.getuid (or its kin) is used outside a guard.

    Guards: the true branch of an ``if``/conditional expression testing ``hasattr(os, "getuid")``
    (or ``getattr(os, "getuid", None)``), the later operands of an ``and`` after such a test, or
    a ``try`` that catches AttributeError.
    """
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}

    def guarded(node: ast.AST) -> bool:
        child, parent = node, parents.get(node)
        while parent is not None:
            if isinstance(parent, (ast.If, ast.IfExp)) and child is not parent.test:
                body = parent.body if isinstance(parent, ast.If) else [parent.body]
                in_body = child in body
                if in_body and _guarded_by(parent.test):
                    return True
            if isinstance(parent, ast.BoolOp) and isinstance(parent.op, ast.And):
                before = parent.values[:parent.values.index(child)]
                if any(_guarded_by(value) for value in before):
                    return True
            if isinstance(parent, ast.Try) and child in parent.body:
                for handler in parent.handlers:
                    caught = [] if handler.type is None else ast.walk(handler.type)
                    if handler.type is None or any(
                            isinstance(n, ast.Name) and n.id in ("AttributeError", "Exception")
                            for n in caught):
                        return True
            child, parent = parent, parents.get(parent)
        return False

    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in POSIX_IDS
                and isinstance(node.value, ast.Name) and node.value.id == "os"
                and not guarded(node)):
            found.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found.extend(node.lineno for a in node.names if a.name in POSIX_IDS)
    return sorted(set(found))


def test_the_static_check_tells_guarded_from_unguarded():
    def uses(source):
        return unguarded_uses(ast.parse(textwrap.dedent(source)))

    assert uses('user = f"{os.getuid()}:{os.getgid()}"') == [1]
    assert uses("if not hasattr(os, 'getuid'):\n    os.getuid()") == [2]
    assert uses("x = os.getuid() if hasattr(os, 'getuid') else None") == []
    assert uses("x = hasattr(os, 'geteuid') and os.geteuid() == 0") == []
    assert uses("if hasattr(os, 'getuid'):\n    x = os.getuid()\nelse:\n    x = os.getgid()") == [4]
    assert uses("try:\n    x = os.getuid()\nexcept AttributeError:\n    x = None") == []
    assert uses("from os import getuid") == [1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_no_code_cell_calls_os_getuid_unguarded(path):
    problems = [f"{path.name}, cell {cell.get('id')}, line {line}"
                for cell, tree in code_cells(path) for line in unguarded_uses(tree)]
    assert not problems, "os.getuid and kin used without a guard (Windows has none):\n" + \
        "\n".join(problems)


def _uses_posix_id(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr in POSIX_IDS
               and isinstance(n.value, ast.Name) and n.value.id == "os" for n in ast.walk(node))


def guarded_cells(path) -> list[str]:
    """The ids of the code cells that use os.getuid and kin, or a name a guarded expression of
    them sets (``AS_ME = f"{os.getuid()}:..." if hasattr(os, "getuid") else None``)."""
    parsed = list(code_cells(path))
    derived = {target.id for _, tree in parsed for node in ast.walk(tree)
               if isinstance(node, ast.Assign) and isinstance(node.value, (ast.IfExp, ast.BoolOp))
               and _uses_posix_id(node.value)
               for target in node.targets if isinstance(target, ast.Name)}
    return [cell.get("id") for cell, tree in parsed
            if _uses_posix_id(tree) or any(isinstance(n, ast.Name) and n.id in derived
                                           for n in ast.walk(tree))]


WITH_GUARDS = [path for path in NOTEBOOKS if guarded_cells(path)]


@pytest.mark.docker
@pytest.mark.parametrize("path", WITH_GUARDS, ids=lambda path: path.stem)
def test_cells_with_guarded_calls_run_without_posix(path, client):
    """The notebook's parameters, setup, every cell that guards a call, then its cleanup."""
    notebook = nbformat.read(path, as_version=4)
    wanted = {"setup", "cleanup", *guarded_cells(path)}
    namespace = f"lt{uuid.uuid4().hex[:10]}"
    cells = [(cell.get("id"), cell.source) for cell in notebook.cells
             if cell.cell_type == "code" and ("parameters" in cell.metadata.get("tags", [])
                                              or cell.get("id") in wanted)]
    assert [cell_id for cell_id, _ in cells][-1] == "cleanup"
    result = without_posix(f"""
        import contextlib, io, json, traceback
        scope = {{}}
        ran, failure = [], None
        for cell_id, source in {cells!r}:
            if cell_id == "parameters":
                source += "\\nNAMESPACE = {namespace!r}\\n"
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(source, cell_id, "exec"), scope)
                ran.append(cell_id)
            except Exception:
                failure = f"cell {{cell_id}}: " + traceback.format_exc(limit=3)
                if cell_id != "cleanup":  # still remove what the cells made, then stop
                    with contextlib.suppress(Exception), \
                            contextlib.redirect_stdout(io.StringIO()):
                        exec(compile({cells[-1][1]!r}, "cleanup", "exec"), scope)
                break
        print(json.dumps({{"ran": ran, "failure": failure}}))
    """)
    assert result["failure"] is None, result["failure"]
    assert result["ran"] == [cell_id for cell_id, _ in cells]

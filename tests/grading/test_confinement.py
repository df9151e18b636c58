"""What a confined kernel cannot do, shown as root on real kernels: gain privileges through a
setuid program or a device node, read the checkout beyond the graders package, or be reached
on its channels by another submission's user."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import builders as b
import pytest
from conftest import ROOT

from graders import confinement
from graders.preprocessors import ExecuteParameterized
from graders.settings import BUSYBOX_IMAGE

pytestmark = [pytest.mark.docker, pytest.mark.skipif(
    not confinement.available(), reason="confinement needs root on Linux")]
NAMESPACE, OTHER = "confine00001", "confine00002"
NOBODY = 65534
CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


class _Grading(ExecuteParameterized):
    """Grading as usual, which calls ``beside(self)`` just before the probe cell: the grader's
    side, while the confined kernel runs."""

    beside = None

    def preprocess_cell(self, cell, resources, index):
        if cell.get("id") == "probe" and self.beside:
            self.beside(self)
        return super().preprocess_cell(cell, resources, index)


def _execute(scratch: Path, probe: str, beside=None, **parameters):
    """Grade the mini assignment's course cells (which import graders.lab) and ``probe``, whose
    printed JSON is returned."""
    nb = b.mini_source()
    nb.cells = [c for c in nb.cells if c.id in ("parameters", "setup")]
    nb = b.with_added_cell(nb, textwrap.dedent(probe), "probe")
    execute = _Grading(timeout=30, namespace=NAMESPACE, scratch_dir=str(scratch),
                       parameters={"NAMESPACE": NAMESPACE, "BUSYBOX_IMAGE": BUSYBOX_IMAGE,
                                   "SCRATCH": str(scratch), **parameters})
    execute.beside = beside
    nb, _ = execute.preprocess(nb, {"metadata": {"path": str(scratch)}})
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    return json.loads(b.cell_text(nb, "probe"))


PRIVILEGES = """\
    import json, os, subprocess

    status = open("/proc/self/status").read().splitlines()
    mounts = [line.split() for line in open("/proc/self/mountinfo")]
    found = {
        "no_new_privs": next(line.split()[1] for line in status if line.startswith("NoNewPrivs")),
        "scratch_mount": [m[5] for m in mounts if m[4] == SCRATCH][-1],
        "euid": [subprocess.run([p, "-u"], capture_output=True, text=True).stdout.strip()
                 for p in SETUID],
    }
    try:
        open(DEVICE, "rb").close()
        found["device"] = "opened"
    except OSError as error:
        found["device"] = type(error).__name__
    print(json.dumps(found))
"""


@pytest.fixture
def open_folder():
    """A folder in /tmp that every user can enter, on a mount that honours setuid bits."""
    folder = Path(tempfile.mkdtemp(prefix="course-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def _setuid_id(folder: Path) -> Path:
    """A copy of id(1) that is setuid root, as a container running as root can leave one."""
    copy = folder / "id"
    shutil.copy("/usr/bin/id", copy)
    copy.chmod(0o4755)
    return copy


def _as_nobody(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, user=NOBODY, group=NOBODY, extra_groups=[],
                          capture_output=True, text=True, check=False)


def _device(folder: Path) -> Path:
    """A device node anyone may open (/dev/null's numbers), as such a container can make."""
    node = folder / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    node.chmod(0o666)
    return node


def test_setuid_programs_and_device_nodes_give_the_kernel_nothing(tmp_path, open_folder,
                                                                   no_leftovers):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    setuid = [_setuid_id(scratch), _setuid_id(open_folder)]
    # Outside the kernel both work for an unprivileged user: the test can fail.
    assert not os.statvfs(open_folder).f_flag & os.ST_NOSUID
    assert _as_nobody([str(setuid[1]), "-u"]).stdout.strip() == "0"
    assert _as_nobody(["cat", str(_device(open_folder))]).returncode == 0

    found = _execute(scratch, PRIVILEGES, SETUID=[str(p) for p in setuid],
                     DEVICE=str(_device(scratch)))
    assert found["no_new_privs"] == "1"
    assert {"nosuid", "nodev", "rw"} <= set(found["scratch_mount"].split(","))
    assert found["euid"] == [str(confinement.Confinement(NAMESPACE, scratch).uid)] * 2
    assert found["device"] == "PermissionError"


CHECKOUT = """\
    import json, os
    import graders.lab

    def attempt(action):
        try:
            return action()
        except OSError as error:
            return type(error).__name__

    found = {"listing": os.listdir(ROOT), "lab": graders.lab.__file__,
             "git_head": attempt(lambda: open(os.path.join(ROOT, ".git", "HEAD")).read())}
    for name in (".git", "source", "examples", "tests"):
        found[name] = attempt(lambda: os.listdir(os.path.join(ROOT, name)))
    with open(os.path.join(SCRATCH, "written"), "w") as file:
        file.write("kept")
    print(json.dumps(found))
"""


@pytest.fixture(params=["closed-folder", "checkout", "tmp"])
def scratch(request, tmp_path):
    """A scratch folder under a folder others cannot enter (pytest's), under the checkout's
    work/ (a course folder there), or in /tmp (as the worker makes it)."""
    if request.param == "closed-folder":
        folder = tmp_path / "scratch"
        folder.mkdir()
    elif request.param == "checkout":
        made = not (ROOT / "work").exists()
        (ROOT / "work").mkdir(exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="scratch-", dir=ROOT / "work"))
    else:
        folder = Path(tempfile.mkdtemp(prefix="course-test-"))
    yield folder
    shutil.rmtree(folder)
    if request.param == "checkout" and made:
        (ROOT / "work").rmdir()


def test_the_kernel_sees_only_the_graders_package_of_the_checkout(tmp_path, scratch,
                                                                 no_leftovers):
    found = _execute(scratch, CHECKOUT, ROOT=str(ROOT))
    assert found["lab"] == str(ROOT / "graders" / "lab.py")
    assert "graders" in found["listing"]
    assert set(found["listing"]) <= {"graders", ".venv", "work"}, found["listing"]
    for name in ("git_head", ".git", "source", "examples", "tests"):
        assert found[name] in ("FileNotFoundError", "PermissionError", []), (name, found[name])
    assert (scratch / "written").read_text() == "kept"


CONNECT = """\
import json, socket, sys
found = []
for path in sys.argv[1:]:
    try:
        socket.socket(socket.AF_UNIX).connect(path)
        found.append("connected")
    except OSError as error:
        found.append(type(error).__name__)
print(json.dumps(found))
"""


def _connect_as_another_submission(tmp_path: Path, paths: list[str]) -> list[str]:
    """Try each Unix socket from another submission's confined user, as its kernel would."""
    other = confinement.Confinement(OTHER, tmp_path / "other")
    other.scratch.mkdir()
    other.prepare()
    try:
        result = subprocess.run(other.wrap([sys.executable, "-c", CONNECT, *paths]),
                                capture_output=True, text=True, timeout=60, check=True)
    finally:
        other.end()
    return json.loads(result.stdout)


def test_no_other_user_can_connect_to_a_kernels_channels(tmp_path, no_leftovers):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    seen = {}

    def beside(execute):
        info = execute.kc.get_connection_info()
        assert info["transport"] == "ipc", info
        seen["paths"] = [f"{info['ip']}-{info[f'{channel}_port']}" for channel in CHANNELS]
        seen["sockets"] = [stat.S_ISSOCK(os.stat(path).st_mode) for path in seen["paths"]]
        seen["other"] = _connect_as_another_submission(tmp_path, seen["paths"])

    found = _execute(scratch, 'print(\'{"ran": true}\')', beside=beside)
    assert found == {"ran": True}
    assert seen["sockets"] == [True] * len(CHANNELS)
    assert seen["other"] == ["PermissionError"] * len(CHANNELS)
    assert not Path(seen["paths"][0]).parent.exists()  # the channel folder goes at the end

"""The grading worker's side of a judge: start its process, run cells in it, relay its calls.

``Judge`` keeps one judge process per submission (graders.judging.process). It runs the course
cells (taken from the instructor's source notebook, never from the submission) and every grade
cell, and relays each call the judge makes of a learner's function to ``LearnerKernel``. What
comes back for a grade cell is a ``Verdict``: whether its checks held, decided in the judge.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .codec import dumps, loads
from .learner import KernelStuck, LearnerKernel

#: How long a judge process may take to start (imports included).
START_TIMEOUT = 60.0


class JudgeFailed(Exception):
    """The judge process broke or outlived a cell's time limit: it judges nothing more."""


@dataclass
class Verdict:
    """A grade cell's result, decided outside the learner's kernel."""

    score: float
    max_score: float
    error: str = ""


@dataclass
class JudgedCell:
    outputs: list[dict] = field(default_factory=list)
    error: dict | None = None


class Judge:
    """One submission's judge process."""

    def __init__(self, docker_host: str, confinement=None, workdir: str = "") -> None:
        self.docker_host = docker_host
        self.confinement = confinement
        self.workdir = workdir
        self.learner: LearnerKernel | None = None
        self.process: subprocess.Popen | None = None
        self.broken = ""
        self._log = tempfile.TemporaryFile()
        self._to = self._from = None

    def start(self) -> None:
        to_judge_r, to_judge_w = os.pipe()
        from_judge_r, from_judge_w = os.pipe()
        arguments = [str(to_judge_r), str(from_judge_w)]
        if self.workdir:
            arguments.append(f"--workdir={self.workdir}")
        if self.confinement is not None:
            command = self.confinement.wrap_module("graders.judging.process",
                                                   [*arguments, "--confined"])
        else:
            command = [sys.executable, "-I", "-m", "graders.judging.process", *arguments]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        try:
            self.process = subprocess.Popen(command, pass_fds=(to_judge_r, from_judge_w),
                                            stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=self._log,
                                            env=env, cwd="/")
        finally:
            os.close(to_judge_r)
            os.close(from_judge_w)
        self._to = os.fdopen(to_judge_w, "w", encoding="utf-8")
        self._from = from_judge_r
        self._pending = b""
        ready = self._receive(time.monotonic() + START_TIMEOUT)
        if ready.get("op") != "ready":
            self._fail(f"the judge did not start: {ready.get('reason', ready)}")

    def attach(self, learner: LearnerKernel) -> None:
        self.learner = learner

    def run(self, source: str, name: str, learner_names: list[str],
            seconds: float) -> JudgedCell:
        """Run one cell in the judge; raises JudgeFailed if the judge cannot answer in time."""
        if self.broken:
            raise JudgeFailed(self.broken)
        deadline = time.monotonic() + seconds
        self._send({"op": "run", "source": source, "name": name, "learner": learner_names})
        printed: list[dict] = []
        while True:
            message = self._receive(deadline)
            if message.get("op") == "ran":
                outputs = [{"name": "stdout", "text": message.get("stdout", "")},
                           *printed, {"name": "stderr", "text": message.get("stderr", "")}]
                return JudgedCell([o for o in outputs if o["text"]], message.get("error"))
            if message.get("op") == "call":
                self._relay(message, deadline, printed)
                continue
            self._fail(f"the judge sent {message.get('op')!r}")

    def _relay(self, message: dict, deadline: float, printed: list[dict]) -> None:
        """Ask the learner's kernel; the call's own limit (if any) within the cell's."""
        remaining = max(0.5, deadline - time.monotonic())
        asked = message.get("timeout")
        seconds = min(float(asked), remaining) if isinstance(asked, (int, float)) else remaining
        if self.learner is None:
            self._send({"op": "broken", "reason": "no learner kernel"})
            return
        try:
            answer, output = self.learner.call(message["name"], message["args"],
                                               message["kwargs"], seconds, self._callback)
        except KernelStuck as error:
            self._send({"op": "broken", "reason": str(error)})
            return
        if answer["op"] == "timeout" and asked is not None:
            answer["seconds"] = asked
        printed.extend(output)
        self._send(answer)

    def _callback(self, question: dict) -> dict:
        """The learner's kernel called a function the judge passed: run it in the judge."""
        self._send({"op": "callback", "id": question.get("callback", -1),
                    "args": question.get("args", []), "kwargs": question.get("kwargs", {})})
        message = self._receive(time.monotonic() + 120)
        if message.get("op") == "callback-returned":
            return {"value": message.get("value")}
        return {"raised": message.get("error", {})}

    def _send(self, message: dict) -> None:
        try:
            self._to.write(dumps(message) + "\n")
            self._to.flush()
        except (BrokenPipeError, OSError):
            self._fail("the judge process ended")

    def _receive(self, deadline: float) -> dict:
        """The judge's next message (one JSON line), or JudgeFailed once ``deadline`` passes."""
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail("the judge ran out of time")
            ready, _, _ = select.select([self._from], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(self._from, 1 << 20)
                if not chunk:
                    self._fail("the judge process ended" + self._last_words())
                self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        try:
            return loads(line)
        except ValueError:
            self._fail("the judge sent something unreadable")

    def _last_words(self) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip().splitlines()
        return f": {text[-1][:300]}" if text else ""

    def _fail(self, reason: str):
        self.broken = reason
        self.stop()
        raise JudgeFailed(reason)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self._to.write(dumps({"op": "stop"}) + "\n")
                self._to.flush()
                self.process.wait(2)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.process.kill()
                self.process.wait(5)
        if self.learner is not None:
            self.learner.close()
            self.learner = None
        if self._to is not None:
            try:
                self._to.close()
            except OSError:
                pass
            os.close(self._from)
            self._to = self._from = None


def course_cells(source_notebook: Path) -> dict[str, dict]:
    """The source notebook's locked and grade code cells by grade id: what a judge runs."""
    import nbformat

    notebook = nbformat.read(str(source_notebook), as_version=4)
    cells = {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (meta.get("locked") or meta.get("grade")) \
                and not meta.get("solution"):
            cells[meta["grade_id"]] = {"source": cell.source, "grade": bool(meta.get("grade")),
                                       "points": float(meta.get("points", 0) or 0)}
    return cells


def learner_names(source_notebook: Path) -> list[str]:
    """The names the learner's solution cells define at top level: what a judge calls."""
    import ast

    import nbformat

    notebook = nbformat.read(str(source_notebook), as_version=4)
    names: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        for node in ast.parse(cell.source).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.append(node.name)
    return names

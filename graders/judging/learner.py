"""The grading worker's line to the learner's kernel: call one function, get data back.

A call is an ordinary execute request that runs ``graders.judging.kernel_side.answer`` in the
notebook's namespace; its answer comes back as a user expression (text), so nothing but data
ever leaves the kernel. A callable argument is answered over the kernel's stdin channel. A call
that outlives its time limit interrupts the kernel.
"""

from __future__ import annotations

import ast
import json
import queue
import time
from collections.abc import Callable

from jupyter_client import BlockingKernelClient

from .codec import dumps, loads

REPLY = "_course_judge_reply"
#: How long an interrupted call may take to give up before the kernel counts as stuck.
INTERRUPT_GRACE = 5.0


class KernelStuck(Exception):
    """The learner's kernel did not answer, even once interrupted: no call can reach it."""


class LearnerKernel:
    """Calls the learner's functions in one running kernel."""

    def __init__(self, connection_info: dict, interrupt: Callable[[], None]) -> None:
        self.client = BlockingKernelClient()
        self.client.load_connection_info(connection_info)
        self.client.start_channels()
        self.interrupt = interrupt
        self.stuck = False

    def close(self) -> None:
        self.client.stop_channels()

    def call(self, name: str, args, kwargs, seconds: float,
             on_callback: Callable[[dict], dict]) -> tuple[dict, list[dict]]:
        """The learner's answer (``returned``, ``raised`` or ``timeout``) and what it printed."""
        if self.stuck:
            raise KernelStuck("the learner's kernel stopped answering")
        payload = dumps({"args": args, "kwargs": kwargs})
        code = (f"{REPLY} = __import__('graders.judging.kernel_side', fromlist=['answer'])"
                f".answer(globals(), {name!r}, {payload!r})")
        msg_id = self.client.execute(code, silent=False, store_history=False,
                                     user_expressions={"r": REPLY}, allow_stdin=True)
        deadline = time.monotonic() + seconds
        printed: list[dict] = []
        interrupted_at = None
        while True:
            self._collect(msg_id, printed)
            now = time.monotonic()
            if interrupted_at is None and now > deadline:
                self.interrupt()
                interrupted_at = now
            if interrupted_at is not None and now > interrupted_at + INTERRUPT_GRACE:
                self.stuck = True
                raise KernelStuck(f"{name} did not return within {seconds:g} s, and the "
                                  "learner's kernel did not stop when interrupted")
            question = self._question(msg_id)
            if question is not None:
                self.client.input(dumps(on_callback(question)))
                continue
            reply = self._reply(msg_id)
            if reply is None:
                continue
            self._collect(msg_id, printed)
            if interrupted_at is not None:
                return {"op": "timeout", "seconds": seconds}, printed
            return _answer(reply), printed

    def _question(self, msg_id: str) -> dict | None:
        try:
            message = self.client.get_stdin_msg(timeout=0.01)
        except queue.Empty:
            return None
        if message["parent_header"].get("msg_id") != msg_id:
            return None
        try:
            return loads(message["content"]["prompt"])
        except (ValueError, TypeError, KeyError):
            return {"callback": -1, "args": [], "kwargs": {}}

    def _reply(self, msg_id: str) -> dict | None:
        try:
            message = self.client.get_shell_msg(timeout=0.02)
        except queue.Empty:
            return None
        if message["parent_header"].get("msg_id") != msg_id:
            return None
        return message["content"]

    def _collect(self, msg_id: str, printed: list[dict]) -> None:
        """What the learner's function printed, as stream outputs for the grade cell."""
        while True:
            try:
                message = self.client.get_iopub_msg(timeout=0)
            except queue.Empty:
                return
            if message["parent_header"].get("msg_id") == msg_id \
                    and message["msg_type"] == "stream":
                content = message["content"]
                printed.append({"name": str(content.get("name")), "text": str(content.get("text"))})


def _answer(reply: dict) -> dict:
    """The call's outcome from the execute reply; anything malformed is the learner's doing."""
    try:
        expression = reply["user_expressions"]["r"]
        text = ast.literal_eval(expression["data"]["text/plain"])
        answer = json.loads(text)
    except (KeyError, TypeError, ValueError, SyntaxError, MemoryError, RecursionError):
        return {"op": "raised", "error": {"module": "builtins", "type": "RuntimeError",
                                          "message": "the learner's kernel gave no answer",
                                          "args": []}}
    if isinstance(answer, dict) and "returned" in answer:
        return {"op": "returned", "value": answer["returned"]}
    if isinstance(answer, dict) and isinstance(answer.get("raised"), dict):
        return {"op": "raised", "error": answer["raised"]}
    return {"op": "raised", "error": {"module": "builtins", "type": "RuntimeError",
                                      "message": "the learner's kernel gave no answer",
                                      "args": []}}

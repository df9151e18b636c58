"""The judge's own process: ``python -m graders.judging.process IN_FD OUT_FD``.

It runs the course's cells (settings, setup, and every grade cell with its hidden tests) in a
namespace of its own, where each of the learner's functions is a ``Learner`` stand-in: calling
one asks the grading worker, over the pipes, to call the real function in the learner's kernel,
and gives back what it returned, rebuilt from data. No code of the learner's ever runs here.

Started confined, it runs as the submission's user (so files and ids look as they do to the
learner's kernel) but is not dumpable from its first instruction: a process of that user can
neither trace it nor open its memory or pipes (see graders.confine).
"""

from __future__ import annotations

import builtins
import ctypes
import io
import os
import queue
import sys
import threading
import traceback
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from .codec import Decoder, Encoder, dumps, encode_exception, loads, rebuild_exception

PR_GET_DUMPABLE = 3


class Channel:
    """The judge's end of the pipes to the grading worker: one call at a time.

    One thread reads the pipe and sorts what comes: the worker's requests (run a cell, stop)
    for the main loop, everything else for the call under way, which a test may have made from
    a thread of its own (and given up waiting for) while the main loop goes on.
    """

    def __init__(self, incoming: io.TextIOBase, outgoing: io.TextIOBase) -> None:
        self.incoming, self.outgoing = incoming, outgoing
        self.lock = threading.RLock()
        self.sending = threading.Lock()
        self.callbacks: list = []
        self.requests: queue.Queue = queue.Queue()
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, name="judge-channel", daemon=True).start()

    def _read(self) -> None:
        for line in self.incoming:
            message = loads(line)
            (self.requests if message.get("op") in ("run", "stop") else self.replies).put(message)
        self.requests.put({"op": "stop"})  # the worker is gone
        self.replies.put({"op": "broken", "reason": "the grading worker is gone"})

    def send(self, message: dict) -> None:
        with self.sending:
            self.outgoing.write(dumps(message) + "\n")
            self.outgoing.flush()

    def request(self) -> dict:
        return self.requests.get()

    def receive(self) -> dict:
        return self.replies.get()

    def call(self, name: str, args: tuple, kwargs: dict, seconds: float | None,
             client: Any) -> Any:
        """Call the learner's ``name``; answer the learner's callbacks meanwhile."""
        with self.lock:
            encode = Encoder(callback=self._remember, default_client=client)
            self.send({"op": "call", "name": name, "args": encode(list(args)),
                       "kwargs": encode(kwargs), "timeout": seconds})
            decode = Decoder(client=client, make_client=_client)
            while True:
                message = self.receive()
                if message["op"] == "callback":
                    self._answer_callback(message, decode)
                elif message["op"] == "returned":
                    return decode(message["value"])
                elif message["op"] == "raised":
                    raise rebuild_exception(message["error"])
                elif message["op"] == "timeout":
                    raise TimeoutError(f"{name} did not return within {message['seconds']} s")
                else:
                    raise RuntimeError(f"the learner's kernel could not be asked: "
                                       f"{message.get('reason', message['op'])}")

    def _remember(self, function) -> int:
        self.callbacks.append(function)
        return len(self.callbacks) - 1

    def _answer_callback(self, message: dict, decode: Decoder) -> None:
        encode = Encoder()
        try:
            function = self.callbacks[int(message["id"])]
            value = function(*decode(message["args"]), **decode(message["kwargs"]))
            self.send({"op": "callback-returned", "value": encode(value)})
        except Exception as error:
            self.send({"op": "callback-raised", "error": encode_exception(error, encode)})


class Learner:
    """Stands for one of the learner's functions in the judge's namespace."""

    def __init__(self, name: str, channel: Channel, namespace: dict) -> None:
        self.__name__ = self.__qualname__ = name
        self._channel, self._namespace = channel, namespace

    def __call__(self, *args, **kwargs):
        return self.call_within(None, *args, **kwargs)

    def call_within(self, seconds: float | None, *args, **kwargs):
        """Call it with a time limit the worker enforces in the learner's kernel."""
        return self._channel.call(self.__name__, args, kwargs, seconds,
                                  self._namespace.get("client"))

    def __repr__(self) -> str:
        return f"<the learner's function {self.__name__}>"


def _client(base_url: str, timeout: Any, version: Any, handle: Any = None):
    import docker

    return docker.DockerClient(base_url=base_url or os.environ.get("DOCKER_HOST"),
                               timeout=timeout or 60, version=version or None)


def run_cell(source: str, name: str, namespace: dict) -> dict:
    """Execute one cell; what it printed and the error it ended with, if any."""
    out, err = io.StringIO(), io.StringIO()
    error = None
    try:
        code = compile(source, f"<cell {name}>", "exec")
        with redirect_stdout(out), redirect_stderr(err):
            exec(code, namespace)
    except BaseException as raised:  # the cell's verdict: reported, never fatal to the judge
        error = _described(raised)
    return {"op": "ran", "stdout": out.getvalue(), "stderr": err.getvalue(), "error": error}


def _described(raised: BaseException) -> dict:
    """A cell's error as output data, even from an exception that fails to show itself."""
    try:
        return {"ename": type(raised).__name__, "evalue": str(raised)[:4000],
                "traceback": traceback.format_exception_only(type(raised), raised)}
    except Exception as failure:
        text = f"{type(raised).__name__} (which could not be shown: {type(failure).__name__})"
        return {"ename": type(raised).__name__, "evalue": text, "traceback": [text]}


def serve(channel: Channel) -> None:
    namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
    while True:
        request = channel.request()
        if request["op"] == "run":
            for name in request.get("learner", []):
                namespace[name] = Learner(name, channel, namespace)
            channel.send(run_cell(request["source"], request["name"], namespace))
        elif request["op"] == "stop":
            return


def main(argv: list[str]) -> None:
    incoming = os.fdopen(int(argv[1]), "r", encoding="utf-8")
    outgoing = os.fdopen(int(argv[2]), "w", encoding="utf-8")
    flags = argv[3:]
    confined = "--confined" in flags
    for flag in flags:
        if flag.startswith("--workdir="):  # the assignment's files, as beside nbgrader's tests
            os.chdir(flag.removeprefix("--workdir="))
    if confined and ctypes.CDLL(None).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
        outgoing.write(dumps({"op": "broken", "reason": "the judge is dumpable"}) + "\n")
        return
    sys.stdin = open(os.devnull)
    channel = Channel(incoming, outgoing)
    channel.send({"op": "ready", "pid": os.getpid()})
    serve(channel)


if __name__ == "__main__":
    main(sys.argv)

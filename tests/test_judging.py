"""The judge's boundary: values cross as plain data, and the judge process is out of the
submission's reach."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
from docker.errors import ContainerError, NotFound

from graders import confinement
from graders.judging.codec import (
    Decoder,
    Encoder,
    LearnerError,
    Opaque,
    dumps,
    encode_exception,
    loads,
    rebuild_exception,
)
from graders.judging.judge import Judge


def crossed(value):
    """``value`` as the other side rebuilds it, through JSON."""
    return Decoder()(loads(dumps(Encoder()(value))))


def test_plain_values_cross_unchanged():
    value = {"text": "é", "n": 3, "x": 1.5, "flag": True, "none": None, "list": [1, [2]],
             "bytes": b"\x00\xff", "tuple": (1, "a"), "set": {1, 2}, "path": Path("/tmp/a"),
             3: "an int key", "$": "the tag as a key"}
    assert crossed(value) == value
    assert type(crossed((1, 2))) is tuple and type(crossed(Path("/a"))) is type(Path("/a"))


def test_named_tuples_and_iterators_keep_their_shape():
    Result = collections.namedtuple("ExecResult", "exit_code output")
    result = crossed(Result(0, b"hi"))
    assert result.exit_code == 0 and result.output == b"hi"
    assert list(crossed(iter([1, 2]))) == [1, 2]


class AlwaysEqual:
    def __eq__(self, other):
        return True

    __hash__ = None


class SneakyString(str):
    def __eq__(self, other):
        return True


def test_a_learners_object_arrives_as_an_opaque_stand_in_equal_to_nothing():
    forged = crossed(AlwaysEqual())
    assert isinstance(forged, Opaque)
    assert forged != "anything" and forged != forged.__class__
    assert crossed(SneakyString("no")) != "yes" and type(crossed(SneakyString("x"))) is str


def test_known_exceptions_are_rebuilt_with_their_attributes():
    error = ContainerError("c", 3, ["sh"], "busybox", b"broken\n")
    rebuilt = rebuild_exception(loads(dumps(encode_exception(error, Encoder()))))
    assert isinstance(rebuilt, ContainerError)
    assert rebuilt.exit_status == 3 and rebuilt.stderr == b"broken\n"
    response = __import__("requests").Response()
    response.status_code = 404
    missing = rebuild_exception(encode_exception(NotFound("gone", response=response), Encoder()))
    assert isinstance(missing, NotFound) and missing.status_code == 404


def test_an_http_error_is_rebuilt_whole_and_can_be_shown():
    """An HTTPError is also a file: one made without its __init__ fails even to print its
    traceback, which would end the judge in the middle of a verdict."""
    import traceback
    import urllib.error

    error = urllib.error.HTTPError("http://127.0.0.1:5000/v2/_catalog?n=100000", 400,
                                   "Bad Request", None, None)
    rebuilt = rebuild_exception(loads(dumps(encode_exception(error, Encoder()))))
    assert isinstance(rebuilt, urllib.error.HTTPError)
    assert (rebuilt.code, rebuilt.msg) == (400, "Bad Request")
    assert "HTTP Error 400" in "".join(traceback.format_exception_only(type(rebuilt), rebuilt))


def test_a_url_error_is_rebuilt_as_an_os_error_with_its_reason():
    import urllib.error

    error = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    rebuilt = rebuild_exception(loads(dumps(encode_exception(error, Encoder()))))
    assert isinstance(rebuilt, urllib.error.URLError) and isinstance(rebuilt, OSError)
    assert "Connection refused" in str(rebuilt)


def test_other_exceptions_become_learner_errors():
    class Mine(Exception):
        pass

    rebuilt = rebuild_exception(encode_exception(Mine("boom"), Encoder()))
    assert isinstance(rebuilt, LearnerError) and "boom" in str(rebuilt)


def test_a_client_keeps_one_handle_and_the_same_daemon_travels_as_here(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/judge-door.sock")
    here = docker.DockerClient(base_url="unix:///tmp/judge-door.sock", version="1.41")
    other = docker.DockerClient(base_url="tcp://127.0.0.1:1", version="1.41")
    encode = Encoder()
    assert encode(here)["base_url"] is None
    assert encode(other)["base_url"] == "tcp://127.0.0.1:1"
    assert encode(other)["handle"] == encode(other)["handle"] != encode(here)["handle"]


@pytest.mark.skipif(not confinement.available(), reason="confinement needs root")
def test_the_submission_user_cannot_reach_into_its_judge(tmp_path):
    """Same user as the kernel, yet no trace, no /proc/PID/fd and no memory: the judge is not
    dumpable from its first instruction."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    jail = confinement.Confinement("nsjudgereach", scratch)
    jail.prepare()
    judge = Judge("", jail)
    judge.start()
    try:
        pid = judge.process.pid  # confine drops privileges and runs the judge in-process
        assert _owner(pid) == jail.uid
        probe = ("import os, sys\n"
                 "for path in sys.argv[1:]:\n"
                 "    try:\n"
                 "        os.listdir(path) if path.endswith('fd') else open(path, 'rb').read(1)\n"
                 "        print('reached', path)\n"
                 "    except OSError as error:\n"
                 "        print('refused', path, error.errno)\n")
        paths = [f"/proc/{pid}/fd", f"/proc/{pid}/mem", f"/proc/{pid}/environ"]
        found = subprocess.run(jail.wrap([sys.executable, "-c", probe, *paths]),
                               capture_output=True, text=True, cwd="/")
        assert found.stdout.count("refused") == 3, found.stdout + found.stderr
    finally:
        judge.stop()
        jail.end()


def _owner(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1


class SlowLearner:
    """Stands for the learner's kernel: answers each call after a pause, and can call back."""

    def __init__(self) -> None:
        self.calls = 0

    def call(self, name, args, kwargs, seconds, on_callback):
        self.calls += 1
        time.sleep(0.8)
        if name == "calls_back":
            answer = on_callback({"callback": args[0]["id"], "args": [], "kwargs": {}})
            return {"op": "returned", "value": answer.get("value")}, []
        return {"op": "returned", "value": self.calls}, [{"name": "stdout", "text": "hi\n"}]

    def close(self) -> None:
        pass


def run_in_judge(*cells: str, names: list[str]):
    """Run cells one after the other in one judge; what the last one ended with."""
    judge = Judge("", None)
    judge.start()
    judge.attach(SlowLearner())
    try:
        return [judge.run(source, f"cell-{n}", names, 20) for n, source in enumerate(cells)][-1]
    finally:
        judge.stop()


def test_a_call_given_up_in_a_thread_does_not_confuse_the_next_cell():
    """The first cell stops waiting for its call and ends; the answer to that call arrives
    while the judge already waits for the next cell, which must get its own answer."""
    for _attempt in range(3):
        judged = run_in_judge(
            "import concurrent.futures\n"
            "late = concurrent.futures.ThreadPoolExecutor(1).submit(slow)\n"
            "try:\n"
            "    late.result(timeout=0.2)\n"
            "except concurrent.futures.TimeoutError:\n"
            "    pass\n",
            "assert slow() == 2, 'the second call did not get its own answer'\n",
            names=["slow"])
        assert judged.error is None, judged.error


def test_a_callable_argument_is_called_back_in_the_judge():
    judged = run_in_judge("assert calls_back(lambda: 'from the judge') == 'from the judge'\n",
                          names=["calls_back"])
    assert judged.error is None, judged.error


def test_a_failing_check_is_the_verdict():
    judged = run_in_judge("assert slow() == 99, 'wrong answer'\n", names=["slow"])
    assert judged.error["ename"] == "AssertionError" and "wrong answer" in judged.error["evalue"]

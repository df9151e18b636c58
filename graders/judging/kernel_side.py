"""What runs in the learner's kernel when a judge calls a learner's function.

The judge sends the function's name and its arguments as data; this calls the function from
the notebook's own namespace and sends back, as data, what it returned or raised. Nothing here
is trusted: the learner's code can replace any of it, and can only ever change what data comes
back, which the judge checks against the daemon itself.
"""

from __future__ import annotations

import builtins
import os
from typing import Any

import docker

from .codec import Decoder, Encoder, dumps, encode_exception, loads


def _ask_judge(number: int):
    """A callable argument: calling it asks the judge (over the kernel's stdin channel) to run
    its own function and waits for the answer."""

    def callback(*args, **kwargs):
        encode = Encoder()
        question = dumps({"callback": number, "args": encode(list(args)),
                          "kwargs": encode(kwargs)})
        reply = loads(builtins.input(question))
        if "raised" in reply:
            from .codec import rebuild_exception

            raise rebuild_exception(reply["raised"])
        return Decoder()(reply.get("value"))

    return callback


def answer(namespace: dict, name: str, payload: str) -> str:
    """Call ``namespace[name]`` with the arguments in ``payload``; the outcome as JSON."""
    client = namespace.get("client")
    request = loads(payload)
    decode = Decoder(client=client, make_client=_client, callback=_ask_judge)
    encode = Encoder(default_client=client)
    try:
        function = namespace[name]
        value = function(*decode(request["args"]), **decode(request["kwargs"]))
        return dumps({"returned": encode(value)})
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # whatever the learner's code raised is part of the answer
        return dumps({"raised": encode_exception(error, encode)})


#: The kernel's client for each client the judge passed, by the judge's handle: one judge
#: client stays one client here across calls, with what it holds (say, a login's credentials).
_clients: dict[int, docker.DockerClient] = {}


def _this_daemon() -> str:
    """This kernel's own way to the daemon (its gatekeeper, at grading time)."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _client(base_url: str, timeout: Any, version: Any, handle: Any = None) -> docker.DockerClient:
    if isinstance(handle, int) and handle in _clients:
        return _clients[handle]
    client = docker.DockerClient(base_url=base_url or _this_daemon(), timeout=timeout or 60,
                                 version=version or None)
    if isinstance(handle, int):
        _clients[handle] = client
    return client

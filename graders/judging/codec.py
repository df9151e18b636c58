"""Values as plain JSON across the boundary between a judge and the learner's kernel.

A judge never receives an object the learner's code made: what a learner's function returns
arrives as JSON and is rebuilt from the judge's side alone. Strings, numbers, lists and plain
dicts travel as themselves; everything else as a tagged object ``{"$": kind, ...}``. A Docker
object travels as its kind and id only, and each side looks it up through its own client, so
no attribute the learner's code set survives the trip. A learner's object of any other type
arrives as an ``Opaque`` stand-in that equals nothing but itself.
"""

from __future__ import annotations

import base64
import collections
import datetime
import itertools
import json
import os
import pathlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any

TAG = "$"
#: Docker SDK model classes by the kind they travel as.
MODELS = {"Container": "container", "Image": "image", "Volume": "volume", "Network": "network"}
#: Where a learner's exception may be rebuilt from; any other becomes a LearnerError.
EXCEPTION_MODULES = ("builtins", "docker.errors", "requests.exceptions", "socket", "urllib.error")


class Opaque:
    """Something the learner returned that has no plain form: its type name and repr only."""

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.text}>"


class LearnerError(Exception):
    """The learner's function raised an exception of a type the judge does not rebuild."""


class Encoder:
    """Turns a value into JSON-ready data; ``callback`` names a callable argument (judge side)."""

    def __init__(self, callback: Callable[[Callable], int] | None = None,
                 default_client: Any = None) -> None:
        self.callback = callback
        self.default_client = default_client

    def __call__(self, value: Any, depth: int = 0) -> Any:
        if depth > 50:
            return {TAG: "opaque", "type": "deep", "repr": "nested too deep"}
        down = depth + 1
        kind = type(value)
        if value is None or kind in (bool, int, float, str):
            return value
        if isinstance(value, bool):
            return bool(value)
        for plain in (int, float, str):
            if isinstance(value, plain):  # a subclass: its plain value only
                return plain(value) if plain is not str else str.__str__(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return {TAG: "bytes", "v": base64.b64encode(bytes(value)).decode()}
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return {TAG: "namedtuple", "type": kind.__name__, "fields": list(value._fields),
                    "v": [self(item, down) for item in value]}
        if isinstance(value, tuple):
            return {TAG: "tuple", "v": [self(item, down) for item in value]}
        if isinstance(value, list):
            return [self(item, down) for item in value]
        if isinstance(value, (set, frozenset)):
            return {TAG: "set", "v": [self(item, down) for item in value]}
        if isinstance(value, dict):
            if all(type(key) is str and key != TAG for key in value):
                return {key: self(item, down) for key, item in value.items()}
            return {TAG: "dict", "v": [[self(k, down), self(v, down)] for k, v in value.items()]}
        if isinstance(value, pathlib.PurePath):
            return {TAG: "path", "v": str(value)}
        if isinstance(value, datetime.datetime):
            return {TAG: "datetime", "v": value.isoformat()}
        model = self._model(value)
        if model is not None:
            return model
        if isinstance(value, Iterator):
            return {TAG: "iterator", "v": [self(item, down) for item in value]}
        if callable(value) and self.callback is not None:
            return {TAG: "callback", "id": self.callback(value)}
        return {TAG: "opaque", "type": f"{kind.__module__}.{kind.__qualname__}",
                "repr": _safe_repr(value)}

    def _model(self, value: Any) -> dict | None:
        for klass in type(value).__mro__:
            if klass.__module__.startswith("docker.") and klass.__name__ in MODELS \
                    and hasattr(value, "id"):
                return {TAG: "model", "kind": MODELS[klass.__name__], "id": str(value.id)}
            if klass.__module__ == "docker.client" and klass.__name__ == "DockerClient":
                if value is self.default_client:
                    return {TAG: "client", "default": True}
                api = value.api
                address = _docker_url(api)
                here = address == os.environ.get("DOCKER_HOST")  # each side has its own door
                return {TAG: "client", "base_url": None if here else address,
                        "handle": _handle(value), "timeout": api.timeout,
                        "version": api._version}
        return None


_handles: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_next_handle = itertools.count(1)


def _handle(client: Any) -> int:
    """A number for this client object for as long as it lives (an id() is reused after)."""
    if client not in _handles:
        _handles[client] = next(_next_handle)
    return _handles[client]


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)[:200]
    except Exception:  # a learner's __repr__ may raise anything
        return "?"


def _docker_url(api: Any) -> str:
    """The address a client was made with: docker-py keeps a Unix socket's path in its adapter
    and shows ``http+docker://localhost`` instead."""
    socket_path = getattr(getattr(api, "_custom_adapter", None), "socket_path", None)
    if api.base_url.startswith("http+docker://") and socket_path:
        return f"unix://{socket_path}"
    return api.base_url.replace("http://", "tcp://", 1)


class Decoder:
    """Rebuilds values from data; Docker objects through ``client``, callbacks through
    ``callback`` (learner side)."""

    def __init__(self, client: Any = None, make_client: Callable[..., Any] | None = None,
                 callback: Callable[[int], Callable] | None = None) -> None:
        self.client = client
        self.make_client = make_client
        self.callback = callback

    def __call__(self, data: Any) -> Any:
        if isinstance(data, list):
            return [self(item) for item in data]
        if not isinstance(data, dict):
            return data
        tag = data.get(TAG)
        if tag is None:
            return {key: self(item) for key, item in data.items()}
        items = [self(item) for item in data.get("v", [])] if tag != "bytes" else None
        if tag == "bytes":
            return base64.b64decode(data["v"])
        if tag == "tuple":
            return tuple(items)
        if tag == "namedtuple":
            fields = [str(name) for name in data["fields"]]
            return collections.namedtuple(str(data["type"]), fields, rename=True)(*items)
        if tag == "set":
            return set(_hashable(item) for item in items)
        if tag == "dict":
            return {_hashable(key): value for key, value in items}
        if tag == "iterator":
            return iter(items)
        if tag == "path":
            return pathlib.Path(data["v"])
        if tag == "datetime":
            return datetime.datetime.fromisoformat(data["v"])
        if tag == "model":
            return self._model(str(data["kind"]), str(data["id"]))
        if tag == "client":
            if data.get("default"):
                return self.client
            address = data.get("base_url")
            return self.make_client(base_url=None if address is None else str(address),
                                    timeout=data.get("timeout"),
                                    version=data.get("version"), handle=data.get("handle"))
        if tag == "callback" and self.callback is not None:
            return self.callback(int(data["id"]))
        return Opaque(str(data.get("type", "?")), str(data.get("repr", "")))

    def _model(self, kind: str, ident: str):
        from docker.errors import NotFound

        collection = getattr(self.client, f"{kind}s")
        try:
            return collection.get(ident)
        except NotFound:  # gone meanwhile (say, auto-removed): its id, nothing else
            return collection.prepare_model({"Id": ident})


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


PLAIN = (str, int, float, bool, type(None), bytes)


def encode_exception(error: BaseException, encode: Encoder) -> dict:
    """An exception as data: its class, message, plain arguments and plain attributes (a
    ContainerError's exit_status and stderr, an APIError's status_code)."""
    kind = type(error)
    attributes = {name: encode(value) for name, value in vars(error).items()
                  if type(value) in PLAIN and not name.startswith("_")}
    status = getattr(getattr(error, "response", None), "status_code", None)
    if type(status) is int:
        attributes["status_code"] = status
    return {"module": kind.__module__, "type": kind.__qualname__, "message": _safe_str(error),
            "args": [encode(arg) for arg in error.args if type(arg) in PLAIN],
            "attributes": attributes}


def _safe_str(value: Any) -> str:
    try:
        return str(value)[:2000]
    except Exception:
        return "?"


def rebuild_exception(data: dict) -> BaseException:
    """The learner's exception as a judge can catch it: the same class where it is a known one
    (ValueError, docker.errors.NotFound, TimeoutError...), else a LearnerError."""
    import importlib

    module, name = str(data.get("module", "")), str(data.get("type", ""))
    message = str(data.get("message", ""))
    decode = Decoder()
    if module in EXCEPTION_MODULES:
        try:
            klass = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            klass = None
        if isinstance(klass, type) and issubclass(klass, Exception):
            error = _rebuilt(klass, data, message, decode)
            if error is not None:
                return error
    return LearnerError(f"{module}.{name}: {message}")


def _rebuilt(klass: type, data: dict, message: str, decode: Decoder) -> BaseException | None:
    """An instance of ``klass`` carrying the data, or None if it would not behave as an
    exception (one that cannot be shown would take the judge down when its test fails)."""
    import traceback
    import urllib.error

    attributes = {str(k): decode(v) for k, v in dict(data.get("attributes", {})).items()}
    status = attributes.pop("status_code", None)
    try:
        if issubclass(klass, urllib.error.HTTPError):  # a file-like object: its own __init__
            error = klass(str(attributes.get("url", attributes.get("filename", ""))),
                          attributes.get("code"), str(attributes.get("msg", message)), None, None)
        elif issubclass(klass, urllib.error.URLError):  # shows its reason, an exception itself
            reason = attributes.get("reason", message.removeprefix("<urlopen error ")
                                    .removesuffix(">"))
            error = klass(reason)
        else:
            error = klass.__new__(klass)  # its __init__ may want objects data cannot carry
            args = [decode(arg) for arg in data.get("args", [])]
            Exception.__init__(error, *(args or [message]))
            error.__dict__.update(attributes)
        if type(status) is int and hasattr(klass, "status_code"):
            _give_response(error, status)
        repr(error), str(error)
        traceback.format_exception_only(type(error), error)
    except Exception:
        return None
    return error


def _give_response(error: BaseException, status: int) -> None:
    """An APIError's status code lives in its HTTP response: give it one with that code."""
    import requests

    response = requests.Response()
    response.status_code = status
    error.response = response


def dumps(data: Any) -> str:
    return json.dumps(data, allow_nan=True)


def loads(text: str) -> Any:
    return json.loads(text)

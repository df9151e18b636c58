"""Known ways a submission forges its verdict, each as code a student would put in a cell.

Each family runs in the learner's kernel before the grade cells, and works wherever the grade
cells run in that kernel (nbgrader's way): wrapping IPython's cell runner, a custom exception
handler, an input transformer that disarms ``assert``, rewriting the kernel's outgoing messages,
hiding tracebacks, functions that return objects equal to anything, a docker-py that shows
fakes, frame tricks that rewrite the caller's names, and attacks on a judge process from the
kernel. ``tampered`` puts one into a notebook; the tampering suite and the benchmark grade
them beside the same notebook untampered, which must score the same.
"""

from __future__ import annotations

import copy

import nbformat

#: Makes learner functions, once defined, return an object that equals anything and claims
#: to be an instance of any class; shared by the families that need a forged value.
_EVERYTHING = '''
class _Everything:
    """Equal to anything, true, callable, iterable, indexable, and of every class."""
    __class__ = property(lambda self: _Everything._claimed)
    _claimed = object
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __le__(self, other): return True
    def __ge__(self, other): return True
    def __lt__(self, other): return True
    def __gt__(self, other): return True
    def __contains__(self, item): return True
    def __bool__(self): return True
    def __hash__(self): return 0
    def __call__(self, *args, **kwargs): return self
    def __getattr__(self, name): return self
    def __getitem__(self, key): return self
    def __iter__(self): return iter([self, self, self])
    def __len__(self): return 3
    def __int__(self): return 0
    def __index__(self): return 0
    def __float__(self): return 0.0
    def __str__(self): return ""
    def __add__(self, other): return self
    __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __add__
import builtins as _builtins
_real_isinstance = _builtins.isinstance
def _isinstance(value, classes):
    return True if type(value).__name__ == "_Everything" else _real_isinstance(value, classes)
_builtins.isinstance = _isinstance
'''

#: Wraps each of the learner's functions, once defined: one still unsolved (it raises
#: NotImplementedError) returns FORGED instead, a solved one keeps working (``_inside``
#: counts the learner's calls under way, so forgeries can leave the learner's own work alone).
_FORGE_UNSOLVED = '''
import functools as _functools
_inside = [0]
def _forging(function):
    @_functools.wraps(function)
    def forged(*args, **kwargs):
        _inside[0] += 1
        try:
            return function(*args, **kwargs)
        except NotImplementedError:
            return FORGED
        finally:
            _inside[0] -= 1
    forged._forged = True
    return forged
def _forge(result):
    names = get_ipython().user_ns
    for _name, _value in list(names.items()):
        if callable(_value) and getattr(_value, "__module__", "") == "__main__" \\
                and not _name.startswith("_") and not getattr(_value, "_forged", False) \\
                and not _real_isinstance(_value, type):
            names[_name] = _forging(_value)
get_ipython().events.register("post_run_cell", _forge)
'''

FAMILIES: dict[str, str] = {
    "cell-runner": '''
_ip = get_ipython()
_run = _ip.run_cell  # what ipykernel calls for a cell without top-level await
def _forgiving(raw_cell, *args, **kwargs):
    body = "".join("    " + line + "\\n" for line in raw_cell.splitlines()) or "    pass\\n"
    return _run("try:\\n" + body + "except BaseException:\\n    pass\\n", *args, **kwargs)
_ip.run_cell = _forgiving
''',
    "exception-handler": '''
get_ipython().set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)
''',
    "input-transformer": '''
import re as _re
def _disarm(lines):
    return [_re.sub(r"^(\\s*)assert\\b", r"\\1assert True or ", line) for line in lines]
get_ipython().input_transformers_post.append(_disarm)
''',
    "outgoing-messages": '''
_session = get_ipython().kernel.session
_send = _session.send
def _clean_send(stream, msg_or_type, content=None, *args, **kwargs):
    kind = msg_or_type if isinstance(msg_or_type, str) else msg_or_type.get("msg_type")
    if kind == "error" or (kind == "stream" and (content or {}).get("name") == "stderr"):
        return None
    if kind == "execute_reply" and (content or {}).get("status") == "error":
        content = {"status": "ok", "execution_count": content.get("execution_count"),
                   "user_expressions": content.get("user_expressions", {}), "payload": []}
    return _send(stream, msg_or_type, content, *args, **kwargs)
_session.send = _clean_send
''',
    "hidden-tracebacks": '''
_ip = get_ipython()
_ip.showtraceback = lambda *args, **kwargs: None
_ip._showtraceback = lambda *args, **kwargs: None
''',
    "always-equal": _EVERYTHING + _FORGE_UNSOLVED.replace("FORGED", "_Everything()"),
    "fake-docker": _EVERYTHING + '''
import docker as _docker
from docker.errors import NotFound as _NotFound
def _real_or_fake(method):
    """What the tests look up: the real object if there is one, else a fake."""
    def lookup(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _NotFound:
            if globals().get("_inside", [0])[0]:
                raise
            return _Everything()
    return lookup
for _collection in (_docker.models.containers.ContainerCollection,
                    _docker.models.images.ImageCollection,
                    _docker.models.volumes.VolumeCollection,
                    _docker.models.networks.NetworkCollection):
    _collection.get = _real_or_fake(_collection.get)
''' + _FORGE_UNSOLVED.replace("FORGED", "_Everything()"),
    "frame-tricks": _EVERYTHING + '''
import sys as _sys
def _rewrite_callers():
    frame = _sys._getframe(2)
    while frame is not None:
        names = frame.f_globals
        if "client" in names and names is not globals():
            names["client"] = _Everything()
            names["remove_container"] = lambda *a, **k: None
        frame = frame.f_back
    return _Everything()
''' + _FORGE_UNSOLVED.replace("FORGED", "_rewrite_callers()"),
    "attack-judge": '''
import json as _json, os as _os, threading as _threading, time as _time
def _forge_judges():
    """Write 'passed' into the pipes of every judge process this user can find; read its memory."""
    forged = _json.dumps({"op": "ran", "stdout": "", "stderr": "", "error": None}) + "\\n"
    while _os.getuid() != 0:  # never as root: the suite must not touch the grading host
        for pid in filter(str.isdigit, _os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    if b"graders.judging" not in handle.read():
                        continue
                for fd in _os.listdir(f"/proc/{pid}/fd"):
                    if _os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:"):
                        descriptor = _os.open(f"/proc/{pid}/fd/{fd}", _os.O_WRONLY | _os.O_NONBLOCK)
                        _os.write(descriptor, forged.encode())
                        _os.close(descriptor)
                with open(f"/proc/{pid}/mem", "rb"):
                    pass
            except OSError:
                pass
        _time.sleep(0.05)
_threading.Thread(target=_forge_judges, daemon=True).start()
''',
}


def tampered(notebook: nbformat.NotebookNode, family: str) -> nbformat.NotebookNode:
    """A copy of ``notebook`` whose first solution cell starts with the family's code."""
    forged = copy.deepcopy(notebook)
    for cell in forged.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = FAMILIES[family].strip() + "\n\n" + cell.source
            return forged
    raise ValueError("the notebook has no solution cell to tamper with")

"""The worker's side of grading: the connection to the judge, and the stand-ins for the course's references.

Inside the sandbox a submission's kernel has no reference implementation. Each is a stand-in that asks the
judge to compute it (that is how an unfinished notebook still runs on the fallbacks), and the judge refuses
while the learner's own function is being judged, so a function cannot borrow the answer. Learner objects that
are not plain data (functions, caches of their own kind) stay here and travel as handles.
"""

import functools
import itertools
import os
import socket
import sys
from pathlib import Path

from utils.check import channel, wire

_COURSE = str(Path(__file__).resolve().parents[2])  # the course's code inside the sandbox
_LIBRARY_DIRS = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})


def _learners_line(filename):
    """Frames worth showing a learner: their own cells and files, not the course's code or a library's."""
    if filename.startswith(_COURSE) or "site-packages" in filename or filename.startswith(_LIBRARY_DIRS):
        return False
    return os.path.isabs(filename) or filename.startswith("<")


class JudgeObject:
    """A stand-in for an object the judge keeps (a callback, or parameters a callback updates)."""

    def __init__(self, link, tree):
        self._link, self._id = link, tree.get("id")
        self._kind, self._callable = str(tree.get("kind", "an object"))[:100], bool(tree.get("callable"))
        self.__name__ = str(tree.get("name", "callback"))[:100]

    def __call__(self, *args, **kwargs):
        if not self._callable:
            raise TypeError(f"{self._kind} is not callable")
        return self._link.request("callback", {"target": self, "args": list(args), "kwargs": kwargs})

    def __getattr__(self, name):
        raise TypeError(f"This object ({self._kind}) stays with the checker while your code is graded: pass it on "
                        "unchanged (for example `params` to loss_fn) instead of reading it.")

    def __repr__(self):
        return f"<{self._kind} kept by the checker>"


class Link:
    """The kernel's one connection to the judge (a connected socket), opened at the first check and kept."""

    def __init__(self, sock):
        self.sock = sock
        self.objects, self._ids, self.depth = {}, itertools.count(1), 0
        self.chan = channel.Channel(self.sock, self, self._answer,
                                    lambda exc: channel.error_record(exc, _learners_line))

    # the codec for this side
    def encode(self, value):
        return wire.encode(value, self._other)

    def _other(self, value):
        if isinstance(value, wire.ByHandle):
            value = value.value
        elif isinstance(value, JudgeObject):
            return {"$": "handle", "id": value._id}
        elif getattr(value, "__course_reference__", None):
            return {"$": "ref", "name": value.__course_reference__}
        hid = f"w{next(self._ids)}"
        self.objects[hid] = value
        return {"$": "handle", "id": hid, "kind": _kind(value), "name": str(getattr(value, "__name__", ""))[:100],
                "callable": callable(value)}

    def decode(self, tree, blobs, table):
        return wire.decode(tree, blobs, table, self._handle, reference_proxy)

    def _handle(self, tree):
        hid = tree.get("id")
        if isinstance(hid, str) and hid.startswith("w"):
            if hid not in self.objects:
                raise wire.WireError("a handle to an object that is gone")
            return self.objects[hid]
        if isinstance(hid, str) and hid.startswith("j"):
            return JudgeObject(self, tree)
        raise wire.WireError("a malformed handle")

    def request(self, op, body):
        """A request to the judge; the objects handed out for it are let go once the outermost one returns."""
        self.depth += 1
        try:
            return self.chan.request(op, body)
        finally:
            self.depth -= 1
            if self.depth == 0:
                self.objects.clear()

    def _answer(self, op, body):
        """The judge's requests: call one of this side's objects, or read one of its attributes."""
        target = body.get("target") if isinstance(body, dict) else None
        if op == "call":
            args, kwargs = list(body.get("args", [])), dict(body.get("kwargs", {}))
            value = target(*args, **kwargs)
            return {"value": value, "args": args}  # the arguments as the call left them: changes in place show
        if op == "vjp":  # run a PyTorch function and backpropagate here, where its graph lives (battery.call_vjp)
            from utils.check.vjp import backpropagate, leaf_inputs

            args = list(body.get("args", []))
            wrt = [(int(p), str(n)) for p, n in body.get("wrt", [])]
            leaves = leaf_inputs(args, wrt)
            value = target(*args)
            return {"value": value, "grads": backpropagate(value, leaves, list(body.get("cotangents", []))),
                    "args": args}
        if op == "getattr":
            return {"value": getattr(target, str(body.get("name")))}
        raise wire.WireError(f"an unknown request {op!r}")


def _kind(value):
    if callable(value) and hasattr(value, "__name__"):
        return "a function"
    return f"an object of class {type(value).__name__}"


_LINK = None


def link():
    global _LINK
    if _LINK is None:
        path = os.environ.get("COURSE_JUDGE_SOCKET")
        if not path:
            raise RuntimeError("These checks only run while a notebook is graded (COURSE_JUDGE_SOCKET is not set).")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        _LINK = Link(sock)
    return _LINK


@functools.cache
def reference_proxy(name, by_handle=()):
    """The stand-in for the reference `name` (a qualified name): calling it asks the judge to compute it.

    by_handle: positions of arguments that must stay here as handles (callbacks and the parameters they update).
    """

    def proxy(*args, **kwargs):
        args = [wire.ByHandle(a) if i in by_handle else a for i, a in enumerate(args)]
        return link().request("reference", {"name": name, "args": args, "kwargs": kwargs})

    proxy.__course_reference__ = name
    proxy.__name__ = proxy.__qualname__ = name.rsplit(".", 1)[-1]
    proxy.__module__ = name.rsplit(".", 1)[0]
    return proxy


def proxied(name, by_handle=()):
    """Decorator for the stand-ins written into the sandbox's copy of the course: keeps the name, signature and
    docstring of the reference, and computes it in the judge."""

    def wrap(stub):
        return functools.wraps(stub)(reference_proxy(name, tuple(by_handle)))

    return wrap

"""The judge: grades one submission whose code it never runs.

The submission's notebook runs in a sandboxed worker (`sandbox.py`). Each `check(...)` there asks the judge,
over a socket, to judge a function that stays in the worker; the judge runs the exercise's own tests (`core.run`)
and calls the function through the channel with its own inputs, data in and data out, and keeps the verdict. So
nothing the submission prints, writes, patches or returns decides a grade except the values its functions
return to the judge's own tests. While a function is judged, the stand-ins for the course's references in the
worker are refused (save those the exercise is built on), so a function cannot borrow the answer; outside
judging, they are computed here, which is how an unfinished notebook still runs to the end.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import channel, core, sandbox, wire


class Refused(Exception):
    """A reference the submission may not use while one of its functions is judged."""


class Remote:
    """The judge's stand-in for an object that stays in the worker: a learner's function, or a value of theirs
    that is not plain data. Calling it calls the object there. It exposes no attributes of the learner's object:
    numpy and the comparisons only ever see the plain data that calls return."""

    passes_handles = True  # battery.call hands it the arguments to keep as handles, not as copies

    def __init__(self, session, tree):
        self._session, self._id = session, tree.get("id")
        self._course_kind = str(tree.get("kind", "an object"))[:100]
        self._callable = bool(tree.get("callable"))
        self.__name__ = str(tree.get("name") or "fn")[:100]

    def __call__(self, *args, **kwargs):
        if not self._callable:
            raise TypeError(f"{self._course_kind} is not a function")
        return self._session.call(self, args, kwargs)

    def vjp(self, args, wrt, cotangents):
        """Call the worker's function and backpropagate there: (outputs, gradients), as battery.call_vjp."""
        return self._session.call(self, args, {}, op="vjp", wrt=[list(w) for w in wrt], cotangents=cotangents)

    def attribute(self, name):
        """One attribute of the worker's object, as plain data or another stand-in (explicitly, never implicitly)."""
        return self._session.chan.request("getattr", {"target": self, "name": name},
                                          timeout=self._session.time_left())["value"]

    def __deepcopy__(self, memo):
        return self

    def __repr__(self):
        return f"<{self._course_kind} in the submission>"


class _Codec:
    """Encoding for the judge's side: its own callbacks and kept values travel as handles ("j..."), the worker's
    come back as Remote stand-ins, and a reference name becomes a Reference marker."""

    def __init__(self, session):
        self.session, self.objects, self._next = session, {}, 0

    def encode(self, value):
        return wire.encode(value, self._other)

    def _other(self, value):
        if isinstance(value, Remote):
            return {"$": "handle", "id": value._id}
        if isinstance(value, wire.ByHandle):
            value = value.value
        self._next += 1
        hid = f"j{self._next}"
        self.objects[hid] = value
        return {"$": "handle", "id": hid, "kind": "a function" if callable(value) else "an object",
                "name": getattr(value, "__name__", ""), "callable": callable(value)}

    def decode(self, tree, blobs, table):
        return wire.decode(tree, blobs, table, self._handle, wire.Reference)

    def _handle(self, tree):
        hid = tree.get("id")
        if isinstance(hid, str) and hid.startswith("j"):
            if hid not in self.objects:
                raise wire.WireError("a handle to an object that is gone")
            return self.objects[hid]
        if isinstance(hid, str) and hid.startswith("w"):
            return Remote(self.session, tree)
        raise wire.WireError("a malformed handle")


def _sync(before, after):
    """Copy the worker's changes to an argument back onto the object that was passed, as an in-place change
    would have changed it in one process: so `battery.call` sees what the learner's function did to its inputs."""
    if hasattr(before, "load_state_dict") and type(after) is type(before):  # a course module handed to the learner
        before.load_state_dict(after.state_dict())
    elif isinstance(before, np.ndarray) and isinstance(after, np.ndarray):
        if before.shape == after.shape and before.flags.writeable:
            np.copyto(before, after, casting="unsafe")
    elif type(before).__module__.startswith("torch") and type(after) is type(before):
        if before.shape == after.shape:
            before.data.copy_(after)
    elif isinstance(before, list) and isinstance(after, list):
        if len(before) == len(after):
            for i, (b, a) in enumerate(zip(before, after, strict=True)):
                if isinstance(b, np.ndarray | list | dict) or type(b).__module__.startswith("torch"):
                    _sync(b, a)
                else:
                    before[i] = a
        else:
            before[:] = after
    elif isinstance(before, dict) and isinstance(after, dict):
        for k in list(before):
            if k not in after:
                del before[k]
        for k, a in after.items():
            if k in before and isinstance(before[k], np.ndarray | list | dict):
                _sync(before[k], a)
            else:
                before[k] = a


def _allowed(ex):
    """The references a function may call while `ex` is judged: those of the exercises it is built on (and, for
    a backward pass, its forward and what that is built on), never its own."""
    names, stack = set(), list(ex.uses) + ([ex.forward_name] if ex.is_backward else [])
    while stack:
        name = stack.pop()
        if name in names or name == ex.name:
            continue
        names.add(name)
        stack += list(core.get(name).uses)
    allowed = {core.qualname(core.get(n).reference) for n in names}
    return allowed | ({core.qualname(ex.forward)} if ex.is_backward else set())


def _references():
    """Every function the worker may ask the judge to compute, by qualified name."""
    import importlib

    table = {core.qualname(ex.reference): ex.reference for ex in core.exercises()}
    table.update({core.qualname(ex.forward): ex.forward for ex in core.exercises() if ex.is_backward})
    for module in sandbox.reference_modules():
        mod = importlib.import_module(module)
        for name in sandbox.proxied_functions(module):
            table[f"{module}.{name}"] = getattr(mod, name)
    return table


class Session:
    """One submission's exchanges with the judge: the verdicts it earned and what it tried that was refused."""

    def __init__(self, deadline):
        self.deadline, self.codec, self.chan = deadline, _Codec(self), None
        self.verdicts, self.attempts = {}, []
        self.judging, self.callback_failure = None, None
        self.references = _references()
        self.exchanges = {"judge": 0, "reference": 0, "callback": 0, "call": 0}  # how busy the channel was

    def time_left(self):
        return max(0.5, self.deadline - time.monotonic())

    def serve(self, conn, still_running):
        """Answer the worker's requests on one connection until it closes, the worker ends or time runs out."""
        self.chan = channel.Channel(conn, self.codec, self.handle,  # the judge's own frames stay private
                                    lambda exc: channel.error_record(exc, lambda filename: False))
        while time.monotonic() < self.deadline and still_running():
            try:
                self.chan.serve_one(timeout=0.5)
            except TimeoutError:
                continue
            except (ConnectionError, OSError):
                return
            except wire.WireError as exc:
                self.attempts.append(f"broke the grading protocol ({exc}); its connection was closed")
                return

    # --- requests from the worker ----------------------------------------------------------------------------

    def handle(self, op, body):
        if not isinstance(body, dict):
            raise wire.WireError("a request without a body")
        if op in self.exchanges:
            self.exchanges[op] += 1
        if op == "judge":
            return self._judge(body)
        if op == "reference":
            return self._reference(body)
        if op == "callback":
            return self._callback(body)
        raise wire.WireError(f"an unknown request {op!r}")

    def _judge(self, body):
        if self.judging is not None:
            raise RuntimeError("check() cannot be called from inside a function that is being checked.")
        name = body.get("exercise")
        ex = core.get(name)
        fn, forward, seed = body.get("fn"), body.get("forward"), body.get("seed")
        if isinstance(forward, wire.Reference):
            forward = self._resolve(forward.name)
        if forward is not None and not ex.is_backward:
            forward = None
        if isinstance(fn, wire.Reference):
            result = core.Result(name, core.FAILED, [(t, "not run") for t, _ in ex.tests],
                                 detail=f"That is the course's own {fn.name}, not an implementation of yours.",
                                 reference=core.qualname(ex.reference), pair=ex.is_backward)
        else:
            self.judging, self.callback_failure = ex, None
            try:
                result = core.run(name, fn, seed=seed if isinstance(seed, int) else None, forward=forward)
            finally:
                self.judging = None
        if body.get("record") is True:
            self.verdicts[name] = {"exercise": name, "status": result.status, "message": result.message}
        self.codec.objects.clear()
        return {"exercise": name, "status": result.status, "message": result.message, "seed": result.seed,
                "html": result._repr_html_()}

    def _resolve(self, name):
        if name not in self.references:
            raise Refused(f"{name} is not part of the course.")
        return self.references[name]

    def _reference(self, body):
        name = body.get("name")
        fn = self._resolve(name)
        if self.judging is not None and name not in _allowed(self.judging):
            short = name.rsplit(".", 1)[-1]
            self.attempts.append(f"called the course's {name} while {self.judging.name} was judged (refused)")
            raise Refused(f"The course's {short} is not available while your {self.judging.name} is judged: a "
                          f"function is graded on what it computes itself.")
        args, kwargs = body.get("args", []), body.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise wire.WireError("malformed arguments")
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    def _callback(self, body):
        target, args, kwargs = body.get("target"), body.get("args", []), body.get("kwargs", {})
        if isinstance(target, Remote) or not callable(target):
            raise wire.WireError("a callback that the judge did not hand out")
        if not isinstance(args, list) or not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise wire.WireError("malformed arguments")
        try:
            return target(*args, **kwargs)
        except BaseException as exc:
            self.callback_failure = self.callback_failure or exc
            raise

    # --- calls into the worker -------------------------------------------------------------------------------

    def call(self, remote, args, kwargs, op="call", **extra):
        """Call the worker's object: its result, after copying its changes to the arguments back onto them
        (op "vjp": the result and the gradients the worker backpropagated)."""
        self.callback_failure = None
        self.exchanges["call"] += 1
        try:
            reply = self.chan.request(op, {"target": remote, "args": list(args), "kwargs": kwargs, **extra},
                                      timeout=self.time_left())
        except channel.RemoteError as err:
            if self.callback_failure is not None:  # a callback of the check stopped the learner's code
                raise self.callback_failure from None
            if err.type_name == "NotImplementedError":
                raise NotImplementedError(err.message) from None
            raise
        if not isinstance(reply, dict) or "value" not in reply:
            raise wire.WireError("a reply without a value")
        after = reply.get("args")
        if isinstance(after, list) and len(after) == len(args):
            for before, changed in zip(args, after, strict=True):
                if not isinstance(before, wire.ByHandle | Remote):
                    _sync(before, changed)
        if op == "vjp":
            grads = reply.get("grads")
            if grads is not None and (not isinstance(grads, list) or len(grads) != len(extra["wrt"])):
                raise wire.WireError("gradients that do not match what was asked")
            return reply["value"], grads
        return reply["value"]


# --- one submission ----------------------------------------------------------------------------------------------

LIMITS = {"processes": None, "memory": 6 << 30, "cpu": None}


def _tail(path, limit=65536):
    """The end of a file the worker wrote, read without trusting its size."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - limit))
        return f.read().decode("utf-8", "replace")


def grade(path, expected, timeout, fast, course, job=0, sandboxed=True):
    """Run the notebook at `path` in a worker and judge its exercises; returns the CLI's report dict.

    expected: the exercise names of the notebook, in order; course: the folder made by sandbox.build_course.
    """
    report = {"path": str(path), "status": "ok", "detail": "", "seconds": 0.0, "exercises": [], "attempts": [],
              "exchanges": {}}
    start = time.monotonic()
    deadline = start + timeout
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        shutil.copyfile(path, home / path.name)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(home / "judge.sock"))
        server.listen(4)
        server.settimeout(0.2)
        os.chmod(home / "judge.sock", 0o666)
        inside = "/tmp/home" if sandboxed else str(home)
        env = {"HOME": inside, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(course)
               if not sandboxed else "/course", "COURSE_FAST": "1" if fast else "0", "MPLBACKEND": "Agg",
               "COURSE_JUDGE_SOCKET": f"{inside}/judge.sock", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
               "JUPYTER_RUNTIME_DIR": f"{inside}/.jupyter", "IPYTHONDIR": f"{inside}/.ipython",
               "MPLCONFIGDIR": f"{inside}/.matplotlib", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
               "OMP_WAIT_POLICY": "PASSIVE"}  # --jobs N workers share the cores: spinning threads would starve them
        worker = [sys.executable, "-m", "utils.check.execute", f"{inside}/{path.name}", str(timeout)]
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        if sandboxed:
            if os.geteuid() == 0:
                uid = sandbox.sandbox_uid(job)
                for p in (home, home / path.name):
                    os.chown(p, uid, uid)
            limits = {"processes": sandbox.process_limit(job), "memory": LIMITS["memory"], "cpu": int(timeout * 4)}
            cmd, cwd, run_env = sandbox.command(worker, home, course, env, limits, job), tmp, {"PATH": "/usr/bin:/bin"}
        else:
            cmd, cwd, run_env = worker, home, env
        session = Session(deadline)
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(cmd, cwd=cwd, env=run_env, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                    start_new_session=True)
            try:
                while proc.poll() is None and time.monotonic() < deadline:
                    try:
                        conn, _ = server.accept()
                    except TimeoutError:
                        continue
                    with conn:
                        session.serve(conn, lambda: proc.poll() is None)
            finally:
                timed_out = proc.poll() is None
                if timed_out:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                server.close()
        report["seconds"] = round(time.monotonic() - start, 1)
        errors = _tail(err).strip().splitlines()
        if timed_out:
            report.update(status="timeout", detail=f"still running after {timeout} s; stopped")
        elif proc.returncode != 0:
            last = (errors or ["no output"])[-1][:300]
            report.update(status="crashed", detail=f"the notebook could not be run: {last}")
        else:
            try:  # the runner's own account of its cells: it only sets the notebook's status line, never a grade
                cells = json.loads(_tail(out).strip().splitlines()[-1])["errors"]
            except (ValueError, KeyError, IndexError, TypeError):
                cells = [{"cell": "?", "ename": "unreadable", "evalue": "the runner's report could not be read"}]
            if cells:
                e = cells[0] if isinstance(cells[0], dict) else {}
                report.update(status="raised", detail=f"{len(cells)} cell(s) raised; first: code cell "
                              f"{e.get('cell')}: {e.get('ename')}: {str(e.get('evalue'))[:200]}")
    report["attempts"], report["exchanges"] = session.attempts, session.exchanges
    if session.attempts:
        report["detail"] = "; ".join(filter(None, [report["detail"], "refused: " + "; ".join(session.attempts[:3])]))
    for name in expected + [n for n in session.verdicts if n not in expected]:
        report["exercises"].append(session.verdicts.get(name, {
            "exercise": name, "status": "not run", "message": "the notebook never reached this exercise's check"}))
    return report


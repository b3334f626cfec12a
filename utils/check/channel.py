"""Requests and replies between the judge and a submission's worker, over one socket, nested as calls are.

Either side may send a request; while it waits for the reply it answers the other side's requests, which may
themselves send requests. So the judge calls a learner's function (a request to the worker), that function
calls a callback the judge handed it (a request back to the judge), and so on, all on one connection and one
thread per side, unwinding like the call stack it mirrors. Values travel in the format of `wire`.

This module is shared by both sides (it is copied into the sandbox with the worker).
"""

import itertools
import traceback

from . import wire


class RemoteError(Exception):
    """The other side's code raised: its exception's type name and message, and the lines of its code it passed
    through, as (file, line number, source line) triples (from the worker: the learner's own lines only)."""

    def __init__(self, type_name, message, frames=()):
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message, self.frames = type_name, message, list(frames)


def error_record(exc, keep_frame=lambda filename: True):
    """An exception as data: type name, message and the frames `keep_frame` keeps."""
    frames = [(f.filename, f.lineno, (f.line or "").strip())
              for f in traceback.extract_tb(exc.__traceback__) if keep_frame(f.filename)]
    if isinstance(exc, RemoteError):  # passed on from the other side: its description, and this side's lines
        return {"type": exc.type_name, "message": exc.message[:2000], "frames": (frames or exc.frames)[-20:]}
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "frames": frames[-20:]}


class Channel:
    """One side of the connection.

    codec: `encode(value) -> (tree, blobs)` and `decode(tree, blobs, table) -> value` for this side's handles;
    handler: `handler(op, body) -> value` answers the other side's requests (its exceptions go back as errors,
    described by `describe_error(exc)`); timeout: seconds to wait for any one message (None: no limit).
    """

    MAX_NESTING = 64  # requests inside requests; a call stack deeper than any honest exchange

    def __init__(self, sock, codec, handler, describe_error=error_record, timeout=None):
        self.sock, self.codec, self.handler, self.describe_error = sock, codec, handler, describe_error
        self.timeout, self._ids, self.depth = timeout, itertools.count(1), 0

    def _send(self, header, value):
        tree, blobs = self.codec.encode(value)
        header.update(body=tree, blobs=[len(b) for b in blobs])
        try:
            wire.send(self.sock, header, blobs)
        except OSError as exc:
            raise wire.WireError(f"the connection broke: {exc}") from None

    def _receive(self, timeout):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            header, data = wire.receive(self.sock)
        except TimeoutError:
            raise TimeoutError("no answer within the time allowed") from None
        if not isinstance(header, dict):
            raise wire.WireError("a message that is not an object")
        return header, data

    def _body(self, header, data):
        return self.codec.decode(header.get("body"), data, wire.blob_table(header.get("blobs", []), len(data)))

    def request(self, op, body=None, timeout=None):
        """Send a request and return the decoded reply, answering nested requests meanwhile."""
        rid = next(self._ids)
        self._send({"id": rid, "op": op}, body)
        while True:
            header, data = self._receive(timeout)
            if "reply" in header:
                if header["reply"] != rid:
                    raise wire.WireError("a reply to a request that was not waiting")
                error = header.get("error")
                if error is not None:
                    if not isinstance(error, dict):
                        raise wire.WireError("a malformed error")
                    frames = [tuple(f) for f in error.get("frames", []) if isinstance(f, list) and len(f) == 3]
                    raise RemoteError(str(error.get("type", "Exception"))[:100], str(error.get("message", ""))[:2000],
                                      frames[-20:])
                return self._body(header, data)
            self._answer(header, data)

    def serve_one(self, timeout=None):
        """Wait for one request from the other side and answer it (with its nested exchanges)."""
        header, data = self._receive(timeout)
        if "reply" in header:
            raise wire.WireError("a reply when no request was waiting")
        self._answer(header, data)

    def _answer(self, header, data):
        rid, op = header.get("id"), header.get("op")
        if not isinstance(rid, int) or not isinstance(op, str):
            raise wire.WireError("a request without an id or an operation")
        if self.depth >= self.MAX_NESTING:
            raise wire.WireError("requests nested too deeply")
        self.depth += 1
        try:
            value = self.handler(op, self._body(header, data))
        except (wire.WireError, TimeoutError, ConnectionError):
            raise
        except BaseException as exc:  # whatever the handler raised goes back as data
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._reply_error(rid, exc)
            return
        finally:
            self.depth -= 1
        try:
            self._send({"reply": rid}, value)
        except wire.WireError as exc:  # a value too large, or not data: the error goes back instead
            self._reply_error(rid, exc)

    def _reply_error(self, rid, exc):
        try:
            wire.send(self.sock, {"reply": rid, "error": self.describe_error(exc), "blobs": []})
        except OSError as err:
            raise wire.WireError(f"the connection broke: {err}") from None

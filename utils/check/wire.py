"""The data format between the grading judge and a submission's sandboxed worker.

A message is a JSON header plus raw binary blobs (the bytes of arrays), framed by two 8-byte lengths. Values
travel as plain data only: None, booleans, numbers, strings, bytes, lists, tuples, dicts, numpy arrays and
scalars of numeric dtypes, torch tensors, numpy random generators (their PCG64 state), and *handles*: opaque
names for objects that stay on the side that owns them (a learner's function or cache, a check's callback).
Decoding builds nothing but those types, checks every size against hard limits and never runs code from the
other side, so whatever a submission sends cannot execute in the judge, fool a comparison or exhaust its memory.

This module is shared by both sides (it is copied into the sandbox with the worker).
"""

import json
import math
import re
import struct

import numpy as np

MAX_HEADER = 16 << 20   # bytes of JSON in one message
MAX_BLOBS = 64 << 20    # bytes of array data in one message (the largest a course notebook sends is a few MB)
MAX_DEPTH = 48          # nesting of containers
MAX_ITEMS = 1_000_000   # values in one message
_DTYPE = re.compile(r"^[<>|=]?(b1|[iuf][1248]|f16|c8|c16)$")
_FRAME = struct.Struct("<QQ")


class WireError(Exception):
    """A message that breaks the format or its limits, or a connection that broke: the exchange cannot go on."""

    ends_grading = True  # core.run lets it through instead of turning it into one test's failure


class Handle:
    """An object that stays on its owner's side, named by `id` ("w..." for the worker's, "j..." for the judge's).

    `kind` and `name` describe it for messages ("a function", "rnn_forward"); `callable` says whether the
    other side may call it.
    """

    def __init__(self, id, kind="an object", name="", callable=False):
        self.id, self.kind, self.name, self.callable = id, kind, name, callable


class ByHandle:
    """Wraps a value that must stay on the sender's side and travel as a handle, even if it is plain data (a dict
    of parameters that a callback updates in place must stay one object, not become a copy)."""

    def __init__(self, value):
        self.value = value


class Reference:
    """A reference implementation named by its qualified name (`utils.layers.rnn_forward`): the worker has only
    a stand-in for it, so passing it sends the name, never code."""

    def __init__(self, name):
        self.name = name


def send(sock, header, blobs=()):
    data = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    total = sum(len(b) for b in blobs)
    if len(data) > MAX_HEADER or total > MAX_BLOBS:
        raise WireError(f"message too large ({len(data)} bytes of header, {total} of data)")
    sock.sendall(_FRAME.pack(len(data), total) + data)
    for blob in blobs:
        sock.sendall(blob)


def _receive_exactly(sock, n):
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def receive(sock):
    """(header, blobs bytes) of the next message, within the limits."""
    n_header, n_blobs = _FRAME.unpack(_receive_exactly(sock, _FRAME.size))
    if n_header > MAX_HEADER or n_blobs > MAX_BLOBS:
        raise WireError(f"message too large ({n_header} bytes of header, {n_blobs} of data)")
    try:
        header = json.loads(_receive_exactly(sock, n_header))
    except ValueError as exc:
        raise WireError(f"a header that is not JSON: {exc}") from None
    return header, _receive_exactly(sock, n_blobs) if n_blobs else b""


# --- encoding -----------------------------------------------------------------------------------------------

class Encoder:
    """Turns values into a JSON tree plus blobs. `other(value)` encodes what is not plain data (a handle or a
    reference marker); the same array object is sent once per message."""

    def __init__(self, other):
        self.other, self.blobs, self._size, self._seen = other, [], 0, {}

    def _blob(self, data):
        self.blobs.append(data)
        self._size += len(data)
        if self._size > MAX_BLOBS:
            raise WireError("the values are too large to send")
        return len(self.blobs) - 1

    def encode(self, value, depth=0):
        if depth > MAX_DEPTH:
            return self.other(value)
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int):
            return value if abs(value) < 1 << 62 else {"$": "bigint", "v": str(value)}
        if isinstance(value, float):
            return value if math.isfinite(value) else {"$": "float", "v": repr(value)}
        if isinstance(value, bytes):
            return {"$": "bytes", "b": self._blob(value)}
        if isinstance(value, np.generic) and value.dtype.kind in "biufc":
            return {**self._array(np.asarray(value)), "scalar": True}
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
            return self._array(value)
        if _is_tensor(value):
            return self._tensor(value)
        if _portable_module(value):  # a small course module travels as its class, sizes and weights
            return {"$": "module", "class": type(value).__name__, "sizes": list(value.sizes),
                    "state": self.encode(dict(value.state_dict()), depth + 1)}
        if isinstance(value, np.random.Generator) and type(value.bit_generator).__name__ == "PCG64":
            return {"$": "rng", "state": value.bit_generator.state}
        if type(value) in (list, tuple):
            items = [self.encode(v, depth + 1) for v in value]
            return items if type(value) is list else {"$": "tuple", "v": items}
        if type(value) is dict:
            return {"$": "dict", "k": [self.encode(k, depth + 1) for k in value],
                    "v": [self.encode(v, depth + 1) for v in value.values()]}
        return self.other(value)

    def _array(self, value):
        key = id(value)
        if key in self._seen:
            return {"$": "same", "i": self._seen[key]}
        arr = np.ascontiguousarray(np.asarray(value).view(np.ndarray))
        out = {"$": "nd", "dtype": arr.dtype.str, "shape": list(arr.shape), "b": self._blob(arr.tobytes())}
        self._seen[key] = out["b"]
        return out

    def _tensor(self, value):
        t = value.detach().cpu()
        return {"$": "torch", "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                "b": self._blob(np.ascontiguousarray(t.numpy()).tobytes()), "grad": bool(value.requires_grad)}


def _is_tensor(value):
    return type(value).__module__.startswith("torch") and type(value).__name__ in ("Tensor", "Parameter")


def _portable_modules():
    """The course's nn.Module classes that may travel as data (utils.models.PORTABLE_MODULES): an exercise hands
    one to the learner's function, which the judge runs in the worker."""
    import sys

    models = sys.modules.get("utils.models")
    return {name: getattr(models, name) for name in getattr(models, "PORTABLE_MODULES", ())} if models else {}


def _portable_module(value):
    cls = _portable_modules().get(type(value).__name__)
    return cls is not None and type(value) is cls


def encode(value, other):
    """(tree, blobs) for `value`; `other(x)` encodes what plain data cannot hold."""
    enc = Encoder(other)
    return enc.encode(value), enc.blobs


# --- decoding -----------------------------------------------------------------------------------------------

_TORCH_DTYPES = {"float64": "<f8", "float32": "<f4", "float16": "<f2", "int64": "<i8", "int32": "<i4",
                 "int16": "<i2", "int8": "|i1", "uint8": "|u1", "bool": "|b1"}


class Decoder:
    """Rebuilds values from a tree and its blobs. `handle(tree)` turns a handle into the owner's object or a
    stand-in; `reference(name)` a reference marker into a function."""

    def __init__(self, blobs, blob_table, handle, reference):
        self.blobs, self.table, self.handle, self.reference = blobs, blob_table, handle, reference
        self.items, self.arrays = 0, {}

    def _bytes(self, index):
        if not isinstance(index, int) or not 0 <= index < len(self.table):
            raise WireError("a blob index out of range")
        start, stop = self.table[index]
        return self.blobs[start:stop]

    def decode(self, tree, depth=0):
        self.items += 1
        if self.items > MAX_ITEMS or depth > MAX_DEPTH:
            raise WireError("too many or too deeply nested values")
        if tree is None or isinstance(tree, bool | int | float | str):
            return tree
        if isinstance(tree, list):
            return [self.decode(v, depth + 1) for v in tree]
        if not isinstance(tree, dict):
            raise WireError(f"an unknown value {type(tree).__name__}")
        tag = tree.get("$")
        if tag == "tuple":
            return tuple(self.decode(v, depth + 1) for v in _list(tree.get("v")))
        if tag == "dict":
            keys, values = _list(tree.get("k")), _list(tree.get("v"))
            if len(keys) != len(values):
                raise WireError("a dict with more keys than values")
            out = {}
            for k, v in zip(keys, values, strict=True):
                key = self.decode(k, depth + 1)
                if isinstance(key, list | dict) or not _hashable(key):
                    raise WireError("a dict key that is not a plain value")
                out[key] = self.decode(v, depth + 1)
            return out
        if tag == "nd":
            return self._array(tree)
        if tag == "same":
            index = tree.get("i")
            if index not in self.arrays:
                raise WireError("a reference to an array not sent before")
            return self.arrays[index]
        if tag == "torch":
            return self._tensor(tree)
        if tag == "float" and tree.get("v") in ("nan", "inf", "-inf"):
            return float(tree["v"])
        if tag == "bigint" and isinstance(tree.get("v"), str) and re.fullmatch(r"-?\d{1,40}", tree["v"]):
            return int(tree["v"])
        if tag == "bytes":
            return bytes(self._bytes(tree.get("b")))
        if tag == "rng":
            return _generator(tree.get("state"))
        if tag == "module":
            return self._module(tree, depth)
        if tag == "handle":
            return self.handle(tree)
        if tag == "ref" and isinstance(tree.get("name"), str):
            return self.reference(tree["name"])
        raise WireError(f"an unknown tag {tag!r}")

    def _array(self, tree):
        dtype, shape = tree.get("dtype"), tree.get("shape")
        if not isinstance(dtype, str) or not _DTYPE.match(dtype):
            raise WireError(f"an array of dtype {dtype!r}: only booleans and numbers travel")
        if not isinstance(shape, list) or len(shape) > 32 or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise WireError("an array with a malformed shape")
        data = self._bytes(tree.get("b"))
        dt = np.dtype(dtype)
        if math.prod(shape) * dt.itemsize != len(data):
            raise WireError("an array whose shape does not match its data")
        arr = np.frombuffer(data, dtype=dt).reshape(shape).copy()
        self.arrays[tree["b"]] = arr
        return arr[()] if tree.get("scalar") and arr.ndim == 0 else arr

    def _module(self, tree, depth):
        import utils.models  # noqa: F401  (the course's module classes, on either side)

        cls = _portable_modules().get(tree.get("class"))
        sizes = tree.get("sizes")
        if cls is None or not isinstance(sizes, list) or not all(isinstance(k, int) and 0 < k < 1 << 16 for k in sizes):
            raise WireError("a module that is not one of the course's, or of impossible sizes")
        state = self.decode(tree.get("state"), depth + 1)
        if not isinstance(state, dict) or not state or not all(_is_tensor(v) for v in state.values()):
            raise WireError("a module whose weights are not tensors")
        try:
            module = cls(*sizes).to(next(iter(state.values())).dtype)
            module.load_state_dict(state)
        except Exception as exc:
            raise WireError(f"a module that could not be rebuilt: {exc}") from None
        return module

    def _tensor(self, tree):
        import torch

        dtype = _TORCH_DTYPES.get(tree.get("dtype"))
        if dtype is None:
            raise WireError(f"a tensor of dtype {tree.get('dtype')!r}")
        arr = self._array({"dtype": dtype, "shape": tree.get("shape"), "b": tree.get("b")})
        t = torch.from_numpy(np.array(arr))
        return t.requires_grad_() if tree.get("grad") is True and t.is_floating_point() else t


def _list(v):
    if not isinstance(v, list):
        raise WireError("a container that is not a list")
    return v


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _generator(state):
    if not (isinstance(state, dict) and state.get("bit_generator") == "PCG64"
            and isinstance(state.get("state"), dict) and all(isinstance(state["state"].get(k), int)
                                                            for k in ("state", "inc"))
            and isinstance(state.get("has_uint32"), int) and isinstance(state.get("uinteger"), int)):
        raise WireError("a random generator whose state is not a PCG64 state")
    bit = np.random.PCG64()
    try:
        bit.state = state
    except Exception as exc:
        raise WireError(f"a random generator's state was refused: {exc}") from None
    return np.random.Generator(bit)


def decode(tree, blobs, table, handle, reference):
    """The value a tree describes; table lists each blob's (start, stop) within `blobs`."""
    return Decoder(blobs, table, handle, reference).decode(tree)


def blob_table(sizes, total):
    """(start, stop) of each blob, from the sizes the header lists; the sizes must add up to what arrived."""
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes) or sum(sizes) != total:
        raise WireError("blob sizes that do not add up to the data received")
    table, start = [], 0
    for s in sizes:
        table.append((start, start + s))
        start += s
    return table

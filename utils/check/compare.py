"""Compare a learner's outputs with the reference and say precisely how they differ.

A bare "relative error 0.43" is what learners misread most, so a failure names every output (which are
right, which are wrong), the shapes, the element with the largest error with both values (and the
dtypes when the values print alike), how that error is measured, and how many values are wrong.
Nothing here raises anything but Failure, whatever the learner's function returned.
"""

import numpy as np

from ..gradcheck import elementwise_rel_error


class Failure(Exception):
    """A failed test: `message` says what is wrong, `hint` what to look at, `index` the first wrong element."""

    def __init__(self, message, hint=None, index=None):
        super().__init__(message)
        self.message, self.hint, self.index = message, hint, index


def kind(value):
    """A short description of any value, safe to call on whatever a learner returned."""
    try:
        if isinstance(value, np.ndarray):
            return f"a {value.dtype} array of shape {value.shape}"
        if type(value).__module__.startswith("torch") and hasattr(value, "shape"):
            return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {tuple(value.shape)}"
        if isinstance(value, tuple | list):
            return f"a {type(value).__name__} of {len(value)}"
        if isinstance(value, dict):
            return f"a dict with keys {list(value)[:8]}"
        if value is None:
            return "None"
        if callable(value):
            return "a function"
        return type(value).__name__
    except Exception:  # a learner's object whose __len__ or dtype raises
        return "an object that cannot be inspected"


def _shape_hint(got, expected):
    if sorted(got) == sorted(expected) and len(got) == len(expected) > 1:
        return ("The right numbers of elements in the wrong axis order: batch comes first, (N, T, ...). Stack "
                "the per-step results along axis 1, or transpose back.")
    return "Compare the shapes step by step; batch comes first: (N, T, ...)."


def as_array(name, value, expected):
    """`value` as a float64 array shaped like `expected`, or a Failure saying why it can't be."""
    expected = np.asarray(expected)
    if value is None:
        raise Failure(f"`{name}` is None; expected an array of shape {expected.shape}.",
                      "Did you forget a `return` statement, or return a variable before assigning it?")
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        try:
            value = value.detach().cpu().numpy()
        except Exception as exc:
            raise Failure(f"`{name}` is a tensor that could not be read: {exc}") from None
    if np.isscalar(value) and expected.shape == ():
        value = np.float64(value) if not isinstance(value, str | bytes) else value
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and other odd objects
        raise Failure(f"`{name}` could not be turned into an array ({kind(value)}): {exc}") from None
    if type(arr) is not np.ndarray:  # a subclass could override comparisons
        arr = arr.view(np.ndarray)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise Failure(f"`{name}` should be a numeric array of shape {expected.shape}; got {kind(value)}.")
    if arr.shape != expected.shape:
        raise Failure(f"`{name}` has shape {arr.shape}; expected {expected.shape}.",
                      _shape_hint(arr.shape, expected.shape))
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(arr[idx]) else "inf"
        raise Failure(
            f"`{name}` contains {what} (first at index {idx}; {int(bad.sum())} non-finite values in all).",
            "An overflow? exp() of a large number is inf; subtract the maximum before exponentiating.")
    return arr


def _fmt(v):
    return f"{v:.6g}"


def mismatch(name, value, expected, rtol, atol=0.0):
    """None if `value` matches `expected`; else one sentence on how it differs (Failure for unusable values).

    With atol = 0 an element is wrong when |a - b| / max(1e-8, |a| + |b|) >= rtol (the course's relative
    error); with atol > 0 (float32 inputs) when |a - b| > atol + rtol * |expected|.
    """
    got = as_array(name, value, expected)
    if np.asarray(expected).dtype == np.float64 and got.dtype in (np.float16, np.float32):
        return Mismatch(name, f"`{name}` is {got.dtype}, but the inputs are float64: {got.dtype} keeps only about "
                              f"{np.finfo(got.dtype).precision} significant digits, too few for a float64 check.",
                        (), "Keep float64: do not convert to a lower precision, and create new arrays with the "
                            "inputs' dtype (np.zeros(shape, dtype=x.dtype), or np.zeros_like(x)).")
    exp = np.asarray(expected, dtype=np.float64)
    g = got.astype(np.float64)
    diff = np.abs(g - exp)
    if atol == 0:
        err = elementwise_rel_error(g, exp)
        bad = err >= rtol
        measure = f"relative error |yours - expected| / (|yours| + |expected|), allowed below {rtol:.0e}"
    else:
        err = diff / (atol + rtol * np.abs(exp))
        bad = err > 1
        measure = f"|yours - expected| allowed up to {atol:.0e} + {rtol:.0e} * |expected| (float32 inputs)"
    if not bad.any():
        return None
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.where(bad, err, -1))), err.shape))
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    where = f" at index {worst}" if worst else ""
    e, y = exp[worst], g[worst]
    shown = f"expected {_fmt(e)}, got {_fmt(y)}"
    if _fmt(e) == _fmt(y):  # they print alike: show more digits, and say why they differ
        shown = f"expected {e:.17g}, got {y:.17g}"
        if got.dtype != np.float64 and np.asarray(expected).dtype == np.float64:
            shown += (f" (yours is {got.dtype}, the inputs are float64: {got.dtype} keeps about "
                      f"{np.finfo(got.dtype).precision} significant digits; do not convert to a lower precision)")
    total = f"{int(bad.sum())} of {bad.size} value{'s' if bad.size != 1 else ''} wrong"
    first_note = f"; the first wrong value is at index {first}" if first != worst and first else ""
    error = err[worst] if atol == 0 else diff[worst]
    return Mismatch(name, f"`{name}` is wrong: {total}; the largest error{where}: {shown}, error {error:.2e}"
                          f"{first_note}.", first, f"Errors: {measure}.")


class Mismatch:
    """One wrong output: its name, the sentence describing it, the index of its first wrong element, and how
    the error was measured."""

    def __init__(self, name, text, index, measure):
        self.name, self.text, self.index, self.measure = name, text, index, measure

    def __str__(self):
        return f"{self.text}\n{self.measure}"


def compare_outputs(expected, got, rtol, atol=0.0):
    """Compare every named output; raise one Failure that says which outputs are right and which are wrong.

    expected, got: {name: value}. Raises Failure with `index` set to the first wrong element of the first
    wrong output, for hints that depend on where the error starts.
    """
    wrong, right = [], []
    for name, value in expected.items():
        if name not in got:
            raise Failure(f"The output `{name}` is missing.")
        found = mismatch(name, got[name], value, rtol, atol)
        (wrong if found else right).append(found or name)
    if not wrong:
        return
    lines = [m.text for m in wrong]
    if right:
        lines.append("Right: " + ", ".join(f"`{n}`" for n in right) + ".")
    lines.append(wrong[0].measure)
    raise Failure("\n".join(lines), index=wrong[0].index)

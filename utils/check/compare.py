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
        if isinstance(getattr(value, "_course_kind", None), str):  # an object that stayed in a graded submission
            return value._course_kind
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
    """What a wrong shape most likely means."""
    if expected == () and int(np.prod(got)) == 1:
        return f"Return a plain number (a float, e.g. float(x) or x.item()), not an array of shape {got}."
    if len(got) > len(expected) and got[len(got) - len(expected):] == expected:
        extra = got[:len(got) - len(expected)]
        return (f"Your result has extra leading axes {extra}: a gradient (or sum) over values shared by every "
                f"example{' and every step' if len(extra) > 1 else ''} is summed over those axes: "
                f".sum(axis={tuple(range(len(extra))) if len(extra) > 1 else 0}).")
    if got == () and len(expected) == 1:
        return (f"A single number where {expected[0]} values are expected: return all of them (one per chunk, "
                "step or row), not their sum or the last one.")
    if len(got) == len(expected) == 2 and got == expected[::-1]:
        return "The shape is transposed: check which side of the product each factor belongs on."
    if sorted(got) == sorted(expected) and len(got) == len(expected) > 1:
        return ("The right numbers of elements in the wrong axis order: batch comes first, (N, T, ...). Stack "
                "the per-step results along axis 1, or transpose back.")
    return "Write the shape of each operand next to the line that builds this output; batch comes first: (N, T, ...)."


def _type_problem(value, reference):
    """Why `value` cannot stand for the reference's result (None if it can): later cells use that result as numpy.

    Where the reference returns an array, so must the learner (lists, tensors and array subclasses pass
    comparisons but break the cells that use the result); where it returns a list or a number, any list or
    number will do."""
    if isinstance(reference, list | tuple):
        return None
    if np.ndim(reference) == 0 and not isinstance(reference, np.ndarray):
        if isinstance(value, int | float | np.integer | np.floating) and type(value) is not bool:
            return None
        if type(value) is np.ndarray and value.ndim == 0:
            return None
    if type(value) is np.ndarray:
        return None
    if type(value).__module__.startswith("torch"):
        return "a torch tensor; this exercise works in numpy: return a numpy array (tensor.numpy())"
    if isinstance(value, np.ndarray):
        return f"a {type(value).__name__} (a subclass of numpy's array that behaves differently); return a plain array"
    if isinstance(value, list | tuple) and np.ndim(reference) > 0:
        return f"a {type(value).__name__}; the cells after the check use numpy operations on it: return np.array(...)"
    return None


def as_array(name, value, expected):
    """`value` as an array shaped like `expected`, or a Failure saying why it can't be.

    A numpy result must be a numpy array (or, for a single number, a number): lists, tensors and array
    subclasses pass comparisons but break the cells that use the result afterwards.
    """
    reference, expected = expected, np.asarray(expected)
    what = "a number" if expected.shape == () else f"an array of shape {expected.shape}"
    if value is None:
        raise Failure(f"`{name}` is None; expected {what}.",
                      "Did you forget a `return` statement, or return a variable before assigning it?")
    problem = _type_problem(value, reference)
    if problem:
        raise Failure(f"`{name}` is {problem}.")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and other odd objects
        raise Failure(f"`{name}` could not be turned into an array ({kind(value)}): {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise Failure(f"`{name}` should be {what.replace('an array', 'a numeric array')}; got {kind(value)}.")
    if arr.dtype.kind == "c" and expected.dtype.kind != "c":
        raise Failure(f"`{name}` has the complex dtype {arr.dtype}; the result is real.",
                      "Something took a square root or a log of a negative number, or mixed in complex numbers.")
    if arr.shape != expected.shape:
        raise Failure(f"`{name}` has shape {arr.shape}; expected {expected.shape}.",
                      _shape_hint(arr.shape, expected.shape))
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        what = "NaN" if np.isnan(arr[idx]) else "inf"
        raise Failure(
            f"`{name}` contains {what} (first at index {idx}; {int(bad.sum())} non-finite values in all).",
            "A non-finite value comes from an overflow (exp of a large number), a division by zero, or the log of "
            "0; in a softmax, subtract the maximum before exponentiating.")
    return arr


def _fmt(v):
    return f"{v:.6g}"


def mismatch(name, value, expected, rtol, atol=0.0):
    """None if `value` matches `expected`; else one sentence on how it differs (Failure for unusable values).

    With atol = 0 an element is wrong when |a - b| / max(1e-8, |a| + |b|) >= rtol (the course's relative
    error); with atol > 0 (float32 inputs) when |a - b| > atol + rtol * |expected|.
    """
    got = as_array(name, value, expected)
    if np.asarray(expected).dtype.kind == "f" and got.dtype.kind in "biu" and got.ndim > 0:
        return Mismatch(name, f"`{name}` is an array of {got.dtype}, but the result is made of floats: the "
                              "decimals were cut off.", (),
                        "An array made with np.zeros_like(x) of an integer array (token ids) is an integer array "
                        "too: give the dtype, np.zeros(shape) or np.zeros_like(W).")
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


def _swapped_with(name, got, expected):
    """Another output whose value `name` holds while it holds `name`'s (outputs returned in the wrong order)."""
    try:
        shapes = {k: np.shape(v) for k, v in got.items()}
    except Exception:
        return None
    if shapes[name] == np.shape(expected[name]):
        return None
    return next((o for o, v in expected.items() if o != name and o in shapes and shapes[name] == np.shape(v)
                 and shapes[o] == np.shape(expected[name])), None)


def compare_outputs(expected, got, rtol, atol=0.0):
    """Compare every named output; raise one Failure that says which outputs are right and which are wrong.

    expected, got: {name: value}. Raises Failure with `index` set to the first wrong element of the first
    wrong output, for hints that depend on where the error starts.
    """
    wrong, right = [], []
    for name, value in expected.items():
        if name not in got:
            raise Failure(f"The output `{name}` is missing.")
        try:
            found = mismatch(name, got[name], value, rtol, atol)
        except Failure as f:
            other = _swapped_with(name, got, expected)
            if other:
                f.hint = (f"`{name}` has the shape `{other}` should have: return the outputs in the order "
                          f"({', '.join(expected)}).")
            raise
        (wrong if found else right).append(found or name)
    if not wrong:
        return
    lines = [m.text for m in wrong]
    if right:
        lines.append("Right: " + ", ".join(f"`{n}`" for n in right) + ".")
    lines.append(wrong[0].measure)
    raise Failure("\n".join(lines), index=wrong[0].index)

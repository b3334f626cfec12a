"""Compare a learner's output with the reference and say precisely how they differ.

A bare "relative error 0.43" is what learners misread most, so every message names the output, the
shapes, the worst error, and the first index that is wrong with both values printed.
"""

import numpy as np

from ..gradcheck import elementwise_rel_error


class Failure(Exception):
    """A failed test: `message` says what is wrong, `hint` what to look at."""

    def __init__(self, message, hint=None, index=None):
        super().__init__(message)
        self.message, self.hint, self.index = message, hint, index


def as_array(name, value, expected):
    """`value` as a float64 array shaped like `expected`, or a Failure saying why it can't be."""
    expected = np.asarray(expected)
    if value is None:
        raise Failure(
            f"`{name}` is None; expected an array of shape {expected.shape}.",
            "Did you forget a `return` statement, or return a variable before assigning it?",
        )
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and other odd objects
        raise Failure(f"`{name}` could not be turned into an array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise Failure(f"`{name}` should be a numeric array of shape {expected.shape}; got {type(value).__name__}.")
    if arr.shape != expected.shape:
        raise Failure(
            f"`{name}` has shape {arr.shape}; expected {expected.shape}.",
            "Compare the shapes step by step; batch comes first: (N, T, ...).",
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(arr[idx]) else "inf"
        raise Failure(
            f"`{name}` contains {kind} (first at index {idx}; {int(bad.sum())} non-finite values in all).",
            "An overflow? exp() of a large number is inf; subtract the maximum before exponentiating.",
        )
    return arr.astype(np.float64)


def assert_close(name, value, expected, rtol, atol=0.0):
    """Raise a Failure unless `value` matches `expected`.

    With atol = 0 the test is the course's relative error, max |a-b| / max(1e-8, |a|+|b|) < rtol;
    with atol > 0 (used for float32 inputs) each element needs |a-b| <= atol + rtol * |expected|.
    """
    got = as_array(name, value, expected)
    expected = np.asarray(expected, dtype=np.float64)
    err = elementwise_rel_error(got, expected)
    bad = err >= rtol if atol == 0 else np.abs(got - expected) > atol + rtol * np.abs(expected)
    if not bad.any():
        return
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    where = f" at index {idx}" if idx else ""
    raise Failure(
        f"`{name}` differs from the reference: max relative error {err.max():.2e} (allowed {rtol:.0e}); "
        f"{int(bad.sum())} of {bad.size} values wrong; first wrong value{where}: "
        f"expected {expected[idx]:.6g}, got {got[idx]:.6g}. Shape {got.shape} is right.",
        index=idx,
    )

"""Numerical gradients and the relative error used to compare gradients.

Centred differences have error O(h^2): with h = 1e-5 in float64 a correct analytic gradient agrees
to about 1e-8 relative error or better, which is why gradient checks run in float64.
"""

import numpy as np


def elementwise_rel_error(a, b):
    """|a - b| / max(1e-8, |a| + |b|), element by element: the course's measure of agreement."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))


def rel_error(a, b):
    """The largest element-wise relative error."""
    return float(np.max(elementwise_rel_error(a, b), initial=0.0))


def numerical_gradient(f, x, df=None, h=1e-5):
    """Gradient of sum(f(x) * df) with respect to x by centred differences; f may return an array.

    x is perturbed in place and restored, so f must read it afresh on every call.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.asarray(f(x), dtype=np.float64)
        x[i] = old - h
        minus = np.asarray(f(x), dtype=np.float64)
        x[i] = old
        diff = plus - minus
        grad[i] = (diff if df is None else diff * df).sum() / (2 * h)
    return grad

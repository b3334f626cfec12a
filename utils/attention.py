"""Reference numpy layers of notebook 05: additive (Show, Attend and Tell) attention and the doubly
stochastic penalty.

Shapes are batch first: h (N, H) the decoder's previous hidden state, V (N, L, D) the grid of L feature
vectors, W_h (H, A), W_v (D, A), w (A,). Forward functions return their outputs and a cache; the
backward takes the upstream gradients and that cache. The cache layout is part of the exercise's contract
(the notebook states it), so a learner's backward can be checked on the reference forward's cache.
"""

import numpy as np


def softmax(scores, axis=-1):
    """A numerically stable softmax: subtracting the maximum leaves the result unchanged and keeps exp finite."""
    shifted = scores - scores.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def attention_forward(h, V, W_h, W_v, w):
    """Additive attention over L locations.

    hidden = tanh(V W_v + h W_h) (N, L, A), one row per location; scores e = hidden . w (N, L);
    alpha = softmax of e over the L locations (each row sums to 1); z = sum_i alpha_i V_i (N, D).
    Returns (z, alpha, cache) with cache = (h, V, W_h, W_v, w, hidden, alpha).
    """
    hidden = np.tanh(V @ W_v + (h @ W_h)[:, None, :])
    alpha = softmax(hidden @ w, axis=1)
    z = np.einsum("nl,nld->nd", alpha, V)
    return z, alpha, (h, V, W_h, W_v, w, hidden, alpha)


def attention_backward(dz, dalpha, cache):
    """Gradients of attention_forward: dz (N, D) and dalpha (N, L) (None when only z is used downstream).

    z = sum_i alpha_i V_i sends dalpha_i += dz . V_i and dV_i += alpha_i dz. Through the softmax,
    de_i = alpha_i (dalpha_i - sum_j alpha_j dalpha_j). Then dhidden = de w^T, da = dhidden (1 - hidden^2)
    through the tanh, and da reaches W_v and V at each location and h and W_h summed over the locations
    (h W_h was added to every location's row). Returns (dh, dV, dW_h, dW_v, dw).
    """
    h, V, W_h, W_v, w, hidden, alpha = cache
    dalpha = np.einsum("nd,nld->nl", dz, V) + (0 if dalpha is None else dalpha)
    de = alpha * (dalpha - np.sum(alpha * dalpha, axis=1, keepdims=True))
    dw = np.einsum("nl,nla->a", de, hidden)
    da = de[:, :, None] * w * (1 - hidden**2)                     # (N, L, A)
    dV = alpha[:, :, None] * dz[:, None, :] + da @ W_v.T
    dW_v = np.einsum("nld,nla->da", V, da)
    dsum = da.sum(axis=1)                                         # h W_h was added to every location
    return dsum @ W_h.T, dV, h.T @ dsum, dW_v, dw


def doubly_stochastic_penalty(alpha, mask):
    """The penalty of Show, Attend and Tell: every location should get about one unit of attention over the
    caption, mean over captions of sum_i (1 - sum_t mask_t alpha_ti)^2.

    alpha (N, T, L), mask (N, T) (True or 1 at the caption's real steps). Steps past a caption's end do not
    count. Returns (penalty, dalpha) with dalpha (N, T, L) the penalty's gradient, 0 at padded steps.
    """
    mask = np.asarray(mask, dtype=alpha.dtype)
    gap = 1 - np.einsum("ntl,nt->nl", alpha, mask)               # (N, L)
    N = alpha.shape[0]
    dalpha = -2 * gap[:, None, :] * mask[:, :, None] / N
    return float(np.sum(gap**2) / N), dalpha

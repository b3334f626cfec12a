"""Reference numpy layers of the course.

Every function follows one API so layers compose like Lego bricks:
forward functions return ``(out, cache)`` and the matching backward takes ``(dout, cache)``.
The cache is private to the implementation that made it. Shapes are batch first:
``x: (N, T, D)``, ``h: (N, T, H)``, ``Wx: (D, H)``, ``Wh: (H, H)``, ``b: (H,)``.

These are what a notebook falls back on until the learner's own version passes its check, and what
the checks compare against (tests/test_layers.py checks them against torch).
"""

import numpy as np


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One step of a vanilla RNN: next_h = tanh(x Wx + prev_h Wh + b).

    x: (N, D), prev_h: (N, H), Wx: (D, H), Wh: (H, H), b: (H,) -> next_h: (N, H).
    """
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Gradients of one RNN step. tanh'(a) = 1 - tanh(a)^2 is read off the cached output."""
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - next_h**2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    """Run the RNN over a whole sequence, the same weights at every step.

    x: (N, T, D), h0: (N, H) -> h: (N, T, H), the hidden state after each step (h0 not included).
    """
    N, T, _ = x.shape
    h = np.empty((N, T, h0.shape[1]), dtype=np.result_type(x, h0, Wx))
    prev_h, caches = h0, []
    for t in range(T):
        prev_h, cache = rnn_step_forward(x[:, t], prev_h, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches


def rnn_backward(dh, caches):
    """Backprop through time. dh: (N, T, H), the upstream gradient of every hidden state.

    The weights are shared by all steps, so their gradients are the sums of the per-step gradients;
    the gradient reaching h_t is its own upstream gradient plus what flows back from step t + 1.
    """
    N, T, H = dh.shape
    x0, _, Wx, Wh, _ = caches[0]
    dx = np.empty((N, T, x0.shape[1]), dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H, dtype=dh.dtype)
    dprev = np.zeros((N, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        dx[:, t], dprev, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev, dWx, dWh, db


def word_embedding_forward(x, W):
    """Look up each word's vector: x (N, T) integer ids, W (V, D) -> out (N, T, D), out[n, t] = W[x[n, t]].

    The same as multiplying one-hot rows by W, without building the (N, T, V) one-hot array.
    """
    return W[x], (x, W.shape)


def word_embedding_backward(dout, cache):
    """dW (V, D): each row collects the gradients of every position where its word was used.

    np.add.at accumulates over repeated ids; `dW[x] += dout` would keep only one of them.
    """
    x, shape = cache
    dW = np.zeros(shape, dtype=dout.dtype)
    np.add.at(dW, x, dout)
    return dW


def temporal_affine_forward(x, w, b):
    """The same affine map at every time step. x: (N, T, D), w: (D, M), b: (M,) -> (N, T, M)."""
    return x @ w + b, (x, w)


def temporal_affine_backward(dout, cache):
    """(dx, dw, db): the weights are shared by every step and example, so their gradients sum over both."""
    x, w = cache
    D, M = w.shape
    return dout @ w.T, x.reshape(-1, D).T @ dout.reshape(-1, M), dout.sum(axis=(0, 1))


def softmax(scores, axis=-1):
    """Softmax that cannot overflow: subtracting the row maximum leaves the result unchanged."""
    shifted = scores - scores.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def temporal_softmax_loss(x, y, mask):
    """Softmax cross-entropy summed over time and averaged over the batch.

    x: (N, T, V) scores, y: (N, T) integer targets, mask: (N, T) booleans or 0/1 saying which
    positions count (padding positions do not). Returns (loss, dx) with dx: (N, T, V).
    """
    N, T, V = x.shape
    mask = np.asarray(mask, dtype=bool)
    shifted = x - x.max(axis=2, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    picked = np.take_along_axis(log_probs, y[:, :, None], axis=2)[:, :, 0]
    loss = -(picked * mask).sum() / N
    dx = np.exp(log_probs)
    np.put_along_axis(dx, y[:, :, None], np.take_along_axis(dx, y[:, :, None], axis=2) - 1.0, axis=2)
    dx *= mask[:, :, None] / N
    return loss, dx


def rnn_sample(x0, h0, Wx, Wh, b, Wy, by, T, rng):
    """Generate T tokens from a one-hot-input char RNN, feeding each sample back in as the next input.

    x0: (N,) indices of the first input token, h0: (N, H); Wx: (V, H) since inputs are one-hot,
    Wy: (H, V), by: (V,); rng: a numpy Generator (so a seed makes the samples repeat).
    Returns (N, T) integer indices, the first input not included.
    """
    V = Wy.shape[1]
    x, h = np.asarray(x0), h0
    out = np.empty((len(x), T), dtype=np.int64)
    for t in range(T):
        h, _ = rnn_step_forward(np.eye(V)[x], h, Wx, Wh, b)
        x = temperature_sample(h @ Wy + by, 1.0, rng)
        out[:, t] = x
    return out


def temperature_sample(scores, temperature, rng):
    """Draw one index per row from softmax(scores / temperature).

    scores: (N, V); temperature > 0: below 1 sharpens the distribution towards the argmax, above 1
    flattens it towards uniform; rng: a numpy Generator. Returns (N,) integer indices.
    """
    p = softmax(np.asarray(scores, dtype=np.float64) / temperature)
    # inverse-CDF sampling: one uniform number per row, the first index whose cumulative p exceeds it
    return np.minimum((p.cumsum(axis=1) < rng.random((len(p), 1))).sum(axis=1), p.shape[1] - 1)

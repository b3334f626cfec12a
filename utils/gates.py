"""Reference numpy LSTM and GRU layers, and gradient clipping (notebook 03).

Conventions as in `utils.layers`: batch first, forward returns (out, cache), backward takes
(dout, cache). The LSTM stacks its four gates in one matrix in the order i, f, o, g:
``Wx: (D, 4H)``, ``Wh: (H, 4H)``, ``b: (4H,)``; the GRU stacks z, r, and the candidate:
``Wx: (D, 3H)``, ``Wh: (H, 3H)``, ``b: (3H,)``.

The sequence functions do the input products for all steps in one matrix product and, in the
backward pass, the weight gradients in one product at the end; only what truly depends on the
previous step stays in the time loop. That is what makes them competitive with torch.nn.LSTM on
the CPU (measured by `make bench`).
"""

import numpy as np


def sigmoid(x):
    """The logistic function written with tanh, which cannot overflow for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# --- LSTM ----------------------------------------------------------------------------------------

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step. x: (N, D), prev_h, prev_c: (N, H). Returns next_h, next_c, cache.

    a = x Wx + prev_h Wh + b is split into four (N, H) blocks i, f, o, g; then
    c = f * prev_c + i * g and h = o * tanh(c), with sigmoid gates i, f, o and a tanh candidate g.
    The cache is (x, prev_h, prev_c, Wx, Wh, gates, next_c) with gates = [i f o g] after their
    nonlinearities, (N, 4H).
    """
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    gates = np.empty_like(a)
    gates[:, :3 * H] = sigmoid(a[:, :3 * H])
    gates[:, 3 * H:] = np.tanh(a[:, 3 * H:])
    i, f, o, g = np.split(gates, 4, axis=1)
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, gates, next_c)


def _lstm_gate_grads(dnext_h, dnext_c, prev_c, gates, next_c):
    """Gradients with respect to the pre-activations a (N, 4H) and to prev_c, for one step."""
    i, f, o, g = np.split(gates, 4, axis=1)
    tanh_c = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c**2)
    da = np.concatenate([dc * g * i * (1.0 - i), dc * prev_c * f * (1.0 - f),
                         dnext_h * tanh_c * o * (1.0 - o), dc * i * (1.0 - g**2)], axis=1)
    return da, dc * f


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Gradients of one LSTM step: returns dx, dprev_h, dprev_c, dWx, dWh, db."""
    x, prev_h, prev_c, Wx, Wh, gates, next_c = cache
    da, dprev_c = _lstm_gate_grads(dnext_h, dnext_c, prev_c, gates, next_c)
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def _swap_nt(v):
    """(T, N, ...) <-> (N, T, ...) as a view."""
    return v.transpose(1, 0, 2)


def _time_major(v):
    """A (T, N, ...) contiguous copy of a batch-first array: each step's slice is one block of memory."""
    return np.ascontiguousarray(_swap_nt(v))


def lstm_forward(x, h0, Wx, Wh, b):
    """Run an LSTM over a sequence; the initial cell state is zero.

    x: (N, T, D), h0: (N, H) -> h: (N, T, H). The cache is a dict of arrays stacked over time:
    x, h0, Wx, Wh, h (N, T, H), c (N, T, H) and gates (N, T, 4H), from which every step's cache
    can be rebuilt: (x[:, t], h[:, t-1] or h0, c[:, t-1] or zeros, Wx, Wh, gates[:, t], c[:, t]).
    (It also keeps tanh(c), which the backward pass would otherwise recompute.)
    """
    N, T, _ = x.shape
    H = h0.shape[1]
    dtype = np.result_type(x, h0, Wx)
    # every step's input product at once, written straight into the gates array, time-major for speed
    gates = (x.reshape(N * T, -1) @ Wx + b).astype(dtype, copy=False).reshape(N, T, 4 * H).transpose(1, 0, 2).copy()
    h = np.empty((T, N, H), dtype=dtype)
    c = np.empty((T, N, H), dtype=dtype)
    tanh_c = np.empty((T, N, H), dtype=dtype)
    prev_h, prev_c = h0.astype(dtype), np.zeros((N, H), dtype=dtype)
    for t in range(T):
        a = gates[t]
        a += prev_h @ Wh
        ifo = a[:, :3 * H]
        ifo *= 0.5  # sigmoid(v) = (1 + tanh(v / 2)) / 2, in place
        np.tanh(ifo, out=ifo)
        ifo += 1.0
        ifo *= 0.5
        np.tanh(a[:, 3 * H:], out=a[:, 3 * H:])
        np.multiply(a[:, H:2 * H], prev_c, out=c[t])
        c[t] += a[:, :H] * a[:, 3 * H:]
        np.tanh(c[t], out=tanh_c[t])
        np.multiply(a[:, 2 * H:3 * H], tanh_c[t], out=h[t])
        prev_h, prev_c = h[t], c[t]
    return _swap_nt(h), {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "h": _swap_nt(h), "c": _swap_nt(c),
                         "gates": _swap_nt(gates), "tanh_c": _swap_nt(tanh_c)}


def lstm_backward(dh, cache):
    """Backprop through time for lstm_forward. dh: (N, T, H). Returns dx, dh0, dWx, dWh, db.

    Everything that does not depend on the gradient arriving from the next step (the gates' local
    derivatives, each multiplied by what it meets in the chain rule) is computed for all steps at
    once before the loop, so the loop itself is seven small element-wise products and one matrix
    product per step.
    """
    x, h0, Wx, Wh, h, c, gates = (cache[k] for k in ("x", "h0", "Wx", "Wh", "h", "c", "gates"))
    N, T, H = dh.shape
    dtype = np.result_type(dh, gates)
    g4, cs = _time_major(gates), _time_major(c)
    tanh_c = _time_major(cache["tanh_c"]) if "tanh_c" in cache else np.tanh(cs)
    i, f, o, g = (g4[:, :, k * H:(k + 1) * H] for k in range(4))
    prev_c = np.concatenate([np.zeros((1, N, H), dtype=cs.dtype), cs[:-1]])
    through_h = o * (1.0 - tanh_c**2)      # dc_t / dh_t
    to_i = g * i * (1.0 - i)                # da_i / dc_t
    to_f = prev_c * f * (1.0 - f)           # da_f / dc_t
    to_o = tanh_c * o * (1.0 - o)           # da_o / dh_t
    to_g = i * (1.0 - g**2)                 # da_g / dc_t
    dh_tm = _time_major(dh)
    da = np.empty((T, N, 4 * H), dtype=dtype)
    dnext_h = np.zeros((N, H), dtype=dtype)
    dnext_c = np.zeros((N, H), dtype=dtype)
    for t in reversed(range(T)):
        dnh = dh_tm[t] + dnext_h
        dc = dnext_c + dnh * through_h[t]
        d = da[t]
        np.multiply(dc, to_i[t], out=d[:, :H])
        np.multiply(dc, to_f[t], out=d[:, H:2 * H])
        np.multiply(dnh, to_o[t], out=d[:, 2 * H:3 * H])
        np.multiply(dc, to_g[t], out=d[:, 3 * H:])
        dnext_c = dc * f[t]
        dnext_h = d @ Wh.T
    flat = da.transpose(1, 0, 2).reshape(N * T, 4 * H)  # back to batch first, one copy
    prev_h = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
    dx = (flat @ Wx.T).reshape(N, T, -1)
    dWx = x.reshape(N * T, -1).T @ flat
    dWh = prev_h.reshape(N * T, H).T @ flat
    return dx, dnext_h, dWx, dWh, flat.sum(axis=0)


# --- GRU -----------------------------------------------------------------------------------------

def gru_step_forward(x, prev_h, Wx, Wh, b):
    """One GRU step in the lecture's formulation. Returns next_h and a cache.

    z = sigmoid(x Wx_z + prev_h Wh_z + b_z)           update gate
    r = sigmoid(x Wx_r + prev_h Wh_r + b_r)           reset gate
    n = tanh(x Wx_n + (r * prev_h) Wh_n + b_n)        candidate: the reset acts *before* the product
    next_h = z * prev_h + (1 - z) * n                 z = 1 keeps the old state
    Weights are stacked [z r n]: Wx (D, 3H), Wh (H, 3H), b (3H,).
    """
    H = prev_h.shape[1]
    ax = x @ Wx + b
    zr = sigmoid(ax[:, :2 * H] + prev_h @ Wh[:, :2 * H])
    z, r = zr[:, :H], zr[:, H:]
    n = np.tanh(ax[:, 2 * H:] + (r * prev_h) @ Wh[:, 2 * H:])
    next_h = z * prev_h + (1.0 - z) * n
    return next_h, (x, prev_h, Wx, Wh, z, r, n)


# --- clipping ------------------------------------------------------------------------------------

def clip_grad_norm(grads, max_norm):
    """Scale all gradients by one factor so that their global L2 norm is at most max_norm.

    grads: a list or dict of arrays. The norm is sqrt(sum of squares of every entry of every array);
    the factor is min(1, max_norm / norm). Returns (clipped grads of the same kind, norm before).
    Scaling everything by one factor keeps the direction of the update, only its length changes.
    """
    arrays = list(grads.values()) if isinstance(grads, dict) else list(grads)
    norm = float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in arrays)))
    scale = min(1.0, max_norm / (norm + 1e-12))
    if isinstance(grads, dict):
        return {k: g * scale for k, g in grads.items()}, norm
    return [g * scale for g in grads], norm

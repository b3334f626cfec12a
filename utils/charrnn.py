"""A character-level language model in numpy, built from the layers of notebook 01.

one-hot(x) -> rnn_forward -> temporal_affine -> temporal_softmax_loss, trained by truncated
backpropagation through time on N parallel streams of text. Notebook 02 trains it on Shakespeare
and compares it with the PyTorch models of `utils.models`.
"""

import math
import time

import numpy as np

from . import layers


def init_params(vocab_size, hidden, rng):
    """Small random weights: input/recurrent scaled by 1/sqrt(fan-in), output layer near zero."""
    V, H = vocab_size, hidden
    return {
        "Wx": rng.standard_normal((V, H)) * 0.1,
        "Wh": rng.standard_normal((H, H)) / math.sqrt(H),
        "b": np.zeros(H),
        "Wy": rng.standard_normal((H, V)) * 0.01,
        "by": np.zeros(V),
    }


def streams(ids, N):
    """Cut a 1-D array of character ids into N contiguous streams of equal length: (N, len // N).

    Row n continues where it left off from chunk to chunk, which is what lets the hidden state be
    carried across chunk boundaries in truncated BPTT.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"Expected a 1-D array of character ids; got shape {ids.shape}.")
    L = len(ids) // N
    if L < 2:
        raise ValueError(f"{len(ids)} characters cannot make {N} streams of at least 2 characters.")
    return ids[: N * L].reshape(N, L)


def char_rnn_loss(params, x, y, h0, rnn_forward=layers.rnn_forward, rnn_backward=layers.rnn_backward):
    """Loss and gradients of one chunk. x, y: (N, T) ids (y is x shifted by one); h0: (N, H).

    Returns (loss, grads, h_last). The loss is summed over the T steps and averaged over the N
    streams, like temporal_softmax_loss; h_last is where the next chunk starts. The gradient with
    respect to h0 is computed and dropped: that is the truncation.
    """
    V = params["Wx"].shape[0]
    onehot = np.eye(V)[x]
    h, cache = rnn_forward(onehot, h0, params["Wx"], params["Wh"], params["b"])
    scores, affine_cache = layers.temporal_affine_forward(h, params["Wy"], params["by"])
    loss, dscores = layers.temporal_softmax_loss(scores, y, np.ones(y.shape, dtype=bool))
    dh, dWy, dby = layers.temporal_affine_backward(dscores, affine_cache)
    _, _dh0, dWx, dWh, db = rnn_backward(dh, cache)
    return loss, {"Wx": dWx, "Wh": dWh, "b": db, "Wy": dWy, "by": dby}, h[:, -1]


def truncated_bptt(loss_fn, params, data, T, step, h0):
    """Train on data: (N, L) streams, chunk by chunk of T steps, carrying h but not its gradient.

    loss_fn(params, x, y, h) -> (loss, grads, h_last) for one chunk; step(grads) updates params in
    place. Only full chunks are used: chunk k feeds data[:, kT : kT+T] and predicts data shifted by
    one. Returns (losses, h): the list of per-chunk losses and the hidden state after the last chunk.
    """
    losses, h = [], h0
    for start in range(0, data.shape[1] - T, T):
        x, y = data[:, start:start + T], data[:, start + 1:start + T + 1]
        loss, grads, h = loss_fn(params, x, y, h)
        step(grads)
        losses.append(loss)
    return losses, h


def bits_per_char(params, data, T=100):
    """Average bits per character of the model on data: (N, L) streams, the state carried throughout."""
    Wx, Wh, b, Wy, by = (params[k] for k in ("Wx", "Wh", "b", "Wy", "by"))
    h = np.zeros((data.shape[0], Wh.shape[0]))
    total, count = 0.0, 0
    for start in range(0, data.shape[1] - 1, T):
        x, y = data[:, start:start + T], data[:, start + 1:start + T + 1]
        x = x[:, : y.shape[1]]
        hs, _ = layers.rnn_forward(np.eye(Wx.shape[0])[x], h, Wx, Wh, b)
        loss, _ = layers.temporal_softmax_loss(hs @ Wy + by, y, np.ones(y.shape, dtype=bool))
        total += loss * data.shape[0]
        count += y.size
        h = hs[:, -1]
    return total / count / math.log(2)


def chars_per_second(N, T, hidden, vocab_size, chunks, rng):
    """Training throughput of the numpy char RNN with N streams: characters per second over `chunks` chunks."""
    from .train import Adam

    params = init_params(vocab_size, hidden, rng)
    data = rng.integers(0, vocab_size, (N, chunks * T + 1))
    opt = Adam(params, lr=1e-3)
    start = time.perf_counter()
    truncated_bptt(char_rnn_loss, params, data, T, opt.step, np.zeros((N, hidden)))
    return N * T * chunks / (time.perf_counter() - start)

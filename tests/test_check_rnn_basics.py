"""The checks of notebook 01 must pass every correct implementation and fail every wrong one.

The wrong ones here are written independently of the hint list in utils/check/rnn_basics.py: a check
that only recognised its own catalogue of mistakes would be no check at all.
"""

import numpy as np
import pytest

from utils import check, layers

from .check_cases import assert_check_fails, assert_check_passes

# ---- correct variants: loops, einsum, stacked weights, other parameter names --------------------


def step_einsum(x, h, A, B, c):
    return np.tanh(np.einsum("nd,dh->nh", x, A) + np.einsum("nk,kh->nh", h, B) + c), None


def step_loops(x, prev_h, Wx, Wh, b):
    out = np.zeros((x.shape[0], Wx.shape[1]))
    for n in range(x.shape[0]):
        for j in range(Wx.shape[1]):
            out[n, j] = np.tanh(x[n] @ Wx[:, j] + prev_h[n] @ Wh[:, j] + b[j])
    return out, {"anything": "the cache is the learner's own"}


def step_stacked(x, prev_h, Wx, Wh, b):
    return np.tanh(np.hstack([x, prev_h]) @ np.vstack([Wx, Wh]) + b), (x, prev_h)


def forward_list(x, h0, Wx, Wh, b):
    hs, h = [], h0
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t, :] @ Wx + h @ Wh + b)
        hs.append(h)
    return np.stack(hs, axis=1), hs


def forward_time_major(x, h0, Wx, Wh, b):
    xt = x.transpose(1, 0, 2)
    out = np.empty((xt.shape[0], x.shape[0], Wh.shape[0]))
    h = h0
    for t, x_t in enumerate(xt):
        h, _ = layers.rnn_step_forward(x_t, h, Wx, Wh, b)
        out[t] = h
    return out.transpose(1, 0, 2), None


def loss_loops(x, y, mask):
    N, T, V = x.shape
    loss, dx = 0.0, np.zeros(x.shape)
    for n in range(N):
        for t in range(T):
            if mask[n, t]:
                s = x[n, t] - np.max(x[n, t])
                log_p = s - np.log(np.sum(np.exp(s)))
                loss -= log_p[y[n, t]]
                dx[n, t] = np.exp(log_p)
                dx[n, t, y[n, t]] -= 1
    return loss / N, dx / N


def loss_flat(x, y, mask):
    N, T, V = x.shape
    s = x.reshape(N * T, V)
    s = s - s.max(axis=1, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    m = np.asarray(mask).reshape(-1).astype(float)
    idx = np.arange(N * T), y.reshape(-1)
    loss = -np.sum(m * logp[idx]) / N
    d = np.exp(logp)
    d[idx] -= 1
    return loss, (d * m[:, None] / N).reshape(N, T, V)


def sample_choice(x0, h0, Wx, Wh, b, Wy, by, T, rng):
    V = Wy.shape[1]
    out = np.zeros((len(x0), T), dtype=int)
    for n in range(len(x0)):
        h, x = h0[n:n + 1], x0[n]
        for t in range(T):
            h, _ = layers.rnn_step_forward(np.eye(V)[[x]], h, Wx, Wh, b)
            s = (h @ Wy + by)[0]
            p = np.exp(s - s.max())
            x = rng.choice(V, p=p / p.sum())
            out[n, t] = x
    return out


def sample_gumbel(x0, h0, Wx, Wh, b, Wy, by, T, rng):
    """The Gumbel-max trick: argmax(scores + Gumbel noise) is a softmax sample."""
    V, x, h, out = Wy.shape[1], x0, h0, []
    for _ in range(T):
        h = np.tanh(np.eye(V)[x] @ Wx + h @ Wh + b)
        x = np.argmax(h @ Wy + by + rng.gumbel(size=(len(x), V)), axis=1)
        out.append(x)
    return np.array(out).T


CORRECT = {
    "rnn_step_forward": [layers.rnn_step_forward, step_einsum, step_loops, step_stacked],
    "rnn_forward": [layers.rnn_forward, forward_list, forward_time_major],
    "temporal_softmax_loss": [layers.temporal_softmax_loss, loss_loops, loss_flat],
    "rnn_sample": [layers.rnn_sample, sample_choice, sample_gumbel],
}


@pytest.mark.parametrize(
    "name,fn", [(n, f) for n, fns in CORRECT.items() for f in fns], ids=lambda v: getattr(v, "__name__", v)
)
def test_correct_variants_pass(name, fn):
    assert_check_passes(name, fn)


# ---- wrong implementations ------------------------------------------------------------------------


def _sample_with(next_token, feed_back=True, carry=True):
    def sample(x0, h0, Wx, Wh, b, Wy, by, T, rng):
        V, x, h, out = Wy.shape[1], x0, h0, []
        for _ in range(T):
            h = np.tanh(np.eye(V)[x if feed_back else x0] @ Wx + (h if carry else h0) @ Wh + b)
            x = next_token(h @ Wy + by, rng)
            out.append(x)
        return np.array(out).T

    return sample


def _inverse_cdf(p, rng):
    return np.minimum((p.cumsum(axis=1) < rng.random((len(p), 1))).sum(axis=1), p.shape[1] - 1)


def _softmax(s, temperature=1.0):
    e = np.exp((s - s.max(axis=1, keepdims=True)) / temperature)
    return e / e.sum(axis=1, keepdims=True)


def _naive_loss(x, y, mask):
    p = np.exp(x) / np.exp(x).sum(axis=2, keepdims=True)
    N = x.shape[0]
    picked = np.take_along_axis(p, y[:, :, None], axis=2)[:, :, 0]
    dx = p.copy()
    np.put_along_axis(dx, y[:, :, None], picked[:, :, None] - 1, axis=2)
    m = np.asarray(mask, dtype=float)
    return -(np.log(picked) * m).sum() / N, dx * m[:, :, None] / N


def _inplace_step(x, prev_h, Wx, Wh, b):
    prev_h[...] = np.tanh(x @ Wx + prev_h @ Wh + b)
    return prev_h, None


WRONG = {
    "rnn_step_forward": {
        "missing bias": lambda x, h, Wx, Wh, b: (np.tanh(x @ Wx + h @ Wh), None),
        "relu": lambda x, h, Wx, Wh, b: (np.maximum(x @ Wx + h @ Wh + b, 0), None),
        "sigmoid": lambda x, h, Wx, Wh, b: (1 / (1 + np.exp(-(x @ Wx + h @ Wh + b))), None),
        "transposed Wh": lambda x, h, Wx, Wh, b: (np.tanh(x @ Wx + h @ Wh.T + b), None),
        "transposed Wx": lambda x, h, Wx, Wh, b: (np.tanh(x @ Wx.T + h @ Wh + b), None),
        "tanh twice": lambda x, h, Wx, Wh, b: (np.tanh(np.tanh(x @ Wx + h @ Wh + b)), None),
        "bias twice": lambda x, h, Wx, Wh, b: (np.tanh(x @ Wx + h @ Wh + 2 * b), None),
        "no cache returned": lambda x, h, Wx, Wh, b: np.tanh(x @ Wx + h @ Wh + b),
        "modifies prev_h": _inplace_step,
        "computes in float16": lambda x, h, Wx, Wh, b: (np.tanh((x @ Wx + h @ Wh + b).astype(np.float16)), None),
        "returns None": lambda x, h, Wx, Wh, b: (None, None),
    },
    "rnn_forward": {
        "h not carried": lambda x, h0, Wx, Wh, b: (np.tanh(x @ Wx + (h0 @ Wh)[:, None] + b), None),
        "includes h0": lambda x, h0, Wx, Wh, b: (
            np.concatenate([h0[:, None], layers.rnn_forward(x, h0, Wx, Wh, b)[0]], axis=1), None),
        "time major": lambda x, h0, Wx, Wh, b: (layers.rnn_forward(x, h0, Wx, Wh, b)[0].transpose(1, 0, 2), None),
        "last step only repeated": lambda x, h0, Wx, Wh, b: (
            np.repeat(layers.rnn_forward(x, h0, Wx, Wh, b)[0][:, -1:], x.shape[1], axis=1), None),
        "relu cell": lambda x, h0, Wx, Wh, b: (
            layers.rnn_forward(x, h0, Wx, Wh, b)[0] * 0 + np.maximum(x @ Wx + b, 0), None),
        "NaN output": lambda x, h0, Wx, Wh, b: (layers.rnn_forward(x, h0, Wx, Wh, b)[0] * np.nan, None),
    },
    "temporal_softmax_loss": {
        "mean over N*T": lambda x, y, m: tuple(v / x.shape[1] for v in layers.temporal_softmax_loss(x, y, m)),
        "mask ignored": lambda x, y, m: layers.temporal_softmax_loss(x, y, np.ones_like(m)),
        "not averaged": lambda x, y, m: tuple(v * x.shape[0] for v in layers.temporal_softmax_loss(x, y, m)),
        "naive exp overflows": _naive_loss,
        "dx zero": lambda x, y, m: (layers.temporal_softmax_loss(x, y, m)[0], np.zeros_like(x)),
        "loss without dx": lambda x, y, m: layers.temporal_softmax_loss(x, y, m)[0],
        "dx unmasked": lambda x, y, m: (
            layers.temporal_softmax_loss(x, y, m)[0], layers.temporal_softmax_loss(x, y, np.ones_like(m))[1]),
        "log base 2": lambda x, y, m: tuple(v / np.log(2) for v in layers.temporal_softmax_loss(x, y, m)),
    },
    "rnn_sample": {
        "argmax": _sample_with(lambda s, rng: s.argmax(axis=1)),
        "no feedback": _sample_with(lambda s, rng: _inverse_cdf(_softmax(s), rng), feed_back=False),
        "h reset each step": _sample_with(lambda s, rng: _inverse_cdf(_softmax(s), rng), carry=False),
        "temperature 0.5": _sample_with(lambda s, rng: _inverse_cdf(_softmax(s, 0.5), rng)),
        "global np.random": _sample_with(lambda s, rng: _inverse_cdf(_softmax(s), np.random.default_rng())),
        "uniform sampling": _sample_with(lambda s, rng: rng.integers(0, s.shape[1], len(s))),
        "float indices": lambda *a: layers.rnn_sample(*a).astype(float),
        "includes x0": lambda x0, *a: np.concatenate([x0[:, None], layers.rnn_sample(x0, *a)[:, :-1]], axis=1),
    },
}


@pytest.mark.parametrize("name,label", [(n, k) for n, d in WRONG.items() for k in d])
def test_wrong_implementations_fail(name, label):
    assert_check_fails(name, WRONG[name][label], label)


def test_every_exercise_has_correct_and_wrong_cases():
    assert set(CORRECT) == set(WRONG) == {ex.name for ex in check.exercises() if ex.notebook == "01"}

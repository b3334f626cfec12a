"""The checks of notebook 02 must pass every correct implementation and fail every wrong one.

As for notebook 01, the wrong implementations are written here independently of the hint list.
"""

import numpy as np
import pytest

from utils import check, layers

from .check_cases import assert_check_fails, assert_check_passes

pytestmark = pytest.mark.runs_for(seconds=100)  # see conftest.py: started first

# ---- correct variants ---------------------------------------------------------------------------


def step_backward_explicit(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dtanh = 1 - np.tanh(np.arctanh(np.clip(next_h, -1 + 1e-15, 1 - 1e-15))) ** 2
    da = dnext_h * dtanh
    return np.dot(da, Wx.T), np.dot(da, Wh.T), np.dot(x.T, da), np.dot(prev_h.T, da), np.sum(da, axis=0)


def step_backward_einsum(dout, cache):
    x, h_prev, A, B, h = cache
    g = dout * (1 - h * h)
    return (np.einsum("nh,dh->nd", g, A), np.einsum("nh,kh->nk", g, B), np.einsum("nd,nh->dh", x, g),
            np.einsum("nk,nh->kh", h_prev, g), g.sum(0))


def backward_with_list(dh, caches):
    grads, dnext = None, np.zeros_like(dh[:, 0])
    dxs = []
    for t in range(dh.shape[1] - 1, -1, -1):
        dx, dnext, *dw = layers.rnn_step_backward(dh[:, t] + dnext, caches[t])
        grads = dw if grads is None else [a + b for a, b in zip(grads, dw, strict=True)]
        dxs.insert(0, dx)
    return (np.stack(dxs, axis=1), dnext, *grads)


def tbptt_while(loss_fn, params, data, T, step, h0):
    losses, h, s = [], h0, 0
    while s + T < data.shape[1]:
        loss, grads, h = loss_fn(params, data[:, s:s + T], data[:, s + 1:s + T + 1], h)
        step(grads)
        losses.append(float(loss))
        s += T
    return np.array(losses), h


def sample_choice(scores, temperature, rng):
    out = []
    for row in scores:
        z = row / temperature
        p = np.exp(z - z.max())
        out.append(rng.choice(len(row), p=p / p.sum()))
    return np.array(out)


def sample_gumbel(scores, temperature, rng):
    return np.argmax(scores / temperature + rng.gumbel(size=scores.shape), axis=1)


def sample_power(scores, temperature, rng):
    """softmax(s)^(1/T), renormalised, is softmax(s / T): a legitimate way to apply a temperature."""
    p = layers.softmax(scores) ** (1 / temperature)
    p /= p.sum(axis=1, keepdims=True)
    return np.array([rng.choice(p.shape[1], p=row) for row in p])


CORRECT = {
    "rnn_step_backward": [layers.rnn_step_backward, step_backward_explicit, step_backward_einsum],
    "rnn_backward": [layers.rnn_backward, backward_with_list],
    "truncated_bptt": [check.get("truncated_bptt").reference, tbptt_while],
    "temperature_sample": [layers.temperature_sample, sample_choice, sample_gumbel, sample_power],
}


@pytest.mark.parametrize(
    "name,fn", [(n, f) for n, fns in CORRECT.items() for f in fns], ids=lambda v: getattr(v, "__name__", v)
)
def test_correct_variants_pass(name, fn):
    assert_check_passes(name, fn)


# ---- wrong implementations ----------------------------------------------------------------------


def _step_backward(dtanh=lambda h: 1 - h**2, db_axis=0, transpose_dWh=False):
    def wrong(dnext_h, cache):
        x, prev_h, Wx, Wh, next_h = cache
        da = dnext_h * dtanh(next_h)
        dWh = da.T @ prev_h if transpose_dWh else prev_h.T @ da
        return da @ Wx.T, da @ Wh.T, x.T @ da, dWh, da.sum(axis=db_axis)

    return wrong


def _backward(combine, accumulate=True, reverse=True):
    def wrong(dh, caches):
        N, T, H = dh.shape
        dx, dprev, acc = [None] * T, np.zeros((N, H)), None
        for t in (reversed(range(T)) if reverse else range(T)):
            dx[t], dprev, *dw = layers.rnn_step_backward(combine(dh, t, dprev), caches[t])
            acc = dw if acc is None or not accumulate else [a + b for a, b in zip(acc, dw, strict=True)]
        return (np.stack(dx, axis=1), dprev, *acc)

    return wrong


def _tbptt(chunk, carry=True, update=True, partial=False):
    def wrong(loss_fn, params, data, T, step, h0):
        losses, h = [], h0
        stop = data.shape[1] - (0 if partial else T)
        for s in range(0, stop, T):
            x, y = chunk(data, s, T)
            loss, grads, h_last = loss_fn(params, x, y, h if carry else h0)
            h = h_last
            if update:
                step(grads)
            losses.append(loss)
        return losses, h

    return wrong


def _sample(transform):
    def wrong(scores, temperature, rng):
        p = transform(np.asarray(scores, dtype=float), temperature)
        return np.array([rng.choice(p.shape[1], p=row) for row in p])

    return wrong


def _softmax(z, axis=1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _naive_sample(scores, temperature, rng):
    e = np.exp(scores / temperature)
    p = e / e.sum(axis=1, keepdims=True)
    return np.array([rng.choice(p.shape[1], p=row) if np.isfinite(row).all() else 0 for row in p])


WRONG = {
    "rnn_step_backward": {
        "no tanh derivative": _step_backward(dtanh=lambda h: 1.0),
        "1 - h": _step_backward(dtanh=lambda h: 1 - h),
        "sigmoid derivative": _step_backward(dtanh=lambda h: h * (1 - h)),
        "dWh transposed": _step_backward(transpose_dWh=True),
        "db not summed": _step_backward(db_axis=None),
        "dx without Wx": lambda d, c: (d * (1 - c[4] ** 2), *layers.rnn_step_backward(d, c)[1:]),
        "returns four": lambda d, c: layers.rnn_step_backward(d, c)[:4],
        "derivative from prev_h": lambda d, c: layers.rnn_step_backward(d * (1 - c[1] ** 2) / (1 - c[4] ** 2), c),
    },
    "rnn_backward": {
        "no accumulation": _backward(lambda dh, t, dp: dh[:, t] + dp, accumulate=False),
        "ignores dprev": _backward(lambda dh, t, dp: dh[:, t]),
        "only last upstream": _backward(lambda dh, t, dp: dp + (dh[:, t] if t == dh.shape[1] - 1 else 0)),
        "forward order": _backward(lambda dh, t, dp: dh[:, t] + dp, reverse=False),
        "dh0 zero": lambda dh, c: (lambda r: (r[0], np.zeros_like(r[1]), *r[2:]))(layers.rnn_backward(dh, c)),
        "averaged over time": lambda dh, c: (lambda r: (*r[:2], *(g / dh.shape[1] for g in r[2:])))(
            layers.rnn_backward(dh, c)),
    },
    "truncated_bptt": {
        "state reset every chunk": _tbptt(lambda d, s, T: (d[:, s:s + T], d[:, s + 1:s + T + 1]), carry=False),
        "targets not shifted": _tbptt(lambda d, s, T: (d[:, s:s + T], d[:, s:s + T])),
        "overlapping chunks": lambda f, p, d, T, st, h0: _tbptt(
            lambda d, s, T: (d[:, s // T:s // T + T], d[:, s // T + 1:s // T + T + 1]))(f, p, d, T, st, h0),
        "no update": _tbptt(lambda d, s, T: (d[:, s:s + T], d[:, s + 1:s + T + 1]), update=False),
        "partial last chunk": _tbptt(lambda d, s, T: (d[:, s:s + T][:, : d.shape[1] - s - 1],
                                                      d[:, s + 1:s + T + 1]), partial=True),
        "returns first state": lambda f, p, d, T, st, h0: (
            _tbptt(lambda d, s, T: (d[:, s:s + T], d[:, s + 1:s + T + 1]))(f, p, d, T, st, h0)[0], h0),
    },
    "temperature_sample": {
        "no temperature": _sample(lambda s, T: _softmax(s)),
        "multiplied": _sample(lambda s, T: _softmax(s * T)),
        "argmax": lambda s, T, rng: np.argmax(s, axis=1),
        "naive exp": _naive_sample,
        "probabilities divided by T": _sample(lambda s, T: _softmax(s) / T / (_softmax(s) / T).sum(1, keepdims=True)),
        "softmax over the batch": _sample(lambda s, T: _softmax(s / T, axis=0) / _softmax(s / T, axis=0).sum(
            1, keepdims=True)),
        "global np.random": lambda s, T, rng: layers.temperature_sample(s, T, np.random.default_rng()),
        "float indices": lambda s, T, rng: layers.temperature_sample(s, T, rng).astype(float),
    },
}


@pytest.mark.parametrize("name,label", [(n, k) for n, d in WRONG.items() for k in d])
def test_wrong_implementations_fail(name, label):
    assert_check_fails(name, WRONG[name][label], label)


@pytest.mark.parametrize("label,needle", [
    ("state reset every chunk", "Carry the hidden state"),
    ("targets not shifted", "next character"),
    ("partial last chunk", "full chunks"),
])
def test_tbptt_hints_name_the_mistake(label, needle):
    result = check.run("truncated_bptt", WRONG["truncated_bptt"][label])
    assert needle in result.message, result.message


def test_rnn_backward_hint_names_missing_accumulation():
    result = check.run("rnn_backward", WRONG["rnn_backward"]["no accumulation"])
    assert "add up the per-step gradients" in result.message, result.message


def test_every_exercise_has_correct_and_wrong_cases():
    assert set(CORRECT) == set(WRONG) == {ex.name for ex in check.exercises() if ex.notebook == "02"}

"""The numpy LSTM, GRU and clipping against torch (float64), with weights copied across."""

import numpy as np
import pytest
import torch

from utils import gates
from utils.gradcheck import numerical_gradient

pytestmark = pytest.mark.usefixtures("torch_float64")


def _params(rng, D, H, k):
    return rng.standard_normal((D, k * H)) * 0.5, rng.standard_normal((H, k * H)) * 0.5, rng.standard_normal(k * H)


def _torch_lstm(Wx, Wh, b):
    """torch.nn.LSTM with our weights: its gate order is i, f, g, o, its weights transposed, two biases."""
    H = Wh.shape[0]
    order = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]  # ours i f o g -> torch's i f g o
    lstm = torch.nn.LSTM(Wx.shape[0], H, batch_first=True)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(Wx[:, order].T))
        lstm.weight_hh_l0.copy_(torch.from_numpy(Wh[:, order].T))
        lstm.bias_ih_l0.copy_(torch.from_numpy(b[order]))
        lstm.bias_hh_l0.zero_()
    return lstm


def test_lstm_forward_and_backward_match_torch():
    rng = np.random.default_rng(0)
    N, T, D, H = 3, 7, 4, 5
    Wx, Wh, b = _params(rng, D, H, 4)
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    h, cache = gates.lstm_forward(x, h0, Wx, Wh, b)
    lstm = _torch_lstm(Wx, Wh, b)
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0[None], requires_grad=True)
    out, _ = lstm(tx, (th0, torch.zeros(1, N, H)))
    assert np.allclose(h, out.detach().numpy(), atol=1e-12)
    dh = rng.standard_normal(h.shape)
    (out * torch.from_numpy(dh)).sum().backward()
    dx, dh0, dWx, dWh, db = gates.lstm_backward(dh, cache)
    H4 = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]
    assert np.allclose(dx, tx.grad.numpy(), atol=1e-12)
    assert np.allclose(dh0, th0.grad.numpy()[0], atol=1e-12)
    assert np.allclose(dWx[:, H4].T, lstm.weight_ih_l0.grad.numpy(), atol=1e-12)
    assert np.allclose(dWh[:, H4].T, lstm.weight_hh_l0.grad.numpy(), atol=1e-12)
    assert np.allclose(db[H4], lstm.bias_ih_l0.grad.numpy(), atol=1e-12)


def test_lstm_step_matches_the_sequence_and_numerical_gradients():
    rng = np.random.default_rng(1)
    N, D, H = 2, 3, 4
    Wx, Wh, b = _params(rng, D, H, 4)
    x, h0 = rng.standard_normal((N, 1, D)), rng.standard_normal((N, H))
    c0 = np.zeros((N, H))
    h_seq, _ = gates.lstm_forward(x, h0, Wx, Wh, b)
    next_h, next_c, cache = gates.lstm_step_forward(x[:, 0], h0, c0, Wx, Wh, b)
    assert np.allclose(next_h, h_seq[:, 0])
    prev_c = rng.standard_normal((N, H))
    inputs = {"x": x[:, 0], "prev_h": h0, "prev_c": prev_c, "Wx": Wx, "Wh": Wh, "b": b}
    next_h, next_c, cache = gates.lstm_step_forward(*inputs.values())
    dnh, dnc = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    grads = dict(zip(inputs, gates.lstm_step_backward(dnh, dnc, cache)[:3] + gates.lstm_step_backward(
        dnh, dnc, cache)[3:], strict=True))
    for name in inputs:
        def f(v, name=name):
            h, c, _ = gates.lstm_step_forward(*{**inputs, name: v}.values())
            return np.sum(h * dnh) + np.sum(c * dnc)

        assert np.allclose(grads[name], numerical_gradient(f, inputs[name].copy()), atol=1e-8), name


def test_gru_step_is_the_lecture_formula_and_differs_from_torch():
    rng = np.random.default_rng(2)
    N, D, H = 4, 3, 5
    Wx, Wh, b = _params(rng, D, H, 3)
    x, h = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    next_h, _ = gates.gru_step_forward(x, h, Wx, Wh, b)
    s = gates.sigmoid
    z = s(x @ Wx[:, :H] + h @ Wh[:, :H] + b[:H])
    r = s(x @ Wx[:, H:2 * H] + h @ Wh[:, H:2 * H] + b[H:2 * H])
    n = np.tanh(x @ Wx[:, 2 * H:] + (r * h) @ Wh[:, 2 * H:] + b[2 * H:])
    assert np.allclose(next_h, z * h + (1 - z) * n)
    # torch: gates ordered r, z, n; the reset multiplies the product (Wh_n h), not h
    cell = torch.nn.GRUCell(D, H)
    order = np.r_[H:2 * H, 0:H, 2 * H:3 * H]
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(Wx[:, order].T))
        cell.weight_hh.copy_(torch.from_numpy(Wh[:, order].T))
        cell.bias_ih.copy_(torch.from_numpy(b[order]))
        cell.bias_hh.zero_()
    theirs = cell(torch.from_numpy(x), torch.from_numpy(h)).detach().numpy()
    n_after = np.tanh(x @ Wx[:, 2 * H:] + r * (h @ Wh[:, 2 * H:]) + b[2 * H:])
    assert np.allclose(theirs, z * h + (1 - z) * n_after, atol=1e-12)
    assert not np.allclose(theirs, next_h, atol=1e-3)


def test_clip_grad_norm_matches_torch_and_keeps_direction():
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal((3, 4)) * 10, rng.standard_normal(5)]
    clipped, norm = gates.clip_grad_norm(grads, 1.0)
    params = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.from_numpy(g.copy())
    assert np.isclose(norm, torch.nn.utils.clip_grad_norm_(params, 1.0).item())
    for c, p in zip(clipped, params, strict=True):
        assert np.allclose(c, p.grad.numpy(), rtol=1e-6)
    flat = np.concatenate([c.ravel() for c in clipped])
    assert np.isclose(np.linalg.norm(flat), 1.0)
    same, n2 = gates.clip_grad_norm({"a": grads[1] * 1e-3}, 1.0)
    assert np.allclose(same["a"], grads[1] * 1e-3) and n2 < 1.0


def test_sigmoid_does_not_overflow():
    with np.errstate(all="raise"):
        assert np.allclose(gates.sigmoid(np.array([-1000.0, 0.0, 1000.0])), [0.0, 0.5, 1.0])

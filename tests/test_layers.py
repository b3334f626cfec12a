"""The reference numpy layers against independent implementations: torch.nn and autograd (float64)."""

import numpy as np
import pytest
import torch

from utils import layers
from utils.gradcheck import numerical_gradient, rel_error

pytestmark = pytest.mark.usefixtures("torch_float64")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _rnn_inputs(rng, N=3, T=5, D=4, H=6):
    return (rng.standard_normal((N, T, D)), rng.standard_normal((N, H)),
            rng.standard_normal((D, H)) / 2, rng.standard_normal((H, H)) / 2, rng.standard_normal(H))


def _torch_rnn(Wx, Wh, b):
    """torch.nn.RNN holding our weights: torch stores them transposed and splits the bias in two."""
    D, H = Wx.shape
    rnn = torch.nn.RNN(D, H, batch_first=True, nonlinearity="tanh")
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(Wx.T))
        rnn.weight_hh_l0.copy_(torch.from_numpy(Wh.T))
        rnn.bias_ih_l0.copy_(torch.from_numpy(b))
        rnn.bias_hh_l0.zero_()
    return rnn


def test_rnn_forward_matches_torch(rng):
    x, h0, Wx, Wh, b = _rnn_inputs(rng)
    ours, _ = layers.rnn_forward(x, h0, Wx, Wh, b)
    theirs, _ = _torch_rnn(Wx, Wh, b)(torch.from_numpy(x), torch.from_numpy(h0)[None])
    assert rel_error(ours, theirs.detach().numpy()) < 1e-12


def test_rnn_step_forward_is_one_step_of_torch(rng):
    x, h0, Wx, Wh, b = _rnn_inputs(rng, T=1)
    ours, _ = layers.rnn_step_forward(x[:, 0], h0, Wx, Wh, b)
    theirs, _ = _torch_rnn(Wx, Wh, b)(torch.from_numpy(x), torch.from_numpy(h0)[None])
    assert rel_error(ours, theirs[:, 0].detach().numpy()) < 1e-12


def test_rnn_backward_matches_autograd(rng):
    x, h0, Wx, Wh, b = _rnn_inputs(rng)
    h, cache = layers.rnn_forward(x, h0, Wx, Wh, b)
    dh = rng.standard_normal(h.shape)
    ours = layers.rnn_backward(dh, cache)
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, h0, Wx, Wh, b)]
    tx, th0, tWx, tWh, tb = tensors
    ht, outs = th0, []
    for t in range(x.shape[1]):
        ht = torch.tanh(tx[:, t] @ tWx + ht @ tWh + tb)
        outs.append(ht)
    (torch.stack(outs, 1) * torch.from_numpy(dh)).sum().backward()
    for mine, t in zip(ours, tensors, strict=True):
        assert rel_error(mine, t.grad.numpy()) < 1e-10


def test_temporal_affine_matches_autograd(rng):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    out, cache = layers.temporal_affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    t_out = torch.nn.functional.linear(tensors[0], tensors[1].T, tensors[2])
    (t_out * torch.from_numpy(dout)).sum().backward()
    assert rel_error(out, t_out.detach().numpy()) < 1e-12
    for mine, t in zip(layers.temporal_affine_backward(dout, cache), tensors, strict=True):
        assert rel_error(mine, t.grad.numpy()) < 1e-12


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_temporal_softmax_loss_matches_torch(rng, scale):
    N, T, V = 4, 6, 7
    x = scale * rng.standard_normal((N, T, V))
    y = rng.integers(0, V, (N, T))
    mask = rng.random((N, T)) < 0.6
    loss, dx = layers.temporal_softmax_loss(x, y, mask)
    tx = torch.tensor(x, requires_grad=True)
    per_step = torch.nn.functional.cross_entropy(tx.reshape(-1, V), torch.from_numpy(y).reshape(-1), reduction="none")
    t_loss = (per_step * torch.from_numpy(mask.reshape(-1)).double()).sum() / N
    t_loss.backward()
    assert np.isfinite(loss) and rel_error(loss, t_loss.item()) < 1e-12
    assert rel_error(dx, tx.grad.numpy()) < 1e-10


def _torch_greedy_path(x0, h0, Wx, Wh, b, Wy, by, T):
    """Argmax decoding with torch.nn.RNNCell, and the smallest winning probability on the way."""
    V, H = Wx.shape
    cell = torch.nn.RNNCell(V, H)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(Wx.T))
        cell.weight_hh.copy_(torch.from_numpy(Wh.T))
        cell.bias_ih.copy_(torch.from_numpy(b))
        cell.bias_hh.zero_()
        x, h, path, surest = torch.from_numpy(x0), torch.from_numpy(h0), [], 1.0
        for _ in range(T):
            h = cell(torch.nn.functional.one_hot(x, V).double(), h)
            p = torch.softmax(h @ torch.from_numpy(Wy) + torch.from_numpy(by), dim=1)
            surest = min(surest, p.max(dim=1).values.min().item())
            x = p.argmax(dim=1)
            path.append(x.numpy())
    return np.stack(path, axis=1), surest


def test_rnn_sample_follows_torch_rnn_cell_when_certain(rng):
    V, H, N, T = 5, 8, 6, 7
    surest = 0.0
    while surest < 1 - 1e-9:  # a model so peaked that sampling has only one likely outcome
        Wx, Wh, b = rng.standard_normal((V, H)), rng.standard_normal((H, H)) / 2, rng.standard_normal(H)
        Wy, by = 100 * rng.standard_normal((H, V)), rng.standard_normal(V)
        x0, h0 = rng.integers(0, V, N), rng.uniform(-1, 1, (N, H))
        path, surest = _torch_greedy_path(x0, h0, Wx, Wh, b, Wy, by, T)
    ours = layers.rnn_sample(x0, h0, Wx, Wh, b, Wy, by, T, np.random.default_rng(0))
    assert np.array_equal(ours, path)


def test_rnn_sample_first_token_frequencies_match_softmax(rng):
    V, H, n = 4, 5, 200_000
    Wx, Wh, b = rng.standard_normal((V, H)), rng.standard_normal((H, H)), rng.standard_normal(H)
    Wy, by = rng.standard_normal((H, V)), rng.standard_normal(V)
    h1 = torch.tanh(torch.from_numpy(Wx[2] + b))
    p = torch.softmax(h1 @ torch.from_numpy(Wy) + torch.from_numpy(by), dim=0).numpy()
    out = layers.rnn_sample(np.full(n, 2), np.zeros((n, H)), Wx, Wh, b, Wy, by, 1, np.random.default_rng(5))
    freq = np.bincount(out[:, 0], minlength=V) / n
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n))


def test_numerical_gradient_of_a_known_function(rng):
    x = rng.standard_normal((3, 4))
    assert rel_error(numerical_gradient(lambda v: (v**3).sum(), x.copy()), 3 * x**2) < 1e-8
    df = rng.standard_normal((3, 4))
    assert rel_error(numerical_gradient(np.sin, x.copy(), df), np.cos(x) * df) < 1e-8


def test_adam_minimises_a_quadratic():
    from utils.train import Adam

    params = {"w": np.array([3.0, -2.0])}
    opt = Adam(params, lr=0.1)
    for _ in range(500):
        opt.step({"w": 2 * params["w"]})
    assert np.abs(params["w"]).max() < 1e-2

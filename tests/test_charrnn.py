"""The numpy char RNN: its gradients, the truncated-BPTT loop, evaluation and throughput."""

import math

import numpy as np
import pytest

from utils import charrnn, layers
from utils.gradcheck import numerical_gradient
from utils.train import Adam


def _setup(N=3, T=6, V=5, H=7, seed=0):
    rng = np.random.default_rng(seed)
    params = charrnn.init_params(V, H, rng)
    params["Wy"] *= 50  # make the output layer matter for the gradient check
    x, y = rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))
    return params, x, y, rng.uniform(-0.5, 0.5, (N, H))


def test_char_rnn_loss_gradients_match_numerical():
    params, x, y, h0 = _setup()
    loss, grads, h_last = charrnn.char_rnn_loss(params, x, y, h0)
    for name in params:
        def f(value, name=name):
            return charrnn.char_rnn_loss({**params, name: value}, x, y, h0)[0]

        num = numerical_gradient(f, params[name].copy())
        assert np.abs(grads[name] - num).max() < 1e-7 * max(1.0, np.abs(num).max()), name
    onehot = np.eye(params["Wx"].shape[0])[x]
    h, _ = layers.rnn_forward(onehot, h0, params["Wx"], params["Wh"], params["b"])
    assert np.allclose(h_last, h[:, -1])


def test_truncated_bptt_carries_state_and_uses_full_chunks():
    params, _, _, h0 = _setup()
    data = np.random.default_rng(1).integers(0, 5, (3, 23))  # 22 targets: 4 full chunks of 5
    seen = []

    def loss_fn(p, x, y, h):
        seen.append((x, y, h))
        return charrnn.char_rnn_loss(p, x, y, h)

    losses, h = charrnn.truncated_bptt(loss_fn, params, data, 5, lambda g: None, h0)
    assert len(losses) == len(seen) == 4
    assert np.array_equal(seen[1][0], data[:, 5:10]) and np.array_equal(seen[1][1], data[:, 6:11])
    assert np.allclose(seen[0][2], h0)
    assert np.allclose(seen[2][2], charrnn.char_rnn_loss(params, seen[1][0], seen[1][1], seen[1][2])[2])


def test_training_lowers_the_loss_on_a_repetitive_text():
    rng = np.random.default_rng(0)
    ids = np.tile(np.arange(5), 400)
    params = charrnn.init_params(5, 16, rng)
    data = charrnn.streams(ids, 4)
    before = charrnn.bits_per_char(params, data)
    losses, _ = charrnn.truncated_bptt(charrnn.char_rnn_loss, params, data, 10, Adam(params, lr=0.05).step,
                                       np.zeros((4, 16)))
    assert before > 2.0 and charrnn.bits_per_char(params, data) < 0.1 < losses[0]


def test_bits_per_char_is_the_loss_in_bits():
    params, _, _, _ = _setup(H=4)
    data = np.random.default_rng(2).integers(0, 5, (2, 11))
    loss, _, _ = charrnn.char_rnn_loss(params, data[:, :10], data[:, 1:], np.zeros((2, 4)))
    assert math.isclose(charrnn.bits_per_char(params, data, T=4), loss / 10 / math.log(2), rel_tol=1e-12)


def test_streams_errors():
    assert charrnn.streams(np.arange(10), 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(ValueError, match="1-D"):
        charrnn.streams(np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match="cannot make"):
        charrnn.streams(np.arange(3), 2)


def test_chars_per_second_is_positive():
    assert charrnn.chars_per_second(2, 5, 8, 6, chunks=3, rng=np.random.default_rng(0)) > 0

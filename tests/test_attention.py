"""The numpy attention layers of notebook 05 against torch autograd, and the torch penalty against numpy."""

import numpy as np
import pytest
import torch

from utils import attend, attention


def _inputs(rng, N=3, L=7, D=5, H=4, A=6):
    return {"h": rng.uniform(-1, 1, (N, H)), "V": rng.standard_normal((N, L, D)),
            "W_h": rng.standard_normal((H, A)) / 2, "W_v": rng.standard_normal((D, A)) / 2,
            "w": rng.standard_normal(A)}


def _torch_attention(h, V, W_h, W_v, w):
    alpha = (torch.tanh(V @ W_v + (h @ W_h)[:, None]) @ w).softmax(dim=1)
    return (alpha[:, :, None] * V).sum(dim=1), alpha


@pytest.mark.parametrize("with_dalpha", [True, False])
def test_attention_matches_autograd(with_dalpha):
    rng = np.random.default_rng(0)
    args = _inputs(rng)
    z, alpha, cache = attention.attention_forward(**args)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in args.items()}
    tz, talpha = _torch_attention(**tensors)
    np.testing.assert_allclose(z, tz.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(alpha, talpha.detach().numpy(), rtol=1e-12)
    dz, dalpha = rng.standard_normal(z.shape), rng.standard_normal(alpha.shape) if with_dalpha else None
    total = (tz * torch.tensor(dz)).sum() + ((talpha * torch.tensor(dalpha)).sum() if with_dalpha else 0)
    total.backward()
    for name, grad in zip(("h", "V", "W_h", "W_v", "w"), attention.attention_backward(dz, dalpha, cache),
                          strict=True):
        np.testing.assert_allclose(grad, tensors[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_softmax_is_stable_and_sums_to_one():
    scores = np.array([[1000.0, 999.0, -1000.0], [0.0, 0.0, 0.0]])
    alpha = attention.softmax(scores, axis=1)
    assert np.all(np.isfinite(alpha))
    np.testing.assert_allclose(alpha.sum(axis=1), 1)
    np.testing.assert_allclose(alpha[1], 1 / 3)


def test_one_location_takes_all_the_attention():
    args = _inputs(np.random.default_rng(1), L=1)
    z, alpha, cache = attention.attention_forward(**args)
    np.testing.assert_array_equal(alpha, 1.0)
    np.testing.assert_allclose(z, args["V"][:, 0])
    dh, dV, dW_h, dW_v, dw = attention.attention_backward(np.ones_like(z), None, cache)
    assert not dh.any() and not dW_h.any() and not dW_v.any() and not dw.any()


def test_penalty_matches_its_torch_twin_and_ignores_padding():
    rng = np.random.default_rng(2)
    alpha = rng.dirichlet(np.ones(9), size=(4, 6))
    mask = np.arange(6)[None] < np.array([6, 3, 1, 4])[:, None]
    value, dalpha = attention.doubly_stochastic_penalty(alpha, mask)
    t = torch.tensor(alpha, requires_grad=True)
    attend.penalty(t, torch.tensor(mask, dtype=torch.float64)).mean().backward()
    np.testing.assert_allclose(value, attend.penalty(torch.tensor(alpha), torch.tensor(mask, dtype=torch.float64))
                               .mean().item(), rtol=1e-12)
    np.testing.assert_allclose(dalpha, t.grad.numpy(), rtol=1e-12)
    changed = alpha.copy()
    changed[~mask] = rng.dirichlet(np.ones(9), size=int((~mask).sum()))
    assert attention.doubly_stochastic_penalty(changed, mask)[0] == pytest.approx(value, rel=1e-12)
    assert not dalpha[~mask].any()


def test_penalty_with_fewer_steps_than_locations_is_lowest_for_uniform_attention():
    """With T < L no location can get a full unit of attention; the penalty then prefers spreading out."""
    T, L = 4, 16
    uniform = np.full((1, T, L), 1 / L)
    distinct = np.zeros((1, T, L))
    distinct[0, np.arange(T), np.arange(T)] = 1  # a different location at every step
    same = np.zeros((1, T, L))
    same[0, :, 0] = 1                              # the same location at every step
    mask = np.ones((1, T), bool)
    values = [attention.doubly_stochastic_penalty(a, mask)[0] for a in (uniform, distinct, same)]
    assert values[0] < values[1] < values[2]
    assert values[0] == pytest.approx(L * (1 - T / L) ** 2)

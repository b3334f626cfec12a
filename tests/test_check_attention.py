"""The checks of notebook 05 must pass every correct implementation and fail every wrong one."""

import numpy as np
import pytest
import torch

from utils import attend, attention, check
from utils.check import attention as checks

from .check_cases import assert_check_fails, assert_check_passes

# ---- correct variants ---------------------------------------------------------------------------


def forward_loops(h, V, W_h, W_v, w):
    """One example and one location at a time; the softmax written out with Python's max."""
    N, L, D = V.shape
    z, alpha = np.zeros((N, D)), np.zeros((N, L))
    hidden = np.zeros((N, L, len(w)))
    for n in range(N):
        scores = []
        for i in range(L):
            hidden[n, i] = np.tanh(V[n, i] @ W_v + h[n] @ W_h)
            scores.append(hidden[n, i] @ w)
        top = max(scores)
        e = [np.exp(s - top) for s in scores]
        for i in range(L):
            alpha[n, i] = e[i] / sum(e)
            z[n] += alpha[n, i] * V[n, i]
    return z, alpha, (h, V, W_h, W_v, w, hidden, alpha)


def forward_einsum_float32(h, V, W_h, W_v, w):
    """einsum throughout, computed in float32 whatever the inputs."""
    h, V, W_h, W_v, w = (np.asarray(a, dtype=np.float32) for a in (h, V, W_h, W_v, w))
    hidden = np.tanh(np.einsum("nld,da->nla", V, W_v) + np.einsum("nh,ha->na", h, W_h)[:, None])
    e = np.einsum("nla,a->nl", hidden, w)
    e = np.exp(e - e.max(axis=1, keepdims=True))
    alpha = e / e.sum(axis=1, keepdims=True)
    return np.einsum("nl,nld->nd", alpha, V), alpha, {"anything": "a cache of the learner's own"}


def forward_torch(h, V, W_h, W_v, w):
    """torch's softmax and tanh on float64 tensors."""
    t = [torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (h, V, W_h, W_v, w)]
    th, tV, tWh, tWv, tw = t
    alpha = (torch.tanh(tV @ tWv + (th @ tWh)[:, None]) @ tw).softmax(dim=1)
    return (alpha[:, :, None] * tV).sum(dim=1).numpy(), alpha.numpy(), None


def backward_loops(dz, dalpha, cache):
    """Location by location, with the softmax's Jacobian built as a matrix."""
    h, V, W_h, W_v, w, hidden, alpha = cache
    N, L, D = V.shape
    dh, dV = np.zeros_like(h), np.zeros_like(V)
    dW_h, dW_v, dw = np.zeros_like(W_h), np.zeros_like(W_v), np.zeros_like(w)
    for n in range(N):
        da_n = V[n] @ dz[n] + (0 if dalpha is None else dalpha[n])
        jac = np.diag(alpha[n]) - np.outer(alpha[n], alpha[n])
        de = jac @ da_n
        for i in range(L):
            dV[n, i] += alpha[n, i] * dz[n]
            dw += de[i] * hidden[n, i]
            dpre = de[i] * w * (1 - hidden[n, i] ** 2)
            dV[n, i] += W_v @ dpre
            dW_v += np.outer(V[n, i], dpre)
            dh[n] += W_h @ dpre
            dW_h += np.outer(h[n], dpre)
    return dh, dV, dW_h, dW_v, dw


def backward_autograd(dz, dalpha, cache):
    """torch autograd through a rebuilt forward: what a learner who trusts torch would write."""
    h, V, W_h, W_v, w, _, _ = cache
    t = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in (h, V, W_h, W_v, w)]
    th, tV, tWh, tWv, tw = t
    alpha = (torch.tanh(tV @ tWv + (th @ tWh)[:, None]) @ tw).softmax(dim=1)
    z = (alpha[:, :, None] * tV).sum(dim=1)
    total = (z * torch.as_tensor(dz, dtype=torch.float64)).sum()
    if dalpha is not None:
        total = total + (alpha * torch.as_tensor(dalpha, dtype=torch.float64)).sum()
    return tuple(g.numpy() for g in torch.autograd.grad(total, t))


def forward_dict_cache(h, V, W_h, W_v, w):
    """A cache of the learner's own: a dict holding the pre-activation instead of the tanh."""
    pre = V @ W_v + (h @ W_h)[:, None, :]
    alpha = attention.softmax(np.tanh(pre) @ w, axis=1)
    return np.einsum("nl,nld->nd", alpha, V), alpha, {"inputs": (h, V, W_h, W_v, w), "pre": pre, "alpha": alpha}


def backward_dict_cache(dz, dalpha, cache):
    h, V, W_h, W_v, w = cache["inputs"]
    hidden, alpha = np.tanh(cache["pre"]), cache["alpha"]
    return attention.attention_backward(dz, dalpha, (h, V, W_h, W_v, w, hidden, alpha))


def penalty_loops(alpha, mask):
    N, T, L = alpha.shape
    value, dalpha = 0.0, np.zeros(alpha.shape)
    for n in range(N):
        for i in range(L):
            s = sum(alpha[n, t, i] for t in range(T) if mask[n, t])
            value += (1 - s) ** 2 / N
            for t in range(T):
                if mask[n, t]:
                    dalpha[n, t, i] = -2 * (1 - s) / N
    return value, dalpha


def penalty_float32_where(alpha, mask):
    a = np.where(np.asarray(mask, bool)[..., None], alpha, 0).astype(np.float32)
    gap = 1 - a.sum(axis=1)
    d = np.where(np.asarray(mask, bool)[..., None], -2 * gap[:, None] / len(a), 0)
    return np.float32((gap**2).sum(axis=1).mean()), d.astype(np.float32)


def reinforce_long_hand(log_prob, cost, entropy, baseline, entropy_weight=0.0, decay=0.9):
    """A loop, torch.no_grad for the advantage, the baseline returned as a 0-d tensor without grad."""
    with torch.no_grad():
        advantage = [c - baseline for c in cost]
    terms = [a * lp for a, lp in zip(advantage, log_prob, strict=True)]
    surrogate = torch.stack(terms).sum() / len(terms) - entropy_weight * entropy.sum() / len(entropy)
    with torch.no_grad():
        new = decay * torch.as_tensor(baseline) + (1 - decay) * cost.mean()
    return surrogate, new


def reinforce_weighted(log_prob, cost, entropy, baseline, entropy_weight=0.0, decay=0.9):
    """The bonus folded into one weighted sum."""
    a = cost.detach() - baseline
    surrogate = torch.mean(a * log_prob - entropy_weight * entropy)
    return surrogate, float(baseline + (1 - decay) * (cost.detach().mean().item() - baseline))


CORRECT = {
    "attention_forward": [attention.attention_forward, forward_loops, forward_einsum_float32, forward_torch],
    "attention_backward": [attention.attention_backward, backward_loops, backward_autograd],  # the course's cache
    "doubly_stochastic_penalty": [attention.doubly_stochastic_penalty, penalty_loops, penalty_float32_where],
    "reinforce_loss": [attend.reinforce_loss, reinforce_long_hand, reinforce_weighted],
}

# float32 arithmetic cannot meet the float64 tests' tolerance: it is tested where the inputs are float32 too.
FLOAT32_ONLY = {forward_einsum_float32, penalty_float32_where}


@pytest.mark.parametrize(
    "name,fn", [(n, f) for n, fns in CORRECT.items() for f in fns if f not in FLOAT32_ONLY],
    ids=lambda v: getattr(v, "__name__", v))
def test_correct_variants_pass(name, fn):
    assert_check_passes(name, fn)


def test_a_backward_reading_its_own_forwards_cache_passes_as_a_pair():
    assert_check_passes("attention_backward", backward_dict_cache, forward=forward_dict_cache)
    result = check.run("attention_backward", backward_dict_cache)  # given the course's cache instead
    assert not result.passed and "The cache it was given" in result.message, result.message


@pytest.mark.parametrize("name,fn", [("attention_forward", forward_einsum_float32),
                                     ("doubly_stochastic_penalty", penalty_float32_where)],
                         ids=lambda v: getattr(v, "__name__", v))
def test_float32_variants_pass_the_float32_tests(name, fn):
    from utils.check.core import Trial

    ex = check.get(name)
    tests = [test for title, test in ex.tests if "float32" in title]
    assert tests
    for seed in range(5):
        for test in tests:
            test(Trial(fn, ex, np.random.default_rng(seed)))


# ---- wrong implementations ----------------------------------------------------------------------


def _forward_no_cache(h, V, W_h, W_v, w):
    z, alpha, _ = attention.attention_forward(h, V, W_h, W_v, w)
    return z, alpha


def _forward_transposed_alpha(h, V, W_h, W_v, w):
    z, alpha, cache = attention.attention_forward(h, V, W_h, W_v, w)
    return z, alpha.T, cache


def _forward_sum_not_mean(h, V, W_h, W_v, w):
    """z as the plain sum of the feature vectors: what alpha = 1 everywhere would give."""
    z, alpha, cache = attention.attention_forward(h, V, W_h, W_v, w)
    return V.sum(axis=1), alpha, cache


def _forward_in_place(h, V, W_h, W_v, w):
    V -= V.mean()
    return attention.attention_forward(h, V, W_h, W_v, w)


def _on_cache(variant):
    """A mistake written from the forward's inputs, as a backward that reads the course's cache."""

    def backward(dz, dalpha, cache):
        return variant(dict(zip(("h", "V", "W_h", "W_v", "w"), cache[:5], strict=True)), (dz, dalpha))

    return backward


def _backward_dh_mean(dz, dalpha, cache):
    dh, dV, dW_h, dW_v, dw = attention.attention_backward(dz, dalpha, cache)
    return dh / cache[1].shape[1], dV, dW_h / cache[1].shape[1], dW_v, dw


def _backward_dw_one_example(dz, dalpha, cache):
    h, V, W_h, W_v, w, hidden, alpha = cache
    dh, dV, dW_h, dW_v, dw = attention.attention_backward(dz, dalpha, cache)
    first, *_ = attention.attention_backward(dz[:1], None if dalpha is None else dalpha[:1],
                                             (h[:1], V[:1], W_h, W_v, w, hidden[:1], alpha[:1]))[4:]
    return dh, dV, dW_h, dW_v, first


def _penalty_in_place(alpha, mask):
    alpha *= np.asarray(mask, dtype=alpha.dtype)[..., None]
    return attention.doubly_stochastic_penalty(alpha, mask)


def _reinforce_no_detach(log_prob, cost, entropy, baseline, entropy_weight=0.0, decay=0.9):
    surrogate = ((cost - baseline) * log_prob).mean() - entropy_weight * entropy.mean()
    return surrogate, decay * baseline + (1 - decay) * float(cost.detach().mean())


def _reinforce_item(log_prob, cost, entropy, baseline, entropy_weight=0.0, decay=0.9):
    surrogate, new = attend.reinforce_loss(log_prob, cost, entropy, baseline, entropy_weight, decay)
    return surrogate.item(), new


def _reinforce_detached_log_prob(log_prob, cost, entropy, baseline, entropy_weight=0.0, decay=0.9):
    return attend.reinforce_loss(log_prob.detach(), cost, entropy.detach(), baseline, entropy_weight, decay)


def _reinforce_in_place(log_prob, cost, entropy, baseline, entropy_weight=0.0, decay=0.9):
    advantage = cost.detach()
    advantage -= baseline
    return (advantage * log_prob).mean() - entropy_weight * entropy.mean(), baseline


def _reinforce_per_example(log_prob, cost, entropy, baseline, entropy_weight=0.0, decay=0.9):
    surrogate, new = attend.reinforce_loss(log_prob, cost, entropy, baseline, entropy_weight, decay)
    return (cost - baseline).detach() * log_prob, new


WRONG = {
    "attention_forward": {
        "softmax over the batch": checks._forward_variant(axis=0),
        "tanh dropped": checks._forward_variant(squash=lambda a: a),
        "z from the scores": checks._forward_variant(weights="scores"),
        "no max-subtraction": checks._forward_variant(stable=False),
        "sigmoid for tanh": checks._forward_variant(squash=lambda a: 1 / (1 + np.exp(-a))),
        "no cache": _forward_no_cache,
        "alpha transposed": _forward_transposed_alpha,
        "z as a sum": _forward_sum_not_mean,
        "modifies V": _forward_in_place,
    },
    "attention_backward": {
        "dV without the score path": _on_cache(checks._backward_variant(score_path=False)),
        "dV without the z path": _on_cache(checks._backward_variant(value_path=False)),
        "softmax Jacobian's sum term dropped": _on_cache(checks._backward_variant(softmax_jacobian=False)),
        "tanh derivative dropped": _on_cache(checks._backward_variant(tanh_grad=False)),
        "not summed over locations": _on_cache(checks._backward_variant(sum_locations=False)),
        "dalpha ignored": _on_cache(checks._backward_variant(use_dalpha=False)),
        "dh from location 0": _on_cache(checks._backward_variant(sum_locations="h first")),
        "dh averaged over locations": _backward_dh_mean,
        "dw from the first example": _backward_dw_one_example,
    },
    "doubly_stochastic_penalty": {
        "padding counted": checks._penalty_variant(masked=False),
        "mask ignored": checks._penalty_variant(masked=False, grad_masked=False),
        "summed over captions": checks._penalty_variant(reduce="sum"),
        "sum over locations": checks._penalty_variant(over="locations"),
        "not squared": checks._penalty_variant(square=False),
        "gradient sign": checks._penalty_variant(grad_sign=2),
        "gradient at padding": checks._penalty_variant(grad_masked=False),
        "modifies alpha": _penalty_in_place,
    },
    "reinforce_loss": {
        "no baseline": checks._reinforce_variant(baseline=False),
        "gradient through the reward": _reinforce_no_detach,
        "gradient through the baseline": checks._reinforce_variant(baseline_grad=True),
        "wrong sign": checks._reinforce_variant(sign=-1),
        "no entropy bonus": checks._reinforce_variant(bonus=0),
        "entropy penalised": checks._reinforce_variant(bonus=-1),
        "summed over examples": checks._reinforce_variant(reduce="sum"),
        "baseline updated first": checks._reinforce_variant(update_first=True),
        "decay swapped": checks._reinforce_variant(decay_swap=True),
        "returns a float": _reinforce_item,
        "log_prob detached": _reinforce_detached_log_prob,
        "modifies cost": _reinforce_in_place,
        "one term per example": _reinforce_per_example,
    },
}


@pytest.mark.parametrize("name,label", [(n, k) for n, d in WRONG.items() for k in d])
def test_wrong_implementations_fail(name, label):
    assert_check_fails(name, WRONG[name][label], label)


@pytest.mark.parametrize("name,label,needle", [
    ("attention_forward", "softmax over the batch", "over the L locations"),
    ("attention_forward", "tanh dropped", "tanh is missing"),
    ("attention_forward", "z from the scores", "raw scores"),
    ("attention_forward", "no max-subtraction", "maximum"),
    ("attention_backward", "dV without the score path", "V enters twice"),
    ("attention_backward", "dV without the z path", "direct path"),
    ("attention_backward", "softmax Jacobian's sum term dropped", "sum term"),
    ("attention_backward", "tanh derivative dropped", "1 - hidden**2"),
    ("attention_backward", "not summed over locations", "sum over all L locations"),
    ("attention_backward", "dalpha ignored", "dalpha, the gradient arriving"),
    ("attention_backward", "dh from location 0", "use location 0 only"),
    ("attention_backward", "dh averaged over locations", "L times too small"),
    ("doubly_stochastic_penalty", "padding counted", "Padded steps are counted"),
    ("doubly_stochastic_penalty", "mask ignored", "The mask is ignored"),
    ("doubly_stochastic_penalty", "summed over captions", "mean over the N captions"),
    ("doubly_stochastic_penalty", "sum over locations", "runs over time"),
    ("doubly_stochastic_penalty", "gradient at padding", "nonzero at padded steps"),
    ("reinforce_loss", "no baseline", "baseline is not subtracted"),
    ("reinforce_loss", "gradient through the reward", "gradient into `cost`"),
    ("reinforce_loss", "gradient through the baseline", "`new_baseline` carries gradient"),
    ("reinforce_loss", "wrong sign", "sign is reversed"),
    ("reinforce_loss", "no entropy bonus", "bonus is missing"),
    ("reinforce_loss", "entropy penalised", "wrong sign"),
    ("reinforce_loss", "baseline updated first", "before it is subtracted"),
    ("reinforce_loss", "returns a float", "one-number torch tensor"),
    ("reinforce_loss", "modifies cost", "in place"),
])
def test_hints_name_the_mistake(name, label, needle):
    result = check.run(name, WRONG[name][label])
    assert needle in result.message, result.message


def test_every_exercise_has_correct_and_wrong_cases():
    assert set(CORRECT) == set(WRONG) == {ex.name for ex in check.exercises() if ex.notebook == "05"}
    assert [ex.name for ex in check.exercises() if ex.notebook == "05"] == [
        "attention_forward", "attention_backward", "doubly_stochastic_penalty", "reinforce_loss"]


def test_the_bandit_gradient_is_exact():
    """The bandit tests compare with p * (c - J); that formula is d J / d theta, checked by autograd."""
    theta, costs, p, exact = checks._bandit(np.random.default_rng(0))
    t = torch.tensor(theta, requires_grad=True)
    (t.softmax(dim=0) @ torch.tensor(costs)).backward()
    np.testing.assert_allclose(t.grad.numpy(), exact, rtol=1e-12)

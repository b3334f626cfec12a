"""The checks of notebook 06 must pass every correct implementation and fail every wrong one."""

import numpy as np
import pytest
import torch

from utils import check, layers, vqa_layers
from utils.check import vqa as checks
from utils.models import attention_hop

from .check_cases import assert_check_fails, assert_check_passes

# ---- correct variants ---------------------------------------------------------------------------


def encoder_loop(x, lengths, h0, Wx, Wh, b):
    """Step by step, keeping each question's state when its last real token has been read."""
    h, q = h0, np.zeros_like(h0)
    for t in range(x.shape[1]):
        h, _ = layers.rnn_step_forward(x[:, t], h, Wx, Wh, b)
        q[lengths - 1 == t] = h[lengths - 1 == t]
    return q, None


def encoder_frozen(x, lengths, h0, Wx, Wh, b):
    """Padding leaves the state unchanged, so the state at the end is the one after the last real token."""
    h = h0
    for t in range(x.shape[1]):
        new = np.tanh(np.einsum("nd,dh->nh", x[:, t], Wx) + h @ Wh + b)
        h = np.where((t < lengths)[:, None], new, h)
    return h, {"lengths": lengths}


def encoder_take(x, lengths, h0, Wx, Wh, b):
    h, _ = layers.rnn_forward(x, h0, Wx, Wh, b)
    return np.take_along_axis(h, (lengths - 1)[:, None, None], axis=1)[:, 0], ()


def fusion_concatenated(q, v, Wq, Wv, b, mode):
    if mode == "concat":
        return np.concatenate([q, v], axis=1) @ np.concatenate([Wq, Wv], axis=0) + b, None
    return np.einsum("nm,nm->nm", q @ Wq, v @ Wv) + b, None


def fusion_loops(q, v, Wq, Wv, b, mode):
    z = np.zeros((len(q), Wq.shape[1]), dtype=np.result_type(q, Wq))
    for n in range(len(q)):
        a, c = q[n] @ Wq, v[n] @ Wv
        z[n] = (a + c if mode == "concat" else a * c) + b
    return z, (q, v, Wq, Wv, mode)


def fusion_backward_einsum(dz, cache):
    q, v, Wq, Wv, a, c, mode = cache
    da, dc = (dz, dz) if mode == "concat" else (dz * c, dz * a)
    return (np.einsum("nm,qm->nq", da, Wq), np.einsum("nm,vm->nv", dc, Wv), np.einsum("nq,nm->qm", q, da),
            np.einsum("nv,nm->vm", v, dc), np.einsum("nm->m", dz))


def fusion_backward_recomputed(dz, cache):
    """Recomputes the projections from the inputs instead of reading them from the cache."""
    q, v, Wq, Wv, _, _, mode = cache
    if mode == "concat":
        W = np.concatenate([Wq, Wv], axis=0)
        dx = dz @ W.T
        dW = np.concatenate([q, v], axis=1).T @ dz
        Q = q.shape[1]
        return dx[:, :Q], dx[:, Q:], dW[:Q], dW[Q:], dz.sum(axis=0)
    a, c = q @ Wq, v @ Wv
    return (dz * c) @ Wq.T, (dz * a) @ Wv.T, q.T @ (dz * c), v.T @ (dz * a), dz.sum(axis=0)


def hop_by_hand(u, keys, attention):
    scores = torch.einsum("nla,a->nl", torch.tanh(attention.W_k(keys) + attention.W_q(u)[:, None]),
                          attention.w.weight[0])
    alpha = torch.exp(scores - torch.logsumexp(scores, dim=1, keepdim=True))
    return u + torch.einsum("nl,nlk->nk", alpha, keys), alpha


def hop_from_weights(u, keys, attention):
    """Writes every product with the raw weight matrices."""
    Wk, Wq, bq, w = attention.W_k.weight, attention.W_q.weight, attention.W_q.bias, attention.w.weight
    e = (torch.tanh(keys @ Wk.T + (u @ Wq.T + bq)[:, None, :]) @ w.T)[..., 0]
    alpha = torch.softmax(e, dim=-1)
    return u + (alpha[:, :, None] * keys).sum(dim=1), alpha


CORRECT = {
    "question_encoder_forward": [vqa_layers.question_encoder_forward, encoder_loop, encoder_frozen, encoder_take],
    "fusion_forward": [vqa_layers.fusion_forward, fusion_concatenated, fusion_loops],
    "fusion_backward": [vqa_layers.fusion_backward, fusion_backward_einsum, fusion_backward_recomputed],
    "attention_hop": [attention_hop, hop_by_hand, hop_from_weights],
}


@pytest.mark.parametrize(
    "name,fn", [(n, f) for n, fns in CORRECT.items() for f in fns], ids=lambda v: getattr(v, "__name__", v)
)
def test_correct_variants_pass(name, fn):
    assert_check_passes(name, fn)


def test_confident_hop_allows_float32_rounding_of_large_scores():
    """A draw where two locations score close to 300: a correct hop that sums the scores in another order than the
    reference differs by 1.2e-5 in u_next, float32's rounding at that scale, and must still pass."""
    assert check.run("attention_hop", hop_by_hand, seed=737889449).passed


# ---- wrong implementations ----------------------------------------------------------------------


def _encoder_next_index(x, lengths, h0, Wx, Wh, b):
    h, _ = layers.rnn_forward(x, h0, Wx, Wh, b)
    return h[np.arange(len(x)), lengths], None  # IndexError for a question of full length


def _encoder_without_arange(x, lengths, h0, Wx, Wh, b):
    h, _ = layers.rnn_forward(x, h0, Wx, Wh, b)
    return h[:, lengths - 1], None


def _from_inputs(wrong):
    """A backward pass made from a mistake written as wrong(inputs, ups), reading the reference forward's cache."""

    def backward(dz, cache):
        q, v, Wq, Wv, _, _, mode = cache
        return wrong({"q": q, "v": v, "Wq": Wq, "Wv": Wv, "mode": mode}, (dz,))

    return backward


def _fusion_backward_no_bias(dz, cache):
    dq, dv, dWq, dWv, _ = vqa_layers.fusion_backward(dz, cache)
    return dq, dv, dWq, dWv


def _hop_naive_softmax(u, keys, attention):
    scores = attention.w(torch.tanh(attention.W_k(keys) + attention.W_q(u)[:, None])).squeeze(2)
    alpha = scores.exp() / scores.exp().sum(dim=1, keepdim=True)  # overflows once scores pass about 88 in float32
    return u + (alpha[:, :, None] * keys).sum(dim=1), alpha


def _hop_detached(u, keys, attention):
    u_next, alpha = attention_hop(u, keys, attention)
    return u_next.detach(), alpha.detach()


def _hop_numpy(u, keys, attention):
    u_next, alpha = attention_hop(u, keys, attention)
    return u_next.detach().numpy(), alpha.detach().numpy()


def _hop_in_place(u, keys, attention):
    context, alpha = attention(u, keys)
    u += context
    return u, alpha


def _hop_projected_context(u, keys, attention):
    context, alpha = attention(u, keys)
    return u + context * 0.5, alpha


WRONG = {
    "question_encoder_forward": {
        "padded end": checks._read_at(lambda h, lengths: h[:, -1]),
        "first token": checks._read_at(lambda h, lengths: h[:, 0]),
        "mean of the states": checks._read_at(checks._masked_mean),
        "stops at the shortest": checks._stop_early,
        "one step too far": _encoder_next_index,
        "no arange": _encoder_without_arange,
        "no cache": lambda x, lengths, h0, Wx, Wh, b: vqa_layers.question_encoder_forward(x, lengths, h0, Wx, Wh, b)[0],
    },
    "fusion_forward": {
        "always concat": checks._fusion_variant(force="concat"),
        "always product": checks._fusion_variant(force="product"),
        "no bias": checks._fusion_variant(bias=False),
        "no image": checks._fusion_variant(image=False),
        "no question": checks._fusion_variant(question=False),
        "transposed": lambda q, v, Wq, Wv, b, mode: (vqa_layers.fusion_forward(q, v, Wq, Wv, b, mode)[0].T, None),
    },
    "fusion_backward": {
        "ungated": _from_inputs(checks._fusion_backward_variant(gate=False)),
        "swapped": _from_inputs(checks._fusion_backward_variant(swap=True)),
        "weights ungated": _from_inputs(checks._fusion_backward_variant(weights_ungated=True)),
        "db mean": _from_inputs(checks._fusion_backward_variant(bias_mean=True)),
        "no db": _fusion_backward_no_bias,
    },
    "attention_hop": {
        "no residual": checks._hop_variant("no residual"),
        "softmax over the batch": checks._hop_variant("softmax over the batch"),
        "scores, not weights": checks._hop_variant("scores, not weights"),
        "uniform": checks._hop_variant("uniform"),
        "no bias": checks._hop_variant("no bias"),
        "maps swapped": checks._hop_variant("maps swapped"),
        "no tanh": checks._hop_variant("no tanh"),
        "naive softmax": _hop_naive_softmax,
        "detached": _hop_detached,
        "numpy": _hop_numpy,
        "in place": _hop_in_place,
        "half the context": _hop_projected_context,
    },
}


@pytest.mark.parametrize("name,label", [(n, k) for n, d in WRONG.items() for k in d])
def test_wrong_implementations_fail(name, label):
    assert_check_fails(name, WRONG[name][label], label)


@pytest.mark.parametrize("name,label,needle", [
    ("question_encoder_forward", "padded end", "state at the padded end"),
    ("question_encoder_forward", "mean of the states", "mean pooling"),
    ("question_encoder_forward", "stops at the shortest", "where the shortest question ends"),
    ("question_encoder_forward", "no arange", "h[np.arange(N), lengths - 1]"),
    ("fusion_forward", "always concat", "multiplied element by element"),
    ("fusion_forward", "always product", "are added"),
    ("fusion_forward", "no bias", "bias b is missing"),
    ("fusion_backward", "ungated", "scaled by the other side's value"),
    ("fusion_backward", "swapped", "factors are swapped"),
    ("fusion_backward", "weights ungated", "gated gradients"),
    ("fusion_backward", "db mean", "not the mean"),
    ("attention_hop", "no residual", "u_next = u + context"),
    ("attention_hop", "softmax over the batch", "over the batch (dim 0)"),
    ("attention_hop", "scores, not weights", "raw scores"),
    ("attention_hop", "uniform", "same weight 1 / L"),
    ("attention_hop", "no bias", "miss the bias b"),
    ("attention_hop", "maps swapped", "W_k and W_q are swapped"),
    ("attention_hop", "no tanh", "The tanh is missing"),
    ("attention_hop", "naive softmax", "NaN"),
    ("attention_hop", "detached", "carry no gradient"),
    ("attention_hop", "numpy", "expected a torch tensor"),
])
def test_hints_name_the_mistake(name, label, needle):
    for _ in range(3):
        result = check.run(name, WRONG[name][label])
        assert needle in result.message, result.message


def test_every_exercise_has_correct_and_wrong_cases():
    assert set(CORRECT) == set(WRONG) == {ex.name for ex in check.exercises() if ex.notebook == "06"}


def test_the_attention_module_travels_to_a_graded_worker_as_data():
    """Under grading the hop's AdditiveAttention is sent to the submission's worker as class, sizes and weights."""
    from utils.check import wire
    from utils.models import PORTABLE_MODULES, AdditiveAttention

    assert "AdditiveAttention" in PORTABLE_MODULES
    attention = AdditiveAttention(3, 4, 5).double()
    tree, blobs = wire.encode(attention, lambda v: pytest.fail(f"{type(v).__name__} did not travel as data"))
    sizes = [len(b) for b in blobs]
    back = wire.decode(tree, b"".join(blobs), wire.blob_table(sizes, sum(sizes)), None, None)
    assert type(back) is AdditiveAttention and back.sizes == (3, 4, 5)
    u, keys = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 6, 4, dtype=torch.float64)
    assert all(torch.equal(a, b) for a, b in zip(attention(u, keys), back(u, keys), strict=True))

"""Exercises of notebook 06: the many-to-one question encoder, fusion forward and backward, one attention hop.

Every known mistake is written as a function of the forward pass's inputs (never of a cache's layout), and
every test has deterministic edge cases (a question of one token and one of full length in the same batch,
a batch of one, one location to attend over) beside fresh random inputs.
"""

import numpy as np

from .. import models, vqa_layers
from ..layers import rnn_forward
from .battery import backward_test, call, call_vjp, describe_inputs, known_mistake, returns, snapshot, value_test
from .compare import Failure, as_array, compare_outputs, kind
from .core import Exercise, register
from .rnn_basics import FLOAT32

NB = "06"
FUSION_GRADS = ("dq", "dv", "dWq", "dWv", "db")


# --- the question encoder ------------------------------------------------------------------------

def _encoder_args(N=None, T=None, lengths=None, dtype=np.float64):
    """Padded questions: lengths drawn from 1..T (or given), the padding filled with one <NULL> embedding."""

    def make(rng):
        t = T or int(rng.integers(3, 8))
        if lengths == "edges":  # one question of a single token, one of full length, the rest in between
            n = N or int(rng.integers(3, 6))
            lens = rng.permutation(np.concatenate([[1, t], rng.integers(2, t, n - 2)]))
        elif lengths == "full":
            n = N or int(rng.integers(2, 5))
            lens = np.full(n, t)
        else:
            n = N or int(rng.integers(2, 6))
            lens = rng.integers(1, t, n) if n == 1 else rng.integers(1, t + 1, n)
        D = int(rng.integers(3, 6))
        H = D + int(rng.integers(1, 4))
        x = rng.standard_normal((n, t, D))
        x[np.arange(t)[None, :] >= lens[:, None]] = rng.standard_normal(D)  # the <NULL> word's embedding
        return {"x": x.astype(dtype), "lengths": lens.astype(np.int64), "h0": np.zeros((n, H), dtype),
                "Wx": (rng.standard_normal((D, H)) / np.sqrt(D)).astype(dtype),
                "Wh": (rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype),
                "b": (0.5 * rng.standard_normal(H)).astype(dtype)}

    return make


def _read_at(pick):
    """A wrong encoder: the RNN runs as it should, but the state is read where pick(h, lengths) says."""

    def wrong(x, lengths, h0, Wx, Wh, b):
        h, _ = rnn_forward(x, h0, Wx, Wh, b)
        return pick(h, np.asarray(lengths)), None

    return wrong


def _masked_mean(h, lengths):
    real = np.arange(h.shape[1])[None, :] < lengths[:, None]
    return (h * real[:, :, None]).sum(axis=1) / lengths[:, None]


def _stop_early(x, lengths, h0, Wx, Wh, b):
    """Runs only as many steps as the shortest question has and reads the last state."""
    h, _ = rnn_forward(x[:, :int(np.min(lengths))], h0, Wx, Wh, b)
    return h[:, -1], None


ENCODER_HINT = ("q[n] is the hidden state after question n's last real token, h[n, lengths[n] - 1]: index the "
                "questions and their time steps together, h[np.arange(N), lengths - 1].")

register(Exercise(
    "question_encoder_forward", NB, vqa_layers.question_encoder_forward,
    tests=[
        ("lengths 1 and T in one batch", value_test(_encoder_args(lengths="edges"), returns("q", "cache"), 1e-7,
                                                    hint=ENCODER_HINT)),
        ("random lengths", value_test(_encoder_args(), returns("q", "cache"), 1e-7, hint=ENCODER_HINT)),
        ("a batch of one (N=1), shorter than T", value_test(_encoder_args(N=1), returns("q", "cache"), 1e-7,
                                                            hint=ENCODER_HINT)),
        ("every question full length", value_test(_encoder_args(lengths="full"), returns("q", "cache"), 1e-7,
                                                  hint=ENCODER_HINT)),
        ("float32 inputs", value_test(_encoder_args(lengths="edges", dtype=np.float32), returns("q", "cache"),
                                      **FLOAT32)),
    ],
    mistakes=[
        (_read_at(lambda h, lengths: h[:, -1]),
         "That is the state at the padded end, h[:, -1]: for every question shorter than T it has also read the "
         "<NULL> padding, so a question's vector would depend on the longest question in its batch. Read "
         "h[np.arange(N), lengths - 1], the state after each question's last real token."),
        (_read_at(lambda h, lengths: h[np.arange(len(h)), np.minimum(lengths, h.shape[1] - 1)]),
         "One step too far: lengths[n] counts the real tokens, so the last one is at index lengths[n] - 1."),
        (_read_at(_masked_mean),
         "That is the average of the states over the real tokens (mean pooling); a many-to-one RNN's summary is "
         "its state after the last real token, h[np.arange(N), lengths - 1]."),
        (_stop_early,
         "Every question is read where the shortest question ends: run the RNN over all T steps and read each "
         "question after its own last real token, h[np.arange(N), lengths - 1]."),
    ],
))


# --- fusion --------------------------------------------------------------------------------------

def _fusion_args(mode, N=None, dtype=np.float64):
    def make(rng):
        n = N or int(rng.integers(2, 6))
        Q, V = int(rng.integers(3, 6)), int(rng.integers(6, 9))  # Q != V != M: a swapped weight cannot pass
        M = V + int(rng.integers(1, 3))
        return {"q": rng.standard_normal((n, Q)).astype(dtype), "v": rng.standard_normal((n, V)).astype(dtype),
                "Wq": (rng.standard_normal((Q, M)) / np.sqrt(Q)).astype(dtype),
                "Wv": (rng.standard_normal((V, M)) / np.sqrt(V)).astype(dtype),
                "b": rng.standard_normal(M).astype(dtype), "mode": mode}

    return make


def _fusion_variant(bias=True, image=True, question=True, force=None):
    """A wrong fusion forward, from its inputs."""

    def wrong(q, v, Wq, Wv, b, mode):
        a = q @ Wq if question else 0
        c = v @ Wv if image else 0
        z = a + c if (force or mode) == "concat" else a * c
        return z + (b if bias else 0), None

    return wrong


register(Exercise(
    "fusion_forward", NB, vqa_layers.fusion_forward,
    tests=[
        ("concat (float64)", value_test(_fusion_args("concat"), returns("z", "cache"), 1e-7)),
        ("product (float64)", value_test(_fusion_args("product"), returns("z", "cache"), 1e-7)),
        ("a batch of one (N=1), both modes", lambda trial: [value_test(_fusion_args(m, N=1), returns("z", "cache"),
                                                                       1e-7)(trial) for m in ("concat", "product")]),
        ("float32 inputs, both modes", lambda trial: [value_test(_fusion_args(m, dtype=np.float32),
                                                                 returns("z", "cache"), **FLOAT32)(trial)
                                                      for m in ("concat", "product")]),
    ],
    mistakes=[
        (_fusion_variant(force="concat"),
         "In mode 'product' the two projections are multiplied element by element, (q @ Wq) * (v @ Wv) + b; "
         "adding them is mode 'concat'."),
        (_fusion_variant(force="product"),
         "In mode 'concat' the two projections are added, q @ Wq + v @ Wv + b (that is [q, v] @ [Wq; Wv] + b); "
         "multiplying them is mode 'product'."),
        (_fusion_variant(bias=False), "The bias b is missing: add it after combining the two projections."),
        (_fusion_variant(image=False), "The image term v @ Wv is missing."),
        (_fusion_variant(question=False), "The question term q @ Wq is missing."),
    ],
))


def _fusion_backward_variant(gate=True, swap=False, bias_mean=False, weights_ungated=False):
    """A wrong fusion backward, from the forward's inputs and the upstream gradient dz."""

    def wrong(inputs, ups):
        q, v, Wq, Wv, mode = (inputs[k] for k in ("q", "v", "Wq", "Wv", "mode"))
        (dz,) = ups
        a, c = q @ Wq, v @ Wv
        if mode == "concat" or not gate:
            da = dc = dz
        else:
            da, dc = (dz * a, dz * c) if swap else (dz * c, dz * a)
        dWq, dWv = (q.T @ dz, v.T @ dz) if weights_ungated else (q.T @ da, v.T @ dc)
        return da @ Wq.T, dc @ Wv.T, dWq, dWv, dz.mean(axis=0) if bias_mean else dz.sum(axis=0)

    return wrong


def _fusion_backward_test(mode, N=None, numeric=False):
    return backward_test(_fusion_args(mode, N=N), ("z",), ("dz",), FUSION_GRADS, numeric=numeric)


register(Exercise(
    "fusion_backward", NB, vqa_layers.fusion_backward, forward=vqa_layers.fusion_forward,
    forward_name="fusion_forward",
    tests=[
        ("concat against the reference", _fusion_backward_test("concat")),
        ("product against the reference", _fusion_backward_test("product")),
        ("a batch of one (N=1), both modes", lambda trial: [_fusion_backward_test(m, N=1)(trial)
                                                            for m in ("concat", "product")]),
        ("product against numerical gradients", _fusion_backward_test("product", numeric=True)),
        ("concat against numerical gradients", _fusion_backward_test("concat", numeric=True)),
    ],
    mistakes=[
        (_fusion_backward_variant(gate=False),
         "That is the backward pass of 'concat'. For the product z = a * c + b (a = q @ Wq, c = v @ Wv), the gradient "
         "reaching a is dz * c and the one reaching c is dz * a: each side is scaled by the other side's value."),
        (_fusion_backward_variant(swap=True),
         "The factors are swapped: the gradient reaching a = q @ Wq is dz * c (the other factor), not dz * a."),
        (_fusion_backward_variant(weights_ungated=True),
         "dq and dv are right but dWq and dWv are not: the weights get q.T @ (dz * c) and v.T @ (dz * a), the "
         "same gated gradients that flow to q and v."),
        (_fusion_backward_variant(bias_mean=True),
         "db is the sum of dz over the batch (each example adds its own gradient), not the mean."),
    ],
))


# --- one stacked-attention hop (PyTorch) ---------------------------------------------------------

def _hop_inputs(rng, N=None, L=None, dtype="float64", peak=None):
    """u (N, Q), keys (N, L, Q) and an AdditiveAttention(Q, Q, A) with random weights (A != Q)."""
    import torch

    from ..models import AdditiveAttention

    dt = getattr(torch, dtype)
    n, locations = N or int(rng.integers(2, 5)), L or int(rng.integers(3, 10))
    Q = int(rng.integers(3, 7))
    A = Q + int(rng.integers(1, 4))
    attention = AdditiveAttention(Q, Q, A).to(dt)
    with torch.no_grad():
        for p in attention.parameters():
            p.copy_(torch.as_tensor(rng.standard_normal(tuple(p.shape)) / np.sqrt(p.shape[-1]), dtype=dt))
    u = torch.as_tensor(rng.standard_normal((n, Q)), dtype=dt)
    keys = torch.as_tensor(np.tanh(rng.standard_normal((n, locations, Q))), dtype=dt)
    if peak:  # scale w so the largest score is exactly `peak`: exp(peak) overflows unless the maximum is subtracted
        with torch.no_grad():
            scores = attention.w(torch.tanh(attention.W_k(keys) + attention.W_q(u)[:, None]))
            top = scores.max() if scores.max() > 0 else scores.min()
            attention.w.weight.mul_(peak / top)
    return {"u": u, "keys": keys, "attention": attention}


def _hop_variant(mistake):
    """A wrong hop, from its inputs (u, keys, attention)."""

    def wrong(u, keys, attention):
        import torch

        query = u @ attention.W_q.weight.T if mistake == "no bias" else attention.W_q(u)
        projected = attention.W_k(keys)
        if mistake == "maps swapped":  # shapes allow it: the keys and the query have the same width here
            query, projected = attention.W_k(u), attention.W_q(keys)
        hidden = projected + query[:, None]
        scores = attention.w(hidden if mistake == "no tanh" else torch.tanh(hidden)).squeeze(2)
        alpha = scores.softmax(dim=0 if mistake == "softmax over the batch" else 1)
        if mistake == "scores, not weights":
            alpha = scores
        if mistake == "uniform":
            alpha = alpha * 0 + 1 / keys.shape[1]
        context = (alpha[:, :, None] * keys).sum(dim=1)
        return (context if mistake == "no residual" else u + context), alpha

    return wrong


HOP_MISTAKES = [
    (_hop_variant("no residual"),
     "u_next is the attended context alone: a stacked-attention hop adds it to the query, u_next = u + context, "
     "so the next hop (and the answer) still knows the question."),
    (_hop_variant("softmax over the batch"),
     "The softmax runs over the batch (dim 0): each question's weights must sum to 1 over its L locations (dim 1)."),
    (_hop_variant("scores, not weights"),
     "alpha is the raw scores e: the weights are softmax(e) over the L locations, positive and summing to 1."),
    (_hop_variant("no bias"),
     "The scores miss the bias b, which attention.W_q holds: call the layer, attention.W_q(u), rather than "
     "multiplying by its weight."),
    (_hop_variant("maps swapped"),
     "W_k and W_q are swapped: attention.W_k maps the keys and attention.W_q (with the bias) maps the query u."),
    (_hop_variant("no tanh"),
     "The tanh is missing: e_i = w . tanh(keys_i W_k + u W_q + b)."),
    (_hop_variant("uniform"),
     "Every location gets the same weight 1 / L: the weights must come from the scores, "
     "e_i = w . tanh(keys_i W_k + u W_q)."),
]


WRT = ("u", "keys", "attention.W_k.weight", "attention.W_q.weight", "attention.W_q.bias", "attention.w.weight")


def _as_numpy(name, value):
    """A hop's output as float64 numpy, or a Failure if it is not a torch tensor (autograd needs one)."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise Failure(f"`{name}` is {kind(value)}; expected a torch tensor.",
                      "Compute with torch operations on the tensors you are given, so autograd can differentiate "
                      "the hop.")
    return value.detach().double().numpy()


def _hop_outputs(out):
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise Failure(f"Expected the function to return a tuple (u_next, alpha); got {kind(out)}.",
                      "End your function with `return u + context, alpha`.")
    return {"u_next": _as_numpy("u_next", out[0]), "alpha": _as_numpy("alpha", out[1])}


def _hop_test(N=None, L=None, dtype="float64", peak=None, gradients=True):
    """The learner's hop against the reference hop with the same weights: the values, then (gradients=True) the
    gradients that autograd finds through the learner's code for u, keys and every weight of the attention (a
    hop written in numpy, or with .detach(), gives the values but no gradient)."""
    import torch

    rtol, atol = (1e-9, 0.0) if dtype == "float64" else (1e-4, 1e-5)
    if peak:  # float32 rounds a score of `peak` to within peak * 2^-24, and two correct hops that sum the scores'
        # A terms in other orders differ by a few such roundings; where two locations' scores are close, that moves
        # alpha and u_next by as much (5.6 * eps * peak at most over 30 000 random cases), so allow 16 of them.
        atol += 16 * float(np.finfo(np.float32).eps) * peak
    gradient_tol = 1e-8 if dtype == "float64" else 1e-4  # relative to the largest entry of each gradient

    def test(trial):
        ex = trial.exercise
        inputs = _hop_inputs(trial.rng, N, L, dtype, peak)
        n, locations, Q = inputs["keys"].shape
        dt = getattr(torch, dtype)
        cotangents = [torch.as_tensor(trial.rng.standard_normal(shape), dtype=dt) for shape in ((n, Q), (n, locations))]
        if gradients:
            out, grads = call_vjp(trial.fn, inputs, WRT, cotangents)
            want_out, want_grads = call_vjp(ex.reference, inputs, WRT, cotangents)
        else:
            out, want_out = call(trial.fn, inputs), ex.reference(*snapshot(inputs).values())
        attention = inputs["attention"]
        described = (f"{describe_inputs({'u': inputs['u'].numpy(), 'keys': inputs['keys'].numpy()})}, attention: "
                     f"AdditiveAttention{attention.sizes} ({dtype})")
        got, want = _hop_outputs(out), _hop_outputs(want_out)
        try:
            compare_outputs(want, got, rtol, atol)
        except Failure as f:
            f.hint = known_mistake(ex.mistakes, lambda wrong: _hop_outputs(wrong(*snapshot(inputs).values())),
                                   got) or f.hint
            if f.hint is None and not np.all(np.isfinite(got["alpha"])):
                f.hint = ("alpha holds NaN or inf: exp of a large score overflows. Use torch.softmax (or subtract "
                          "each row's largest score before exp).")
            f.message += f"\nInputs: {described}"
            raise
        if not gradients:
            return
        if grads is None:
            raise Failure("u_next and alpha are right but carry no gradient: autograd cannot train this hop.",
                          "Do not convert to numpy or call .detach(); use torch operations throughout.")
        for name, g, w in zip(WRT, grads, want_grads, strict=True):
            if g is None:
                raise Failure(f"No gradient reaches `{name}`: your hop does not use it the way the formula does.",
                              "e_i = w . tanh(keys_i W_k + u W_q); alpha = softmax over i; u_next = u + sum_i "
                              "alpha_i keys_i.")
            w = w.double().numpy()
            g = as_array(f"the gradient of {name}", g.double().numpy() if hasattr(g, "numpy") else g, w)
            worst = np.abs(g - w).max() / max(1.0, np.abs(w).max())  # a zero gradient (L = 1) has rounding noise
            if not worst <= gradient_tol:
                idx = tuple(int(i) for i in np.unravel_index(np.nanargmax(np.abs(g - w)), w.shape))
                raise Failure(f"The gradient that reaches `{name}` through your hop differs from the reference's by "
                              f"{worst:.1e} of its largest entry (allowed {gradient_tol:.0e}); worst at index {idx}: "
                              f"expected {w[idx]:.6g}, got {g[idx]:.6g}.\nInputs: {described}",
                              "The values are right, so some operation breaks the gradient's path: use torch "
                              "operations on the given tensors throughout.")

    return test


register(Exercise(
    "attention_hop", NB, models.attention_hop,
    tests=[
        ("values (float64)", _hop_test(gradients=False)),
        ("values and gradients (float64)", _hop_test()),
        ("a batch of one (N=1)", _hop_test(N=1)),
        ("one location (L=1): all the weight on it", _hop_test(L=1)),
        ("float32", _hop_test(dtype="float32")),
        ("confident attention (a score of 300), float32", _hop_test(dtype="float32", peak=300.0, gradients=False)),
    ],
    mistakes=HOP_MISTAKES,  # functions of the hop's inputs (u, keys, attention)
))

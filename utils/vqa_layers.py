"""Reference numpy layers of notebook 06: the many-to-one question encoder and the fusion of two vectors.

Same API as `layers`: forward returns (out, cache), backward takes (dout, cache); batch first.
"""

import numpy as np

from .layers import rnn_backward, rnn_forward

FUSIONS = ("concat", "product")


def question_encoder_forward(x, lengths, h0, Wx, Wh, b):
    """Many-to-one: run the RNN over padded questions and keep, for each, the state after its last real token.

    x: (N, T, D) embedded tokens, padded after question n's first lengths[n] tokens; lengths: (N,) integers in
    1..T; h0: (N, H). Returns q: (N, H) with q[n] = h[n, lengths[n] - 1]. The state at the padded end,
    h[:, -1], would also have read the padding, so a question's vector would change with the longest question
    of its batch.
    """
    h, rnn_cache = rnn_forward(x, h0, Wx, Wh, b)
    lengths = np.asarray(lengths)
    return h[np.arange(len(x)), lengths - 1], (rnn_cache, lengths, h.shape)


def question_encoder_backward(dq, cache):
    """(dx, dh0, dWx, dWh, db): dq reaches only the state each question was read at, and from there flows
    back through that question's real tokens; the padding after it gets no gradient at all."""
    rnn_cache, lengths, shape = cache
    dh = np.zeros(shape, dtype=dq.dtype)
    dh[np.arange(shape[0]), lengths - 1] = dq
    return rnn_backward(dh, rnn_cache)


def fusion_forward(q, v, Wq, Wv, b, mode):
    """Combine a question vector q (N, Q) and an image vector v (N, V) into z (N, M).

    mode "concat": z = [q, v] @ [Wq; Wv] + b = q @ Wq + v @ Wv + b, a linear layer on the concatenation;
    each input adds its own term, so how z moves with the image does not depend on the question.
    mode "product": z = (q @ Wq) * (v @ Wv) + b, element by element; the question scales each image feature.
    Wq: (Q, M), Wv: (V, M), b: (M,).
    """
    if mode not in FUSIONS:
        raise ValueError(f"mode must be one of {FUSIONS}; got {mode!r}.")
    a, c = q @ Wq, v @ Wv
    z = a + c + b if mode == "concat" else a * c + b
    return z, (q, v, Wq, Wv, a, c, mode)


def fusion_backward(dz, cache):
    """(dq, dv, dWq, dWv, db). For the product each side's gradient is scaled by the other side's value."""
    q, v, Wq, Wv, a, c, mode = cache
    da, dc = (dz, dz) if mode == "concat" else (dz * c, dz * a)
    return da @ Wq.T, dc @ Wv.T, q.T @ da, v.T @ dc, dz.sum(axis=0)

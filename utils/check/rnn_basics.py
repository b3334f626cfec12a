"""Exercises of notebook 01: the RNN step, the unrolled RNN, the temporal softmax loss, sampling."""

import numpy as np

from .. import layers
from .battery import call, describe_inputs, numeric_gradient_test, returns, value_test
from .compare import Failure, kind
from .core import Exercise, register

NB = "01"
FLOAT32 = {"rtol": 1e-4, "atol": 1e-5}  # float32 carries ~7 significant digits


def _dims(rng, N=None, T=None, D=None, H=None):
    N = N or int(rng.integers(2, 6))
    T = T or int(rng.integers(2, 7))
    D = D or int(rng.integers(3, 7))
    H = H or D + int(rng.integers(1, 4))  # D != H, so a transposed Wx cannot go unnoticed
    return N, T, D, H


def _weights(rng, D, H, dtype):
    return {
        "Wx": (rng.standard_normal((D, H)) / np.sqrt(D)).astype(dtype),
        "Wh": (rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype),
        "b": (0.5 * rng.standard_normal(H)).astype(dtype),
    }


def _rnn_args(N=None, T=None, dtype=np.float64, step=False, D=None, H=None):
    """Inputs of rnn_step_forward (step=True: x (N, D), prev_h) or of rnn_forward (x (N, T, D), h0)."""

    def make(rng):
        n, t, d, h = _dims(rng, N=N, T=T, D=D, H=H)
        return {
            "x": rng.standard_normal((n, d) if step else (n, t, d)).astype(dtype),
            "prev_h" if step else "h0": rng.uniform(-1, 1, (n, h)).astype(dtype),
            **_weights(rng, d, h, dtype),
        }

    return make


def _seq_locate(index):
    t = index[1]
    if t == 0:
        return "Step 0 already differs: the first step must use h0 and x[:, 0] (check it with rnn_step_forward)."
    return (
        f"The steps before step {t} are right but step {t} is not: each step must be fed x[:, t] and the hidden "
        "state the previous step produced, and h[:, t] must hold the state after step t."
    )


register(Exercise(
    "rnn_step_forward", NB, layers.rnn_step_forward,
    tests=[
        ("values (float64)", value_test(_rnn_args(step=True), returns("next_h", "cache"), 1e-7)),
        ("batch of one (N=1)", value_test(_rnn_args(N=1, step=True), returns("next_h", "cache"), 1e-7)),
        ("one input and one hidden unit (D = H = 1)",
         value_test(_rnn_args(D=1, H=1, step=True), returns("next_h", "cache"), 1e-7)),
        ("float32 inputs", value_test(_rnn_args(dtype=np.float32, step=True), returns("next_h", "cache"), **FLOAT32)),
    ],
    mistakes=[
        (lambda x, prev_h, Wx, Wh, b: (np.tanh(x @ Wx + prev_h @ Wh), None),
         "The bias b is missing: next_h = tanh(x @ Wx + prev_h @ Wh + b)."),
        (lambda x, prev_h, Wx, Wh, b: (np.tanh(x @ Wx + prev_h @ Wh.T + b), None),
         "Wh is transposed: with one example per row, the previous state multiplies from the left: prev_h @ Wh."),
        (lambda x, prev_h, Wx, Wh, b: (x @ Wx + prev_h @ Wh + b, None),
         "The nonlinearity is missing: apply np.tanh to the whole pre-activation."),
        (lambda x, prev_h, Wx, Wh, b: (1 / (1 + np.exp(-(x @ Wx + prev_h @ Wh + b))), None),
         "That is a sigmoid, with outputs in (0, 1); the vanilla RNN uses tanh, with outputs in (-1, 1)."),
        (lambda x, prev_h, Wx, Wh, b: (np.maximum(0, x @ Wx + prev_h @ Wh + b), None),
         "That is a ReLU; the vanilla RNN uses tanh (section 4 shows why)."),
        (lambda x, prev_h, Wx, Wh, b: (np.tanh(x @ Wx + prev_h @ Wh) + b, None),
         "The bias belongs inside the tanh: tanh(x @ Wx + prev_h @ Wh + b)."),
        (lambda x, prev_h, Wx, Wh, b: (np.tanh(x @ Wx + b), None),
         "prev_h is not used: the previous hidden state enters through prev_h @ Wh."),
        (lambda x, prev_h, Wx, Wh, b: (np.tanh(x @ Wx) + prev_h @ Wh + b, None),
         "A misplaced parenthesis: the tanh wraps only x @ Wx; it must wrap the whole sum, "
         "tanh(x @ Wx + prev_h @ Wh + b)."),
        (lambda x, prev_h, Wx, Wh, b: (np.tanh(x @ Wx + prev_h) @ Wh + b, None),
         "A misplaced parenthesis: prev_h must be multiplied by Wh inside the tanh: tanh(x @ Wx + prev_h @ Wh + b)."),
    ],
))

register(Exercise(
    "rnn_forward", NB, layers.rnn_forward, uses=("rnn_step_forward",),
    tests=[
        ("values (float64)", value_test(_rnn_args(), returns("h", "cache"), 1e-7, locate=_seq_locate)),
        ("one time step (T=1)", value_test(_rnn_args(T=1), returns("h", "cache"), 1e-7, locate=_seq_locate)),
        ("batch of one (N=1)", value_test(_rnn_args(N=1), returns("h", "cache"), 1e-7, locate=_seq_locate)),
        ("float32 inputs", value_test(_rnn_args(dtype=np.float32), returns("h", "cache"), **FLOAT32)),
    ],
    mistakes=[
        (lambda x, h0, Wx, Wh, b: (np.tanh(x @ Wx + (h0 @ Wh)[:, None] + b), None),
         "Every step uses h0: the hidden state must be carried, step t takes the state step t-1 produced."),
        (lambda x, h0, Wx, Wh, b: (np.concatenate([h0[:, None], layers.rnn_forward(x, h0, Wx, Wh, b)[0][:, :-1]],
                                                  axis=1), None),
         "h[:, t] holds the state before step t; it should hold the state after it (h0 is not part of h)."),
        (lambda x, h0, Wx, Wh, b: (layers.rnn_forward(x[:, ::-1], h0, Wx, Wh, b)[0][:, ::-1], None),
         "Time runs backwards in your loop: step t = 0 comes first."),
    ],
))


def _loss_args(N=None, T=None, scale=2.0, mask="random", dtype=np.float64):
    def make(rng):
        n = N or int(rng.integers(2, 6))
        t = T or int(rng.integers(2, 7))
        V = int(rng.integers(3, 9))
        m = np.ones((n, t), dtype=bool)
        if mask in ("random", "float") and n * t > 1:  # at least one padded and one real position
            m = rng.random((n, t)) < 0.7
            m[0, 0], m[-1, -1] = True, False
        if mask == "padded row":  # one whole sequence is padding: it adds nothing, but N still counts it
            m[-1] = False
        return {
            "x": (scale * rng.standard_normal((n, t, V))).astype(dtype),
            "y": rng.integers(0, V, (n, t)),
            "mask": m if mask != "float" else m.astype(np.float64),
        }

    return make


def _loss_variant(loss_scale=None, dx_scale=None, mask_loss=True, mask_dx=True, sign=1.0):
    """A wrong temporal_softmax_loss built from the reference pieces; the scales get (N, T, mask)."""

    def wrong(x, y, mask):
        N, T, _ = x.shape
        m = np.asarray(mask, dtype=bool)
        full = np.ones_like(m)
        loss, _ = layers.temporal_softmax_loss(x, y, m if mask_loss else full)
        _, dx = layers.temporal_softmax_loss(x, y, m if mask_dx else full)
        if loss_scale:
            loss = loss * loss_scale(N, T, m)
        if dx_scale:
            dx = dx * dx_scale(N, T, m)
        return loss, sign * dx

    return wrong


def _softmax_over_time(x, y, mask):
    N = x.shape[0]
    m = np.asarray(mask, dtype=float)
    p = layers.softmax(x, axis=1)
    picked = np.take_along_axis(p, y[:, :, None], axis=2)[:, :, 0]
    dx = p.copy()
    np.put_along_axis(dx, y[:, :, None], picked[:, :, None] - 1, axis=2)
    return -(np.log(picked) * m).sum() / N, dx * m[:, :, None] / N


register(Exercise(
    "temporal_softmax_loss", NB, layers.temporal_softmax_loss,
    tests=[
        ("values with a padding mask", value_test(_loss_args(), returns("loss", "dx"), 1e-7)),
        ("mask of all ones", value_test(_loss_args(mask="ones"), returns("loss", "dx"), 1e-7)),
        ("one sequence entirely padding", value_test(_loss_args(N=3, mask="padded row"), returns("loss", "dx"), 1e-7)),
        ("one step, batch of one", value_test(_loss_args(N=1, T=1, mask="ones"), returns("loss", "dx"), 1e-7)),
        ("large scores (numerical stability)", value_test(
            _loss_args(scale=1000.0), returns("loss", "dx"), 1e-7,
            hint="With scores in the thousands, exp() overflows and softmax probabilities underflow to 0, "
                 "so log(p) is -inf. Subtract each row's maximum, then use the log-softmax "
                 "s - log(sum(exp(s))) instead of log(softmax(s)).")),
        ("float32 scores, 0/1 float mask",
         value_test(_loss_args(mask="float", dtype=np.float32), returns("loss", "dx"), **FLOAT32)),
        ("dx against a numerical gradient", numeric_gradient_test(
            _loss_args(N=2, T=3), lambda r: (r[0], r[1]), wrt="x")),
    ],
    mistakes=[
        (_loss_variant(loss_scale=lambda N, T, m: 1 / T, dx_scale=lambda N, T, m: 1 / T),
         "Sum over time and average over the batch only: divide by N, not by N * T."),
        (_loss_variant(loss_scale=lambda N, T, m: N / m.sum(), dx_scale=lambda N, T, m: N / m.sum()),
         "Divide by N, the batch size, not by the number of unmasked positions."),
        (_loss_variant(loss_scale=lambda N, T, m: N, dx_scale=lambda N, T, m: N),
         "Average over the batch: divide the summed loss (and dx) by N."),
        (_loss_variant(mask_loss=False, mask_dx=False),
         "The mask is ignored: multiply each position's loss and gradient by mask[n, t]."),
        (_loss_variant(mask_dx=False),
         "The loss is masked but dx is not: dx must be zero wherever mask is 0."),
        (_loss_variant(dx_scale=lambda N, T, m: N),
         "The loss is right; dx must be divided by N too, like the loss."),
        (_loss_variant(sign=-1.0),
         "dx has the wrong sign: the gradient of cross-entropy is softmax(x) - onehot(y)."),
        (_softmax_over_time,
         "The softmax runs over the wrong axis: each position's V scores x[n, t, :] form one distribution, "
         "so normalise over the last axis (axis=2 or -1), not over time (axis=1)."),
    ],
))


# --- sampling ------------------------------------------------------------------------------------

def _sample_model(rng, V, H, N, T, out_scale):
    return {
        "x0": rng.integers(0, V, N),
        "h0": rng.uniform(-1, 1, (N, H)),
        "Wx": rng.standard_normal((V, H)),
        "Wh": 1.5 * rng.standard_normal((H, H)) / np.sqrt(H),
        "b": 0.5 * rng.standard_normal(H),
        "Wy": out_scale * rng.standard_normal((H, V)),
        "by": out_scale * rng.standard_normal(V),
        "T": T,
    }


def _next_probs(args, x, h):
    h, _ = layers.rnn_step_forward(np.eye(args["Wy"].shape[1])[x], h, args["Wx"], args["Wh"], args["b"])
    return layers.softmax(h @ args["Wy"] + args["by"]), h


def _sample_output(args, result):
    N, T, V = len(args["x0"]), args["T"], args["Wy"].shape[1]
    if result is None:
        raise Failure("Your function returned None; expected an (N, T) array of token indices.",
                      "Did you forget the `return`?")
    if type(result) is not np.ndarray:
        raise Failure(f"Expected a numpy array of shape (N, T) = {(N, T)}; got {kind(result)}.",
                      "Collect the samples in an array (np.zeros((N, T), dtype=int), or np.stack of the columns): "
                      "the cells after the check index it as one.")
    out = result
    if out.shape != (N, T):
        hint = ("Return only the T sampled tokens, one row per sequence; the first input x0 is not included."
                if out.shape != (T, N) or N == T else "That is (T, N): one row per sequence, so stack along axis 1.")
        raise Failure(f"Expected an integer array of shape (N, T) = {(N, T)}; got {kind(result)}.", hint)
    if not np.issubdtype(out.dtype, np.integer):
        raise Failure(f"Expected integer token indices; got dtype {out.dtype}.", "Convert with .astype(int).")
    if out.min() < 0 or out.max() >= V:
        raise Failure(f"Token indices must lie in [0, {V}); got values from {out.min()} to {out.max()}.")
    return out


def _generator(trial):
    """A generator for the learner's function, itself seeded from the trial (so a replay repeats it)."""
    return np.random.default_rng(int(trial.rng.integers(1 << 62)))


def _shape_test(trial):
    rng = trial.rng
    args = _sample_model(rng, V=int(rng.integers(3, 7)), H=6, N=5, T=int(rng.integers(2, 7)), out_scale=1.0)
    _sample_output(args, call(trial.fn, {**args, "rng": _generator(trial)}))


def _greedy_path(args, carry=True, feed_back=True):
    """The argmax path and the smallest probability it had; variants drop the memory or the feedback."""
    x, h, surest = args["x0"], args["h0"], 1.0
    path = []
    for _ in range(args["T"]):
        p, h_next = _next_probs(args, x if feed_back else args["x0"], h if carry else args["h0"])
        h, x = h_next, p.argmax(axis=1)
        surest = min(surest, float(p.max(axis=1).min()))
        path.append(x)
    return np.stack(path, axis=1), surest


def _certain_test(trial):
    """With a nearly deterministic output layer every correct sampler follows the same path.

    The model is redrawn until that path is certain (every step > 1 - 1e-9) and until dropping the
    hidden state's memory or the feedback of samples would change it, so both mistakes are caught.
    """
    rng = trial.rng
    for _ in range(200):  # about half of the draws qualify
        args = _sample_model(rng, V=int(rng.integers(3, 7)), H=7, N=8, T=8, out_scale=1000.0)
        expected, surest = _greedy_path(args)
        if (surest > 1 - 1e-9 and not np.array_equal(_greedy_path(args, carry=False)[0], expected)
                and not np.array_equal(_greedy_path(args, feed_back=False)[0], expected)):
            break
    else:
        raise RuntimeError("no suitable test model found; please report this as a bug in the course")
    got = _sample_output(args, call(trial.fn, {**args, "rng": _generator(trial)}))
    if not np.array_equal(got, expected):
        n, t = (int(i) for i in np.argwhere(got != expected)[0])
        where = ("the first sample is already wrong: step 0 takes one-hot(x0) and h0"
                 if t == 0 else f"the samples before step {t} are right, sample {t} is not: feed each sampled token "
                 "back in as the next one-hot input and carry h from step to step")
        if np.array_equal(got[:, 0], args["x0"]) and not np.array_equal(expected[:, 0], args["x0"]):
            where = ("your first column is x0, the first input: return only the T tokens you sampled, starting "
                     "with the one drawn after reading x0")
        raise Failure(
            f"With an output layer so confident that each next token has probability > 1 - 1e-9, sequence {n} "
            f"should be {expected[n].tolist()}; yours is {got[n].tolist()}.\nInputs: {describe_inputs(args)}",
            f"{where[0].upper()}{where[1:]}. Scores are h @ Wy + by.",
        )


def _rng_test(trial):
    rng = trial.rng
    args = _sample_model(rng, V=4, H=6, N=40, T=6, out_scale=1.0)
    seed = int(rng.integers(1 << 30))
    a, b, c = (_sample_output(args, call(trial.fn, {**args, "rng": np.random.default_rng(s)}))
               for s in (seed, seed, seed + 1))
    if not np.array_equal(a, b):
        raise Failure("Two calls with identically seeded generators gave different samples.",
                      "Draw every random number from the `rng` argument (rng.choice or rng.random), "
                      "not from np.random.*, so that a seed makes the samples repeat.")
    if np.array_equal(a, c):
        raise Failure("Generators with different seeds gave identical samples for 40 sequences of 6 tokens.",
                      "Sample from the softmax distribution (rng.choice(V, p=probs)) instead of taking the argmax.")


def _distribution_test(trial, n=10_000, z_max=5.5):
    """The first two samples' joint frequencies must match the model's probabilities.

    Each of the V*V cell counts is compared with n*p by its z-score; 5.5 standard deviations keeps the
    chance that a correct sampler fails below one in a million.
    """
    rng = trial.rng
    V = 3
    while True:
        one = _sample_model(rng, V=V, H=5, N=1, T=2, out_scale=0.7)
        p1, h1 = _next_probs(one, one["x0"], one["h0"])
        joint = np.stack([p1[0, v] * _next_probs(one, np.array([v]), h1)[0][0] for v in range(V)])
        if joint.min() > 0.02:
            break
    args = {**one, "x0": np.repeat(one["x0"], n), "h0": np.repeat(one["h0"], n, axis=0)}
    got = _sample_output(args, call(trial.fn, {**args, "rng": _generator(trial)}))
    counts = np.zeros((V, V))
    np.add.at(counts, (got[:, 0], got[:, 1]), 1)
    z = (counts - n * joint) / np.sqrt(n * joint * (1 - joint))
    a, b = np.unravel_index(np.argmax(np.abs(z)), z.shape)
    if abs(z[a, b]) > z_max:
        raise Failure(
            f"Over {n} sequences the pair of tokens ({a}, {b}) came first {int(counts[a, b])} times; the model "
            f"gives it probability {joint[a, b]:.3f}, so about {n * joint[a, b]:.0f} were expected "
            f"({abs(z[a, b]):.1f} standard deviations off).",
            "Sample each token from p = softmax(h @ Wy + by): rng.choice(V, p=p[i]) per row, or compare "
            "rng.random() with the cumulative sum of p. Don't take the argmax; don't sample from the raw scores.",
        )


register(Exercise(
    "rnn_sample", NB, layers.rnn_sample, uses=("rnn_step_forward",),
    tests=[
        ("returns (N, T) integer indices", _shape_test),
        ("follows a certain model exactly", _certain_test),
        ("uses the rng it is given", _rng_test),
        ("sample frequencies match the softmax", _distribution_test),
    ],
))

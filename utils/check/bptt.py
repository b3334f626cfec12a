"""Exercises of notebook 02: backprop through time, truncated BPTT, temperature sampling."""

import numpy as np

from .. import charrnn, layers
from .battery import backward_gradient_test, call_checked, describe_inputs, returns, value_test
from .compare import Failure, assert_close
from .core import Exercise, LearnerError, call_learner, register
from .rnn_basics import _rnn_args

NB = "02"
STEP_GRADS = ("dx", "dprev_h", "dWx", "dWh", "db")
SEQ_GRADS = ("dx", "dh0", "dWx", "dWh", "db")


# --- rnn_step_backward ---------------------------------------------------------------------------

def _step_backward_args(rng):
    inputs = _rnn_args(step=True)(rng)
    next_h, cache = layers.rnn_step_forward(*inputs.values())
    return {"dnext_h": rng.standard_normal(next_h.shape), "cache": cache}


def _step_variant(da_of, dWh_of=None):
    """A wrong rnn_step_backward: da_of(dnext_h, prev_h, next_h) for the pre-activation's gradient."""

    def wrong(dnext_h, cache):
        x, prev_h, Wx, Wh, next_h = cache
        da = da_of(dnext_h, prev_h, next_h)
        dWh = dWh_of(da, prev_h) if dWh_of else prev_h.T @ da
        return da @ Wx.T, da @ Wh.T, x.T @ da, dWh, da.sum(axis=0)

    return wrong


register(Exercise(
    "rnn_step_backward", NB, layers.rnn_step_backward,
    tests=[
        ("values against the reference", value_test(_step_backward_args, returns(*STEP_GRADS), 1e-7)),
        ("against numerical gradients", backward_gradient_test(
            layers.rnn_step_forward, _rnn_args(step=True), STEP_GRADS)),
    ],
    mistakes=[
        (_step_variant(lambda d, p, h: d),
         "The tanh is skipped: the gradient reaching the pre-activation is dnext_h * (1 - next_h**2)."),
        (_step_variant(lambda d, p, h: d * (1 - h)),
         "tanh'(a) = 1 - tanh(a)**2: square next_h."),
        (_step_variant(lambda d, p, h: d * (1 - p**2)),
         "The tanh derivative uses prev_h; it must use this step's output: 1 - next_h**2."),
        (_step_variant(lambda d, p, h: d * h * (1 - h)),
         "That is the sigmoid's derivative; tanh's is 1 - next_h**2."),
        (_step_variant(lambda d, p, h: d * (1 - h**2), dWh_of=lambda da, p: da.T @ p),
         "dWh is transposed: Wh maps prev_h (rows) to the pre-activation, so dWh = prev_h.T @ da."),
    ],
))


# --- rnn_backward --------------------------------------------------------------------------------

def _backward_args(T=None):
    def make(rng):
        inputs = _rnn_args(T=T)(rng)
        h, caches = layers.rnn_forward(*inputs.values())
        return {"dh": rng.standard_normal(h.shape), "caches": caches}

    return make


def _seq_variant(upstream="both", accumulate=True):
    """A wrong rnn_backward: upstream "own" drops the gradient from the future, "future" drops dh[:, t]."""

    def wrong(dh, caches):
        N, T, H = dh.shape
        dx = np.empty((N, T, caches[0][0].shape[1]))
        sums = [np.zeros_like(caches[0][2]), np.zeros_like(caches[0][3]), np.zeros(H)]
        dprev = np.zeros((N, H))
        for t in reversed(range(T)):
            g = {"both": dh[:, t] + dprev, "own": dh[:, t],
                 "future": dprev + (dh[:, t] if t == T - 1 else 0)}[upstream]
            dx[:, t], dprev, *step = layers.rnn_step_backward(g, caches[t])
            sums = [s + d for s, d in zip(sums, step, strict=True)] if accumulate else step
        return (dx, dprev, *sums)

    return wrong


register(Exercise(
    "rnn_backward", NB, layers.rnn_backward,
    tests=[
        ("values against the reference", value_test(_backward_args(), returns(*SEQ_GRADS), 1e-7)),
        ("one time step (T=1)", value_test(_backward_args(T=1), returns(*SEQ_GRADS), 1e-7)),
        ("against numerical gradients", backward_gradient_test(layers.rnn_forward, _rnn_args(), SEQ_GRADS)),
    ],
    mistakes=[
        (_seq_variant(accumulate=False),
         "The weight gradients hold only the last step computed (t = 0): Wx, Wh and b are shared by every "
         "step, so add up the per-step gradients (dWh += ...)."),
        (_seq_variant(upstream="own"),
         "Only dh[:, t] reaches step t; the gradient flowing back from step t + 1 (dprev) must be added to it."),
        (_seq_variant(upstream="future"),
         "Only the last step receives its upstream gradient; every h[:, t] feeds a loss of its own, so "
         "step t gets dh[:, t] + the gradient flowing back from step t + 1."),
    ],
))


# --- truncated BPTT ------------------------------------------------------------------------------

class _Recorder:
    """The loss function handed to the loop: it records every call and, once `expected` is known,
    stops the learner's loop at the first chunk that differs, so the check can say which one."""

    def __init__(self, expected=None, T=None, L=None):
        self.calls, self.expected, self.T, self.L = [], expected, T, L

    def __call__(self, params, x, y, h):
        self.calls.append(tuple(np.array(a) for a in (x, y, h)))
        if self.expected is not None:
            problem = _chunk_problem(self.calls, self.expected, self.T, self.L, finished=False)
            if problem:
                raise problem
        return charrnn.char_rnn_loss(params, *self.calls[-1])


def _tbptt_setup(rng):
    N, V, H, T = int(rng.integers(2, 5)), int(rng.integers(4, 8)), int(rng.integers(4, 8)), int(rng.integers(3, 6))
    L = T * int(rng.integers(3, 6)) + int(rng.integers(1, T + 1))  # a partial chunk at the end, sometimes empty
    seed = int(rng.integers(1 << 30))
    data = rng.integers(0, V, (N, L))
    return seed, V, H, T, data, rng.uniform(-0.5, 0.5, (N, H))


def _run_tbptt(fn, recorder, seed, V, H, T, data, h0, learner):
    """Train a fresh seeded model with fn; returns (result, final params, number of optimiser steps)."""
    from ..train import Adam

    params = charrnn.init_params(V, H, np.random.default_rng(seed))
    opt, steps = Adam(params, lr=0.05), []

    def step(grads):
        steps.append(1)
        opt.step(grads)

    # no deep copies here (call_checked's), since loss_fn, params and step must stay linked
    args = (recorder, params, data.copy(), T, step, h0.copy())
    if not learner:
        return fn(*args), params, len(steps)
    try:
        result = call_learner(fn, *args)
    except LearnerError as err:
        if isinstance(err.exc, Failure):  # the recorder stopped the loop at a wrong chunk
            raise err.exc from None
        raise
    if not (np.array_equal(args[2], data) and np.array_equal(args[5], h0)):
        raise Failure("Your function modified `data` or `h0` in place.", "Work on slices and new arrays instead.")
    return result, params, len(steps)


def _chunk_problem(calls, expected, T, L, finished=True):
    """Compare the chunks the learner fed the loss with the expected ones; a Failure naming the first difference."""
    too_many = Failure(
        f"loss_fn was called {len(calls)}{'' if finished else ' or more'} times; with data of length L={L} and "
        f"T={T} there are {len(expected)} full chunks.",
        "Use only full chunks: a chunk starting at s needs data up to column s + T (the last target), so "
        "`for s in range(0, L - T, T)`.")
    if len(calls) > len(expected):
        return too_many
    for k, ((x, y, h), (ex, ey, eh)) in enumerate(zip(calls, expected, strict=False)):
        if x.shape != ex.shape or not np.array_equal(x, ex):
            return Failure(
                f"Chunk {k} fed the wrong inputs x (shape {x.shape}; expected data[:, {k * T}:{k * T + T}], "
                f"shape {ex.shape}).", "Chunk k covers columns k*T to k*T + T of the data, without overlap.")
        if y.shape != ey.shape or not np.array_equal(y, ey):
            return Failure(
                f"Chunk {k} fed the wrong targets y (expected data[:, {k * T + 1}:{k * T + T + 1}]).",
                "The target at each position is the next character: y is x shifted left by one.")
        if h.shape != eh.shape or not np.allclose(h, eh, rtol=1e-6, atol=1e-9):
            if k == 0:
                return Failure("Chunk 0 did not start from h0.", "Start the first chunk from the h0 you are given.")
            zero = np.allclose(h, 0)
            return Failure(
                f"Chunk {k} started from the wrong hidden state{' (zeros)' if zero else ''}.",
                "Carry the hidden state across chunks: each chunk starts from the h_last the previous chunk's "
                "loss_fn returned. Truncation cuts the gradient at the boundary, not the state.")
    if finished and len(calls) != len(expected):
        return too_many
    return None


def _tbptt_test(fn, ex):
    """Train the same seeded model with the learner's loop and the reference; losses must agree."""
    setup = _tbptt_setup(np.random.default_rng())
    T, data = setup[3], setup[4]
    reference = _Recorder()
    ref, ref_params, ref_steps = _run_tbptt(ex.reference, reference, *setup, learner=False)
    recorder = _Recorder(reference.calls, T, data.shape[1])
    try:
        got, params, n_steps = _run_tbptt(fn, recorder, *setup, learner=True)
        problem = _chunk_problem(recorder.calls, reference.calls, T, data.shape[1])
        if problem:
            raise problem
    except Failure as f:
        f.message += f"\nInputs: {describe_inputs({'data': data, 'T': T, 'h0': setup[5]})}"
        raise
    if n_steps != ref_steps:
        raise Failure(f"step(grads) was called {n_steps} times for {ref_steps} chunks.",
                      "Call step(grads) once per chunk, right after loss_fn, so every chunk updates the weights.")
    out = returns("losses", "h")(got)
    assert_close("losses", out["losses"], ref[0], 1e-6)
    assert_close("h", out["h"], ref[1], 1e-6)
    for name, value in ref_params.items():
        assert_close(f"params[{name!r}] after training", params[name], value, 1e-6)


register(Exercise(
    "truncated_bptt", NB, charrnn.truncated_bptt,
    tests=[
        ("chunks, carried state and losses match the reference", _tbptt_test),
        ("again, on new data", _tbptt_test),
    ],
))


# --- temperature sampling ------------------------------------------------------------------------

def _sample_checked(fn, scores, temperature, rng):
    out = call_checked(fn, {"scores": scores, "temperature": temperature, "rng": rng})
    if out is None:
        raise Failure("Your function returned None; expected an (N,) array of indices.", "Did you forget `return`?")
    out = np.asarray(out)
    N, V = scores.shape
    if out.shape != (N,):
        raise Failure(f"Expected an array of shape (N,) = ({N},), one index per row of scores; got {out.shape}.")
    if not np.issubdtype(out.dtype, np.integer):
        raise Failure(f"Expected integer indices; got dtype {out.dtype}.", "Convert with .astype(int).")
    if out.min() < 0 or out.max() >= V:
        raise Failure(f"Indices must lie in [0, {V}); got values from {out.min()} to {out.max()}.")
    return out


def _frequency_test(temperature, n=20_000, z_max=5.5):
    """Each index's frequency over n identical rows must match softmax(scores / T) (z-score per index)."""

    def test(fn, ex):
        rng = np.random.default_rng()
        V = 5
        while True:
            row = rng.standard_normal(V) * 1.5
            p = layers.softmax(row / temperature)
            if p.min() > 0.01:
                break
        got = _sample_checked(fn, np.tile(row, (n, 1)), temperature, np.random.default_rng())
        counts = np.bincount(got, minlength=V)
        z = (counts - n * p) / np.sqrt(n * p * (1 - p))
        worst = int(np.argmax(np.abs(z)))
        if abs(z[worst]) > z_max:
            p1 = layers.softmax(row)
            told = ("These are the frequencies of temperature 1: divide the scores by the temperature."
                    if np.all(np.abs(counts / n - p1) < 0.02) and temperature != 1 else
                    "Sample from p = softmax(scores / temperature), one draw per row (rng.choice(V, p=p[i]) or "
                    "inverse-CDF with rng.random()). Dividing sharpens the distribution for T < 1 and flattens "
                    "it for T > 1; multiplying does the opposite.")
            raise Failure(
                f"At temperature {temperature}, over {n} rows with the same scores {np.round(row, 3).tolist()}, "
                f"index {worst} was drawn {counts[worst]} times; softmax(scores / T) gives it probability "
                f"{p[worst]:.3f}, so about {n * p[worst]:.0f} were expected ({abs(z[worst]):.1f} standard "
                "deviations off).", told)

    return test


def _rows_test(fn, ex):
    """Each row is sampled from its own distribution: rows with a certain answer must give it."""
    rng = np.random.default_rng()
    N, V = 50, 6
    want = rng.integers(0, V, N)
    scores = rng.standard_normal((N, V))
    scores[np.arange(N), want] += 60.0
    got = _sample_checked(fn, scores, 1.0, np.random.default_rng())
    if not np.array_equal(got, want):
        i = int(np.argmax(got != want))
        raise Failure(f"Row {i} puts probability > 1 - 1e-20 on index {want[i]}, but you drew {got[i]}.",
                      "Draw each row from its own softmax: normalise along the last axis (axis=1).")


def _stable_test(fn, ex):
    """A low temperature makes scores / T huge: exp must not overflow."""
    rng = np.random.default_rng()
    scores = rng.standard_normal((200, 8)) * 10
    want = scores.argmax(axis=1)
    scores[np.arange(200), want] += 1.0  # a margin of 1 / 0.01 = 100: any other index has p < 1e-40
    got = _sample_checked(fn, scores, 0.01, np.random.default_rng())
    if not np.array_equal(got, want):
        raise Failure(
            "At temperature 0.01 the largest score should be drawn almost surely, but "
            f"{int((got != want).sum())} of 200 rows drew another index.",
            "scores / 0.01 reaches the thousands, where exp() overflows to inf and softmax gives NaN: subtract "
            "each row's maximum before exponentiating.")


def _seed_test(fn, ex):
    rng = np.random.default_rng()
    scores = rng.standard_normal((100, 6))
    seed = int(rng.integers(1 << 30))
    a, b, c = (np.asarray(call_learner(fn, scores.copy(), 1.0, np.random.default_rng(s)))
               for s in (seed, seed, seed + 1))
    if not np.array_equal(a, b):
        raise Failure("Two calls with identically seeded generators gave different samples.",
                      "Draw every random number from the `rng` argument, not from np.random.*.")
    if np.array_equal(a, c):
        raise Failure("Generators with different seeds gave identical samples for 100 rows.",
                      "Sample from the distribution instead of taking the argmax.")


register(Exercise(
    "temperature_sample", NB, layers.temperature_sample,
    tests=[
        ("one draw per row from that row's softmax", _rows_test),
        ("uses the rng it is given", _seed_test),
        ("frequencies at temperature 1", _frequency_test(1.0)),
        ("frequencies at temperature 0.5", _frequency_test(0.5)),
        ("frequencies at temperature 2", _frequency_test(2.0)),
        ("temperature 0.01 (numerical stability)", _stable_test),
    ],
))

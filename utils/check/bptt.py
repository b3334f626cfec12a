"""Exercises of notebook 02: backprop through time, truncated BPTT, temperature sampling."""

import numpy as np

from .. import charrnn, layers
from .battery import backward_test, call, describe_inputs, returns
from .compare import Failure, compare_outputs, kind
from .core import Exercise, LearnerError, register
from .rnn_basics import _generator, _rnn_args

NB = "02"
STEP_GRADS = ("dx", "dprev_h", "dWx", "dWh", "db")
SEQ_GRADS = ("dx", "dh0", "dWx", "dWh", "db")


# --- rnn_step_backward ---------------------------------------------------------------------------

def _step_variant(da_of=lambda d, p, h: d * (1 - h**2), dWh_of=None, db_of=None, dprev=True):
    """A wrong rnn_step_backward, written from the forward's inputs: da_of(dnext_h, prev_h, next_h) is the
    pre-activation's gradient; dWh_of(da, prev_h), db_of(da) replace those gradients."""

    def wrong(inputs, ups):
        x, prev_h, Wx, Wh, b = inputs.values()
        (dnext_h,) = ups
        next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
        da = da_of(dnext_h, prev_h, next_h)
        dWh = dWh_of(da, prev_h) if dWh_of else prev_h.T @ da
        db = db_of(da) if db_of else da.sum(axis=0)
        return da @ Wx.T, da @ Wh.T if dprev else np.zeros_like(prev_h), x.T @ da, dWh, db

    return wrong


def _step_backward_test(**kw):
    return backward_test(_rnn_args(step=True, **kw), ("next_h",), ("dnext_h",), STEP_GRADS)


register(Exercise(
    "rnn_step_backward", NB, layers.rnn_step_backward, forward=layers.rnn_step_forward,
    forward_name="rnn_step_forward",
    tests=[
        ("values against the reference", _step_backward_test()),
        ("batch of one (N=1)", _step_backward_test(N=1)),
        ("against numerical gradients", backward_test(_rnn_args(step=True), ("next_h",), ("dnext_h",), STEP_GRADS,
                                                      numeric=True)),
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
        (_step_variant(dWh_of=lambda da, p: da.T @ p),
         "dWh is transposed: Wh maps prev_h (rows) to the pre-activation, so dWh = prev_h.T @ da."),
        (_step_variant(db_of=lambda da: da.mean(axis=0)),
         "db is a mean over the batch; like the loss, it must be the sum over the batch: da.sum(axis=0)."),
        (_step_variant(dprev=False),
         "dprev_h is missing: the previous state reaches the pre-activation through Wh, so dprev_h = da @ Wh.T."),
    ],
))


# --- rnn_backward --------------------------------------------------------------------------------

def _seq_variant(upstream="both", accumulate=True, forwards=False, db_mean=False, dh0=True):
    """A wrong rnn_backward from the forward's inputs: upstream "own" drops the gradient from the future,
    "future" drops dh[:, t]; forwards walks t = 0..T-1; db_mean averages db over time."""

    def wrong(inputs, ups):
        (dh,) = ups
        _, caches = layers.rnn_forward(*inputs.values())
        N, T, H = dh.shape
        dx = np.empty((N, T, inputs["x"].shape[2]))
        sums = [np.zeros_like(inputs["Wx"]), np.zeros_like(inputs["Wh"]), np.zeros(H)]
        dprev = np.zeros((N, H))
        for t in (range(T) if forwards else reversed(range(T))):
            g = {"both": dh[:, t] + dprev, "own": dh[:, t],
                 "future": dprev + (dh[:, t] if t == T - 1 else 0)}[upstream]
            dx[:, t], dprev, *step = layers.rnn_step_backward(g, caches[t])
            sums = [s + d for s, d in zip(sums, step, strict=True)] if accumulate else step
        if db_mean:
            sums[2] = sums[2] / T
        return (dx, dprev if dh0 else np.zeros((N, H)), *sums)

    return wrong


def _seq_backward_test(numeric=False, **kw):
    return backward_test(_rnn_args(**kw), ("h",), ("dh",), SEQ_GRADS, numeric=numeric)


register(Exercise(
    "rnn_backward", NB, layers.rnn_backward, forward=layers.rnn_forward, forward_name="rnn_forward",
    uses=("rnn_step_backward",),
    tests=[
        ("values against the reference", _seq_backward_test()),
        ("one time step (T=1)", _seq_backward_test(T=1)),
        ("batch of one (N=1)", _seq_backward_test(N=1)),
        ("against numerical gradients", _seq_backward_test(numeric=True)),
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
        (_seq_variant(forwards=True),
         "Your loop walks forwards in time. Backpropagation starts at the last step, t = T - 1, and walks back "
         "to t = 0, since step t needs the gradient that came back from step t + 1: for t in reversed(range(T))."),
        (_seq_variant(db_mean=True),
         "db is averaged over time; a shared weight's gradient is the sum of its per-step gradients."),
        (_seq_variant(dh0=False),
         "dh0 is missing: it is the gradient that comes back out of step 0, the dprev_h of the last step you "
         "compute."),
    ],
))


# --- truncated BPTT ------------------------------------------------------------------------------

class _Loop:
    """The loss_fn and step handed to a training loop, around one seeded model.

    Records every chunk the loop feeds loss_fn, with the number of optimiser steps made before it and the
    h_last handed back. Given the reference's chunks, it stops the learner's loop at the first thing
    that differs, so the check can say which chunk went wrong and why.
    """

    def __init__(self, seed, V, H, T, L, expected=None):
        from ..train import Adam

        self.params = charrnn.init_params(V, H, np.random.default_rng(seed))
        self.opt = Adam(self.params, lr=0.05)
        self.T, self.L, self.expected = T, L, expected
        self.calls, self.returned, self.steps = [], [], 0

    def loss_fn(self, params, x, y, h):
        if params is not self.params:
            raise Failure("loss_fn was not given the params dict your function received.",
                          "Pass `params` itself to loss_fn: step(grads) updates that dict in place.")
        self.calls.append(tuple(np.array(a) for a in (x, y, h)) + (self.steps,))
        if self.expected is not None:
            problem = self.problem(finished=False)
            if problem:
                raise problem
        loss, grads, h_last = charrnn.char_rnn_loss(self.params, *self.calls[-1][:3])
        self.returned.append(h_last)
        return loss, grads, h_last

    def step(self, grads):
        self.steps += 1
        self.opt.step(grads)

    def problem(self, finished=True):
        """A Failure naming the first chunk that differs from the expected ones, or None."""
        T, L, expected = self.T, self.L, self.expected
        too_many = Failure(
            f"loss_fn was called {len(self.calls)}{'' if finished else ' or more'} times; with data of length "
            f"L={L} and T={T} there are {len(expected)} full chunks.",
            "Use only full chunks: a chunk starting at s needs data up to column s + T (the last target), so "
            "`for s in range(0, L - T, T)`.")
        if len(self.calls) > len(expected):
            return too_many
        for k, ((x, y, h, steps), (ex, ey, eh, _)) in enumerate(zip(self.calls, expected, strict=False)):
            if x.shape != ex.shape or not np.array_equal(x, ex):
                return Failure(
                    f"Chunk {k} fed the wrong inputs x (shape {x.shape}; expected data[:, {k * T}:{k * T + T}], "
                    f"shape {ex.shape}).", "Chunk k covers columns k*T to k*T + T of the data, without overlap.")
            if y.shape != ey.shape or not np.array_equal(y, ey):
                return Failure(
                    f"Chunk {k} fed the wrong targets y (shape {y.shape}; expected data[:, {k * T + 1}:"
                    f"{k * T + T + 1}], shape {ey.shape}).",
                    "The target at each position is the next character: y is x shifted left by one. The last "
                    "chunk must be full too: its final target is the character after its final input.")
            if steps != k:
                return Failure(
                    f"When chunk {k} began, step(grads) had been called {steps} time{'s' if steps != 1 else ''}; "
                    f"it should have been called {k} time{'s' if k != 1 else ''}, once after each earlier chunk.",
                    "Call step(grads) exactly once per chunk, right after that chunk's loss_fn: every chunk "
                    "updates the weights before the next one is read.")
            want = eh if k == 0 else self.returned[k - 1]
            if h.shape != want.shape or not np.allclose(h, want, rtol=1e-9, atol=1e-12):
                if k == 0:
                    return Failure("Chunk 0 did not start from h0.", "Start the first chunk from the h0 you are given.")
                zero = h.shape == want.shape and np.allclose(h, 0)
                return Failure(
                    f"Chunk {k} did not start from the h_last that loss_fn returned for chunk {k - 1}"
                    f"{' (it started from zeros)' if zero else ''}.",
                    "Carry the hidden state across chunks: each chunk starts from the h_last the previous chunk's "
                    "loss_fn returned. Truncation cuts the gradient at the boundary, not the state.")
        if finished and len(self.calls) != len(expected):
            return too_many
        if finished and self.steps != len(self.calls):
            return Failure(f"step(grads) was called {self.steps} times for {len(self.calls)} chunks.",
                           "Call step(grads) once per chunk, right after loss_fn, so every chunk updates the weights.")
        return None


def _tbptt_test(L_of=None):
    """Train the same seeded model with the learner's loop and the reference; chunks, steps, state, losses and
    the final weights must agree. L_of(T, rng) fixes the data's length (default: random)."""

    def test(trial):
        rng = trial.rng
        N, V, H, T = int(rng.integers(2, 5)), int(rng.integers(4, 8)), int(rng.integers(4, 8)), int(rng.integers(3, 6))
        L = L_of(T, rng) if L_of else T * int(rng.integers(3, 6)) + int(rng.integers(1, T + 1))
        seed = int(rng.integers(1 << 30))
        data, h0 = rng.integers(0, V, (N, L)), rng.uniform(-0.5, 0.5, (N, H))
        reference = _Loop(seed, V, H, T, L)
        ref = trial.exercise.reference(reference.loss_fn, reference.params, data.copy(), T, reference.step, h0.copy())
        loop = _Loop(seed, V, H, T, L, expected=reference.calls)
        inputs = {"data": data, "T": T, "h0": h0}
        try:
            try:
                got = call(trial.fn, {"loss_fn": loop.loss_fn, "params": loop.params, "data": data, "T": T,
                                      "step": loop.step, "h0": h0}, keep=("loss_fn", "params", "step"))
            except LearnerError as err:
                if isinstance(err.exc, Failure):  # the loop was stopped at a wrong chunk
                    raise err.exc from None
                raise
            problem = loop.problem()
            if problem:
                raise problem
            out = returns("losses", "h")(got)
            compare_outputs({"losses": ref[0], "h": ref[1]}, out, 1e-6)
            compare_outputs({f"params[{k!r}] after training": v for k, v in reference.params.items()},
                            {f"params[{k!r}] after training": v for k, v in loop.params.items()}, 1e-6)
        except Failure as f:
            f.message += f"\nInputs: {describe_inputs(inputs)}"
            raise

    return test


register(Exercise(
    "truncated_bptt", NB, charrnn.truncated_bptt,
    tests=[
        ("chunks, carried state and losses match the reference", _tbptt_test()),
        ("a partial chunk at the end is left out",
         _tbptt_test(lambda T, rng: T * int(rng.integers(3, 6)) + T // 2 + 1)),
        ("L a multiple of T: the last chunk has no target for its last step",
         _tbptt_test(lambda T, rng: T * int(rng.integers(3, 6)))),
        ("L = kT + 1: exactly k full chunks", _tbptt_test(lambda T, rng: T * int(rng.integers(3, 6)) + 1)),
    ],
))


# --- temperature sampling ------------------------------------------------------------------------

def _sample_checked(trial, scores, temperature, rng):
    out = call(trial.fn, {"scores": scores, "temperature": temperature, "rng": rng})
    N, V = scores.shape
    if out is None:
        raise Failure(f"Your function returned None; expected an array of shape (N,) = ({N},).",
                      "Did you forget `return`?")
    if type(out) is not np.ndarray or out.shape != (N,):
        hint = ("One index per row as a 1-D array: drop the last axis (.ravel(), or [:, 0])."
                if type(out) is np.ndarray and out.shape == (N, 1) else
                "Draw one index per row and return them as one numpy array (np.array(list_of_indices)).")
        raise Failure(f"Expected a numpy array of shape (N,) = ({N},), one index per row of scores; got {kind(out)}.",
                      hint)
    arr = out
    if not np.issubdtype(arr.dtype, np.integer):
        raise Failure(f"Expected integer indices; got dtype {arr.dtype}.", "Convert with .astype(int).")
    if arr.min() < 0 or arr.max() >= V:
        raise Failure(f"Indices must lie in [0, {V}); got values from {arr.min()} to {arr.max()}.")
    return arr


def _frequency_test(temperature, n=20_000, z_max=5.5):
    """Each index's frequency over n identical rows must match softmax(scores / T) (z-score per index)."""

    def test(trial):
        rng = trial.rng
        V = 5
        while True:
            row = rng.standard_normal(V) * 1.5
            p = layers.softmax(row / temperature)
            if p.min() > 0.01:
                break
        got = _sample_checked(trial, np.tile(row, (n, 1)), temperature, _generator(trial))
        counts = np.bincount(got, minlength=V)
        z = (counts - n * p) / np.sqrt(n * p * (1 - p))
        worst = int(np.argmax(np.abs(z)))
        if abs(z[worst]) > z_max and len(set(got.tolist())) == 1:
            raise Failure(f"At temperature {temperature}, all {n} rows drew the same index {got[0]}, although every "
                          f"index has probability at least {p.min():.2f}.",
                          "Draw one random number per row (rng.random((N, 1)), or rng.choice once per row): a single "
                          "number shared by all the rows makes them all pick the same index.")
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


def _rows_test(trial):
    """Each row is sampled from its own distribution: rows with a certain answer must give it."""
    rng = trial.rng
    N, V = 50, 6
    want = rng.integers(0, V, N)
    want[:2] = [0, 1]  # at least two different answers
    scores = rng.standard_normal((N, V))
    scores[np.arange(N), want] += 60.0
    got = _sample_checked(trial, scores, 1.0, _generator(trial))
    if not np.array_equal(got, want):
        i = int(np.argmax(got != want))
        hint = ("Draw each row from its own softmax: normalise along the last axis (axis=1, keepdims=True), so "
                "that row i's probabilities sum to 1 on their own.")
        if np.all(got == got[0]):
            hint = (f"Every row got the same index ({got[0]}): each row must be drawn from its own probabilities "
                    "p[i], not all from row 0's (loop over the rows, or use one uniform number per row against "
                    "each row's cumulative sum).")
        elif np.all((got - want) % V == 1) or np.all((want - got) % V == 1):
            hint = ("Your index is off by one: with u = rng.random(), the sample is the first index whose cumulative "
                    "probability exceeds u, which is (p.cumsum(axis=1) < u).sum(axis=1), with no + 1 or - 1.")
        raise Failure(f"Row {i} puts probability > 1 - 1e-20 on index {want[i]}, but you drew {got[i]}.", hint)


def _stable_test(trial):
    """A low temperature makes scores / T huge: exp must not overflow."""
    rng = trial.rng
    scores = rng.standard_normal((200, 8)) * 10
    want = scores.argmax(axis=1)
    scores[np.arange(200), want] += 1.0  # a margin of 1 / 0.01 = 100: any other index has p < 1e-40
    got = _sample_checked(trial, scores, 0.01, _generator(trial))
    if not np.array_equal(got, want):
        raise Failure(
            "At temperature 0.01 the largest score should be drawn almost surely, but "
            f"{int((got != want).sum())} of 200 rows drew another index.",
            "scores / 0.01 reaches the thousands, where exp() overflows to inf and softmax gives NaN: subtract "
            "each row's maximum before exponentiating.")


def _seed_test(trial):
    rng = trial.rng
    scores = rng.standard_normal((100, 6))
    seed = int(rng.integers(1 << 30))
    a, b, c = (_sample_checked(trial, scores, 1.0, np.random.default_rng(s)) for s in (seed, seed, seed + 1))
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

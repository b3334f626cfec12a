"""Exercises of notebook 03: clipping, the LSTM (step, sequence, backward), the GRU step, LSTM weights in torch."""

import copy

import numpy as np

from .. import gates
from .battery import backward_gradient_test, call_checked, describe_inputs, returns, value_test
from .compare import Failure, assert_close
from .core import Exercise, register
from .rnn_basics import FLOAT32, _dims

NB = "03"
LSTM_STEP_GRADS = ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db")
LSTM_SEQ_GRADS = ("dx", "dh0", "dWx", "dWh", "db")


def _gate_weights(rng, D, H, k, dtype=np.float64):
    return {"Wx": (rng.standard_normal((D, k * H)) / np.sqrt(D)).astype(dtype),
            "Wh": (rng.standard_normal((H, k * H)) / np.sqrt(H)).astype(dtype),
            "b": (0.5 * rng.standard_normal(k * H)).astype(dtype)}


# --- clip_grad_norm ------------------------------------------------------------------------------

def _clip_args(kind, scale):
    def make(rng):
        shapes = [(int(rng.integers(2, 5)), int(rng.integers(2, 5))), (int(rng.integers(2, 6)),), (3, 2, 2)]
        arrays = [scale * rng.standard_normal(s) for s in shapes]
        grads = dict(zip(("Wx", "Wh", "b"), arrays, strict=True)) if kind == "dict" else arrays
        norm = np.sqrt(sum(np.sum(a**2) for a in arrays))
        return {"grads": grads, "max_norm": float(norm * rng.uniform(0.2, 0.6)) if scale > 1 else 5.0 * norm}

    return make


def _clip_select(result):
    out = returns("grads", "norm")(result)
    grads = out["grads"]
    items = grads.items() if isinstance(grads, dict) else enumerate(grads) if isinstance(grads, list | tuple) else None
    if items is None:
        raise Failure(f"The clipped gradients should be a list or dict like the input; got {type(grads).__name__}.")
    return {"norm": out["norm"], **{f"grads[{k!r}]": v for k, v in items}}


def _clip_variant(norm_of, per_array=False, elementwise=False, always_scale=False):
    def wrong(grads, max_norm):
        arrays = list(grads.values()) if isinstance(grads, dict) else list(grads)
        norm = norm_of(arrays)
        if elementwise:
            out = [np.clip(g, -max_norm, max_norm) for g in arrays]
        elif per_array:
            out = [g * min(1.0, max_norm / np.sqrt(np.sum(g**2))) for g in arrays]
        else:
            out = [g * (max_norm / norm if always_scale else min(1.0, max_norm / norm)) for g in arrays]
        return (dict(zip(grads, out, strict=True)) if isinstance(grads, dict) else out), norm

    return wrong


def _l2(arrays):
    return float(np.sqrt(sum(np.sum(a**2) for a in arrays)))


register(Exercise(
    "clip_grad_norm", NB, gates.clip_grad_norm,
    tests=[
        ("a list of large gradients is scaled down", value_test(_clip_args("list", 10.0), _clip_select, 1e-7)),
        ("a dict of large gradients", value_test(_clip_args("dict", 10.0), _clip_select, 1e-7)),
        ("small gradients are left alone", value_test(_clip_args("list", 1.0), _clip_select, 1e-7)),
    ],
    mistakes=[
        (_clip_variant(lambda a: float(sum(np.sum(x**2) for x in a))),
         "The norm is the square root of the sum of squares: np.sqrt(sum of g**2 over every entry of every "
         "array). Without the square root it is the squared norm (one of the source notes prints this mistake)."),
        (_clip_variant(_l2, per_array=True),
         "Each array is clipped on its own; compute one global norm over all arrays and scale them all by the "
         "same factor, or the update changes direction."),
        (_clip_variant(_l2, elementwise=True),
         "That is element-wise clipping (np.clip), which changes the gradient's direction; scale every array by "
         "min(1, max_norm / norm) instead."),
        (_clip_variant(_l2, always_scale=True),
         "Gradients smaller than max_norm must be left alone: the factor is min(1, max_norm / norm)."),
        (_clip_variant(lambda a: float(sum(np.sum(np.abs(x)) for x in a))),
         "That is the L1 norm (sum of |g|); clipping uses the L2 norm, sqrt(sum of g**2)."),
    ],
))


# --- LSTM ----------------------------------------------------------------------------------------

def _lstm_step_args(N=None, dtype=np.float64):
    def make(rng):
        n, _, D, H = _dims(rng, N=N)
        return {"x": rng.standard_normal((n, D)).astype(dtype), "prev_h": rng.uniform(-1, 1, (n, H)).astype(dtype),
                "prev_c": rng.standard_normal((n, H)).astype(dtype), **_gate_weights(rng, D, H, 4, dtype)}

    return make


def _lstm_seq_args(N=None, T=None, dtype=np.float64):
    def make(rng):
        n, t, D, H = _dims(rng, N=N, T=T)
        return {"x": rng.standard_normal((n, t, D)).astype(dtype), "h0": rng.uniform(-1, 1, (n, H)).astype(dtype),
                **_gate_weights(rng, D, H, 4, dtype)}

    return make


def _step_variant(order=(0, 1, 2, 3), act=("s", "s", "s", "t"), cell=None, out=None):
    """A wrong LSTM step; order permutes the gate blocks, act their nonlinearities, cell/out the updates."""
    fns = {"s": gates.sigmoid, "t": np.tanh}

    def wrong(x, prev_h, prev_c, Wx, Wh, b):
        a = np.split(x @ Wx + prev_h @ Wh + b, 4, axis=1)
        i, f, o, g = (fns[act[k]](a[order[k]]) for k in range(4))
        c = cell(i, f, g, prev_c) if cell else f * prev_c + i * g
        h = out(o, c) if out else o * np.tanh(c)
        return h, c, None

    return wrong


register(Exercise(
    "lstm_step_forward", NB, gates.lstm_step_forward,
    tests=[
        ("values (float64)", value_test(_lstm_step_args(), returns("next_h", "next_c", "cache"), 1e-7)),
        ("batch of one (N=1)", value_test(_lstm_step_args(N=1), returns("next_h", "next_c", "cache"), 1e-7)),
        ("float32 inputs", value_test(_lstm_step_args(dtype=np.float32), returns("next_h", "next_c", "cache"),
                                      **FLOAT32)),
    ],
    mistakes=[
        (_step_variant(order=(0, 1, 3, 2)),
         "The gate blocks are in the order i, f, g, o (PyTorch's); this course stacks them i, f, o, g: "
         "a[:, :H] is i, a[:, H:2H] f, a[:, 2H:3H] o, a[:, 3H:] g."),
        (_step_variant(act=("s", "s", "s", "s")),
         "g, the candidate, uses tanh (values in (-1, 1)); only the gates i, f, o use the sigmoid."),
        (_step_variant(act=("t", "t", "t", "t")),
         "The gates i, f, o use the sigmoid (values in (0, 1), a fraction to let through); only g uses tanh."),
        (_step_variant(out=lambda o, c: o * c),
         "next_h = o * tanh(next_c): the cell passes through a tanh before the output gate."),
        (_step_variant(cell=lambda i, f, g, c: c + i * g),
         "The forget gate multiplies the old cell: next_c = f * prev_c + i * g."),
        (_step_variant(cell=lambda i, f, g, c: f * c + g),
         "The input gate scales the candidate: next_c = f * prev_c + i * g."),
    ],
))


register(Exercise(
    "lstm_forward", NB, gates.lstm_forward,
    tests=[
        ("values (float64)", value_test(_lstm_seq_args(), returns("h", "cache"), 1e-7)),
        ("one time step (T=1)", value_test(_lstm_seq_args(T=1), returns("h", "cache"), 1e-7)),
        ("float32 inputs", value_test(_lstm_seq_args(dtype=np.float32), returns("h", "cache"), **FLOAT32)),
    ],
    mistakes=[
        (lambda x, h0, Wx, Wh, b: (np.stack([gates.lstm_step_forward(x[:, t], h0, np.zeros_like(h0), Wx, Wh, b)[0]
                                             for t in range(x.shape[1])], axis=1), None),
         "Every step starts from h0 and a zero cell: carry both next_h and next_c from step to step."),
        (lambda x, h0, Wx, Wh, b: (np.stack(_carry_h_only(x, h0, Wx, Wh, b), axis=1), None),
         "The cell state is reset at every step: carry next_c to the next step along with next_h."),
    ],
))


def _carry_h_only(x, h0, Wx, Wh, b):
    h, out = h0, []
    for t in range(x.shape[1]):
        h, _, _ = gates.lstm_step_forward(x[:, t], h, np.zeros_like(h0), Wx, Wh, b)
        out.append(h)
    return out


def _step_backward_args(rng):
    inputs = _lstm_step_args()(rng)
    h, c, cache = gates.lstm_step_forward(*inputs.values())
    return {"dnext_h": rng.standard_normal(h.shape), "dnext_c": rng.standard_normal(c.shape), "cache": cache}


def _step_backward_numeric(fn, ex):
    """Numerical gradients of sum(next_h * dnext_h) + sum(next_c * dnext_c) for each of the six inputs."""

    def forward(x, prev_h, prev_c, Wx, Wh, b):
        h, c, cache = gates.lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
        return np.concatenate([h, c], axis=1), cache

    def as_one(dout, cache):
        H = dout.shape[1] // 2
        return fn(dout[:, :H], dout[:, H:], cache)

    backward_gradient_test(forward, _lstm_step_args(), LSTM_STEP_GRADS)(as_one, ex)


def _lstm_step_backward_variant(dc_from_h=True, dprev_c_scale=True):
    def wrong(dnext_h, dnext_c, cache):
        x, prev_h, prev_c, Wx, Wh, g4, next_c = cache
        i, f, o, g = np.split(g4, 4, axis=1)
        t = np.tanh(next_c)
        dc = dnext_c + (dnext_h * o * (1 - t**2) if dc_from_h else 0)
        da = np.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * t * o * (1 - o),
                             dc * i * (1 - g**2)], axis=1)
        return da @ Wx.T, da @ Wh.T, dc * f if dprev_c_scale else dc, x.T @ da, prev_h.T @ da, da.sum(0)

    return wrong


register(Exercise(
    "lstm_step_backward", NB, gates.lstm_step_backward,
    tests=[
        ("values against the reference", value_test(_step_backward_args, returns(*LSTM_STEP_GRADS), 1e-7)),
        ("against numerical gradients", _step_backward_numeric),
    ],
    mistakes=[
        (_lstm_step_backward_variant(dc_from_h=False),
         "The gradient reaching next_c comes from dnext_c *and* from next_h = o * tanh(next_c): "
         "dc = dnext_c + dnext_h * o * (1 - tanh(next_c)**2)."),
        (_lstm_step_backward_variant(dprev_c_scale=False),
         "dprev_c = dc * f: the old cell reaches the new one multiplied by the forget gate."),
    ],
))


def _seq_backward_args(T=None):
    def make(rng):
        inputs = _lstm_seq_args(T=T)(rng)
        h, cache = gates.lstm_forward(*inputs.values())
        return {"dh": rng.standard_normal(h.shape), "cache": cache}

    return make


def _seq_backward_variant(carry_c=True, carry_h=True):
    def wrong(dh, cache):
        x, h0, Wx, Wh, h, c, g = (cache[k] for k in ("x", "h0", "Wx", "Wh", "h", "c", "gates"))
        N, T, H = dh.shape
        dx, sums = np.zeros(x.shape), [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H)]
        dnh, dnc = np.zeros((N, H)), np.zeros((N, H))
        for t in reversed(range(T)):
            step_cache = (x[:, t], h[:, t - 1] if t else h0, c[:, t - 1] if t else np.zeros((N, H)), Wx, Wh,
                          g[:, t], c[:, t])
            dx[:, t], dph, dpc, *d = gates.lstm_step_backward(dh[:, t] + (dnh if carry_h else 0),
                                                              dnc if carry_c else np.zeros((N, H)), step_cache)
            dnh, dnc = dph, dpc
            sums = [s + v for s, v in zip(sums, d, strict=True)]
        return (dx, dnh, *sums)

    return wrong


register(Exercise(
    "lstm_backward", NB, gates.lstm_backward,
    tests=[
        ("values against the reference", value_test(_seq_backward_args(), returns(*LSTM_SEQ_GRADS), 1e-7)),
        ("one time step (T=1)", value_test(_seq_backward_args(T=1), returns(*LSTM_SEQ_GRADS), 1e-7)),
        ("against numerical gradients", backward_gradient_test(gates.lstm_forward, _lstm_seq_args(), LSTM_SEQ_GRADS)),
    ],
    mistakes=[
        (_seq_backward_variant(carry_c=False),
         "The gradient of the cell state is not carried back: pass each step's dprev_c to the step before as "
         "its dnext_c. This path, through the forget gates, is the LSTM's gradient highway."),
        (_seq_backward_variant(carry_h=False),
         "The gradient flowing back through h is dropped: step t gets dh[:, t] + the dprev_h of step t + 1."),
    ],
))


# --- LSTM weights into torch ---------------------------------------------------------------------

def lstm_to_torch(Wx, Wh, b):
    """The reference mapping: our (i f o g, transposed, one bias) weights as torch.nn.LSTM's state dict."""
    import torch

    H = Wh.shape[0]
    order = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]  # torch stacks i, f, g, o
    return {"weight_ih_l0": torch.tensor(Wx[:, order].T), "weight_hh_l0": torch.tensor(Wh[:, order].T),
            "bias_ih_l0": torch.tensor(b[order]), "bias_hh_l0": torch.zeros(4 * H, dtype=torch.float64)}


def _mapping_test(fn, ex):
    """torch.nn.LSTM loaded with the learner's tensors must reproduce the numpy LSTM's outputs."""
    import torch

    rng = np.random.default_rng()
    n, t, D, H = _dims(rng)
    args = _gate_weights(rng, D, H, 4)
    got = call_checked(fn, args)
    if not isinstance(got, dict):
        raise Failure(f"Expected a dict of tensors named like torch.nn.LSTM's parameters; got {type(got).__name__}.",
                      "Return {'weight_ih_l0': ..., 'weight_hh_l0': ..., 'bias_ih_l0': ..., 'bias_hh_l0': ...}.")
    ref = ex.reference(*copy.deepcopy(args).values())
    missing = sorted(set(ref) - set(got))
    if missing:
        raise Failure(f"Missing entries: {missing}. torch.nn.LSTM(D, H) has weight_ih_l0 (4H, D), weight_hh_l0 "
                      "(4H, H), bias_ih_l0 and bias_hh_l0 (4H,).")
    for name in ("weight_ih_l0", "weight_hh_l0"):
        mine = np.asarray(got[name].detach() if hasattr(got[name], "detach") else got[name])
        if mine.shape == ref[name].shape[::-1]:
            raise Failure(f"`{name}` has shape {mine.shape}; torch stores it transposed, {tuple(ref[name].shape)}.",
                          "torch computes x @ W.T, so its weight is our Wx.T (and Wh.T).")
        try:
            assert_close(name, mine, ref[name].numpy(), 1e-7)
        except Failure as f:
            ours = np.asarray(mine)
            if ours.shape == ref[name].shape and np.allclose(ours, ref[name].numpy()[np.r_[0:2 * H, 3 * H:4 * H,
                                                                                        2 * H:3 * H]]):
                f.hint = ("The gate blocks are still in our order i, f, o, g; torch.nn.LSTM stacks them i, f, g, o, "
                          "so swap the last two blocks of H rows.")
            raise
    total = sum(np.asarray(got[k].detach() if hasattr(got[k], "detach") else got[k]) for k in ("bias_ih_l0",
                                                                                              "bias_hh_l0"))
    try:
        assert_close("bias_ih_l0 + bias_hh_l0", total, ref["bias_ih_l0"].numpy(), 1e-7)
    except Failure as f:
        f.hint = ("torch adds two biases, bias_ih_l0 + bias_hh_l0; together they must equal our b (reordered "
                  "i, f, g, o). Put b in one and zeros in the other.")
        raise
    lstm = torch.nn.LSTM(D, H, batch_first=True, dtype=torch.float64)
    lstm.load_state_dict({k: torch.as_tensor(np.asarray(v.detach() if hasattr(v, "detach") else v),
                                             dtype=torch.float64) for k, v in got.items()})
    x, h0 = rng.standard_normal((n, t, D)), rng.standard_normal((n, H))
    with torch.no_grad():
        theirs, _ = lstm(torch.tensor(x), (torch.tensor(h0[None]), torch.zeros(1, n, H, dtype=torch.float64)))
    ours, _ = gates.lstm_forward(x, h0, **args)
    try:
        assert_close("torch.nn.LSTM output", theirs.numpy(), ours, 1e-7)
    except Failure as f:
        f.message += f"\nInputs: {describe_inputs(args)}"
        raise


register(Exercise("lstm_to_torch", NB, lstm_to_torch,
                  tests=[("torch.nn.LSTM reproduces the numpy LSTM", _mapping_test)]))


# --- GRU -----------------------------------------------------------------------------------------

def _gru_args(N=None, dtype=np.float64):
    def make(rng):
        n, _, D, H = _dims(rng, N=N)
        return {"x": rng.standard_normal((n, D)).astype(dtype), "prev_h": rng.uniform(-1, 1, (n, H)).astype(dtype),
                **_gate_weights(rng, D, H, 3, dtype)}

    return make


def _gru_variant(reset_after=False, swap_z=False, swap_zr=False, no_reset=False):
    def wrong(x, prev_h, Wx, Wh, b):
        H = prev_h.shape[1]
        a = x @ Wx + b
        z = gates.sigmoid(a[:, :H] + prev_h @ Wh[:, :H])
        r = gates.sigmoid(a[:, H:2 * H] + prev_h @ Wh[:, H:2 * H])
        if swap_zr:
            z, r = r, z
        if no_reset:
            r = np.ones_like(r)
        hn = r * (prev_h @ Wh[:, 2 * H:]) if reset_after else (r * prev_h) @ Wh[:, 2 * H:]
        n = np.tanh(a[:, 2 * H:] + hn)
        return ((1 - z) * prev_h + z * n if swap_z else z * prev_h + (1 - z) * n), None

    return wrong


register(Exercise(
    "gru_step_forward", NB, gates.gru_step_forward,
    tests=[
        ("values (float64)", value_test(_gru_args(), returns("next_h", "cache"), 1e-7)),
        ("batch of one (N=1)", value_test(_gru_args(N=1), returns("next_h", "cache"), 1e-7)),
        ("float32 inputs", value_test(_gru_args(dtype=np.float32), returns("next_h", "cache"), **FLOAT32)),
    ],
    mistakes=[
        (_gru_variant(reset_after=True),
         "The reset gate multiplies the product (prev_h @ Wh_n), as torch.nn.GRU does; in this lecture's "
         "formulation it multiplies prev_h before the product: (r * prev_h) @ Wh_n."),
        (_gru_variant(swap_z=True),
         "z and 1 - z are swapped: in this formulation z = 1 keeps the old state, next_h = z * prev_h + (1 - z) * n."),
        (_gru_variant(swap_zr=True),
         "The blocks are stacked [z r n]: Wx[:, :H] belongs to the update gate z, Wx[:, H:2H] to the reset gate r."),
        (_gru_variant(no_reset=True),
         "The reset gate is not used: the candidate is tanh(x @ Wx_n + (r * prev_h) @ Wh_n + b_n)."),
    ],
))

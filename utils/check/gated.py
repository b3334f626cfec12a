"""Exercises of notebook 03: clipping, the LSTM (step, sequence, backward), the GRU step, LSTM weights in torch."""

import numpy as np

from .. import gates
from .battery import backward_test, call, describe_inputs, returns, snapshot, value_test
from .compare import Failure, compare_outputs, kind, mismatch
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

def _clip_args(container, scale, zero=False):
    """A list or dict of three arrays; scale > 1 puts the global norm above max_norm, scale = 1 below it."""

    def make(rng):
        shapes = [(int(rng.integers(2, 5)), int(rng.integers(2, 5))), (int(rng.integers(2, 6)),), (3, 2, 2)]
        arrays = [scale * rng.standard_normal(s) * (0.0 if zero else 1.0) for s in shapes]
        grads = dict(zip(("W", "b", "kernel"), arrays, strict=True)) if container == "dict" else arrays
        norm = np.sqrt(sum(np.sum(a**2) for a in arrays))
        max_norm = float(norm * rng.uniform(0.2, 0.6)) if scale > 1 else 5.0 * norm if norm else 1.0
        return {"grads": grads, "max_norm": max_norm}

    return make


def _clip_items(grads, like):
    """The clipped arrays by name ("grads['Wx']" or "grads[0]"), after checking they come in `like`'s container."""
    if isinstance(like, dict):
        if not isinstance(grads, dict) or set(grads) != set(like):
            raise Failure(f"For a dict of gradients, return a dict with the same keys {list(like)}; got {kind(grads)}.",
                          "Build the result the way the input came: {name: g * scale for name, g in grads.items()}.")
        return {f"grads[{k!r}]": grads[k] for k in like}
    if not isinstance(grads, list) or len(grads) != len(like):
        raise Failure(f"For a list of {len(like)} gradients, return a list of {len(like)}; got {kind(grads)}.",
                      "Build the result the way the input came: [g * scale for g in grads].")
    return {f"grads[{i}]": g for i, g in enumerate(grads)}


def _clip_test(make):
    """Every clipped array and the norm before clipping against the reference, in the input's container."""

    def test(trial):
        ex = trial.exercise
        args = make(trial.rng)
        ref_grads, ref_norm = ex.reference(*snapshot(args).values())
        got = returns("grads", "norm")(call(trial.fn, args))
        theirs = {"norm": got["norm"], **_clip_items(got["grads"], args["grads"])}
        expected = {"norm": ref_norm, **_clip_items(ref_grads, args["grads"])}
        try:
            compare_outputs(expected, theirs, 1e-7)
        except Failure as f:
            for wrong, hint in ex.mistakes:
                try:
                    w_grads, w_norm = wrong(*snapshot(args).values())
                    mine = {"norm": w_norm, **_clip_items(w_grads, args["grads"])}
                    if all(mismatch(k, theirs[k], v, 1e-6) is None for k, v in mine.items()):
                        f.hint = hint
                        break
                except Exception:  # a mistake that cannot even run on these inputs (a norm of 0)
                    continue
            f.message += f"\nInputs: {describe_inputs(args)}, norm before clipping {ref_norm:.4g}"
            raise

    return test


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
        ("a list of large gradients is scaled down", _clip_test(_clip_args("list", 10.0))),
        ("a dict of large gradients", _clip_test(_clip_args("dict", 10.0))),
        ("small gradients are left alone", _clip_test(_clip_args("list", 1.0))),
        ("gradients of zeros (norm 0) are left alone", _clip_test(_clip_args("dict", 1.0, zero=True))),
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
    "lstm_forward", NB, gates.lstm_forward, uses=("lstm_step_forward",),
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
        (lambda x, h0, Wx, Wh, b: (gates.lstm_forward(x, h0, Wx, Wh, b)[1]["c"], None),
         "That is the cell state c at every step; return the hidden states h = o * tanh(c)."),
        (lambda x, h0, Wx, Wh, b: (_from_cell(x, h0, h0, Wx, Wh, b), None),
         "The initial cell state is zero; only the hidden state starts from h0."),
        (lambda x, h0, Wx, Wh, b: (_from_cell(x[:, ::-1], h0, np.zeros_like(h0), Wx, Wh, b)[:, ::-1], None),
         "Time runs backwards in your loop: step t = 0 comes first."),
        (lambda x, h0, Wx, Wh, b: (np.stack(_carry_c_only(x, h0, Wx, Wh, b), axis=1), None),
         "The hidden state is not carried: each step must start from the next_h of the step before (h0 only at "
         "t = 0), as well as from its cell."),
    ],
))


def _carry_c_only(x, h0, Wx, Wh, b):
    c, out = np.zeros_like(h0), []
    for t in range(x.shape[1]):
        h, c, _ = gates.lstm_step_forward(x[:, t], h0, c, Wx, Wh, b)
        out.append(h)
    return out


def _from_cell(x, h0, c0, Wx, Wh, b):
    h, c, out = h0, c0, []
    for t in range(x.shape[1]):
        h, c, _ = gates.lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        out.append(h)
    return np.stack(out, axis=1)


def _carry_h_only(x, h0, Wx, Wh, b):
    h, out = h0, []
    for t in range(x.shape[1]):
        h, _, _ = gates.lstm_step_forward(x[:, t], h, np.zeros_like(h0), Wx, Wh, b)
        out.append(h)
    return out


def _lstm_step_grads(inputs, ups, dc_from_h=True, forget=True, out_tanh=True, sigmoid_slope=True, db_mean=False,
                     dc_slope=True, dc_o=True, use_dnext_c=True, order="ifog"):
    """The gradients of one LSTM step from its inputs, with one piece of the chain rule optionally wrong:
    dc_from_h drops next_h's share of dc, forget leaves dprev_c unscaled by f, out_tanh gives the output gate
    next_c instead of tanh(next_c), sigmoid_slope uses 1 - s**2 as the gates' slope, db_mean averages db;
    dc_slope drops tanh'(next_c) from next_h's share of dc, dc_o drops o from it, use_dnext_c=False ignores
    the upstream dnext_c, order stacks the blocks of da in another order."""
    x, prev_h, prev_c, Wx, Wh, b = inputs.values()
    dnext_h, dnext_c = ups
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = (gates.sigmoid(a[:, k * H:(k + 1) * H]) for k in range(3))
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    t = np.tanh(next_c)
    slope = (lambda s: s * (1 - s)) if sigmoid_slope else (lambda s: 1 - s**2)
    from_h = dnext_h * (o if dc_o else 1) * ((1 - t**2) if dc_slope else 1)
    dc = (dnext_c if use_dnext_c else 0) + (from_h if dc_from_h else 0)
    blocks = {"i": dc * g * slope(i), "f": dc * prev_c * slope(f),
              "o": dnext_h * (t if out_tanh else next_c) * slope(o), "g": dc * i * (1 - g**2)}
    da = np.concatenate([blocks[k] for k in order], axis=1)
    db = da.mean(axis=0) if db_mean else da.sum(axis=0)
    return da @ Wx.T, da @ Wh.T, dc * f if forget else dc, x.T @ da, prev_h.T @ da, db


def _lstm_step_variant(**wrong):
    return lambda inputs, ups: _lstm_step_grads(inputs, ups, **wrong)


def _lstm_step_backward_test(numeric=False, **kw):
    return backward_test(_lstm_step_args(**kw), ("next_h", "next_c"), ("dnext_h", "dnext_c"), LSTM_STEP_GRADS,
                         numeric=numeric)


register(Exercise(
    "lstm_step_backward", NB, gates.lstm_step_backward, forward=gates.lstm_step_forward,
    forward_name="lstm_step_forward",
    tests=[
        ("values against the reference", _lstm_step_backward_test()),
        ("batch of one (N=1)", _lstm_step_backward_test(N=1)),
        ("against numerical gradients", _lstm_step_backward_test(numeric=True)),
    ],
    mistakes=[
        (_lstm_step_variant(dc_from_h=False),
         "The gradient reaching next_c comes from dnext_c *and* from next_h = o * tanh(next_c): "
         "dc = dnext_c + dnext_h * o * (1 - tanh(next_c)**2)."),
        (_lstm_step_variant(forget=False),
         "dprev_c = dc * f: the old cell reaches the new one multiplied by the forget gate."),
        (_lstm_step_variant(out_tanh=False),
         "The output gate's gradient: next_h = o * tanh(next_c), so do = dnext_h * tanh(next_c) (the tanh of the "
         "cell, not the cell itself), then times o * (1 - o)."),
        (_lstm_step_variant(sigmoid_slope=False),
         "The gates i, f, o are sigmoids: their slope is s * (1 - s); 1 - s**2 is the slope of tanh, which only "
         "the candidate g uses."),
        (_lstm_step_variant(db_mean=True),
         "db is a mean over the batch; it must be the sum over the batch, da.sum(axis=0), like dWx and dWh."),
        (_lstm_step_variant(dc_slope=False),
         "next_h = o * tanh(next_c) reaches next_c through the tanh: dc = dnext_c + dnext_h * o * "
         "(1 - tanh(next_c)**2); the factor (1 - tanh(next_c)**2) is missing."),
        (_lstm_step_variant(dc_o=False),
         "next_h = o * tanh(next_c) reaches next_c through the output gate too: dc = dnext_c + dnext_h * o * "
         "(1 - tanh(next_c)**2); the factor o is missing."),
        (_lstm_step_variant(use_dnext_c=False),
         "The upstream gradient of the cell, dnext_c, is missing from dc: dc = dnext_c + dnext_h * o * "
         "(1 - tanh(next_c)**2). (It is how the gradient of later steps arrives through the cell.)"),
        (_lstm_step_variant(order="ifgo"),
         "The blocks of da are stacked in torch's order i, f, g, o; this course stacks them i, f, o, g, like the "
         "forward's gates: np.concatenate([di, df, do, dg], axis=1) (each already times its nonlinearity's slope)."),
    ],
))


def _lstm_seq_variant(carry_c=True, carry_h=True, average=False, dh0=True, forwards=False, accumulate=True):
    """A wrong lstm_backward from the forward's inputs: the cell's or the hidden state's gradient not carried back,
    the weight gradients averaged over time or overwritten (only the last step computed), dh0 left at zero, or
    the loop walking forwards in time."""

    def wrong(inputs, ups):
        (dh,) = ups
        x, h0, Wx, Wh, b = inputs.values()
        N, T, H = dh.shape
        steps, h, c = [], h0, np.zeros_like(h0)
        for t in range(T):
            h, c, cache = gates.lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
            steps.append(cache)
        dx, sums = np.zeros(x.shape), [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H)]
        dnh, dnc = np.zeros((N, H)), np.zeros((N, H))
        for t in (range(T) if forwards else reversed(range(T))):
            dx[:, t], dph, dpc, *d = gates.lstm_step_backward(dh[:, t] + (dnh if carry_h else 0),
                                                              dnc if carry_c else np.zeros((N, H)), steps[t])
            dnh, dnc = dph, dpc
            sums = [s + v for s, v in zip(sums, d, strict=True)] if accumulate else d
        if average:
            sums = [s / T for s in sums]
        return (dx, dnh if dh0 else np.zeros((N, H)), *sums)

    return wrong


def _lstm_seq_backward_test(numeric=False, **kw):
    return backward_test(_lstm_seq_args(**kw), ("h",), ("dh",), LSTM_SEQ_GRADS, numeric=numeric)


register(Exercise(
    "lstm_backward", NB, gates.lstm_backward, forward=gates.lstm_forward, forward_name="lstm_forward",
    uses=("lstm_step_backward",),
    tests=[
        ("values against the reference", _lstm_seq_backward_test()),
        ("one time step (T=1)", _lstm_seq_backward_test(T=1)),
        ("against numerical gradients", _lstm_seq_backward_test(numeric=True)),
    ],
    mistakes=[
        (_lstm_seq_variant(carry_c=False),
         "The gradient of the cell state is not carried back: pass each step's dprev_c to the step before as "
         "its dnext_c. This path, through the forget gates, is the LSTM's gradient highway."),
        (_lstm_seq_variant(carry_h=False),
         "The gradient flowing back through h is dropped: step t gets dh[:, t] + the dprev_h of step t + 1."),
        (_lstm_seq_variant(average=True),
         "The weight gradients are averaged over time; Wx, Wh and b are shared by every step, so their "
         "gradients are the sums of the per-step gradients."),
        (_lstm_seq_variant(dh0=False),
         "dh0 is missing: it is the dprev_h that comes back out of step 0."),
        (_lstm_seq_variant(forwards=True),
         "Your loop walks forwards in time. Backpropagation starts at the last step, t = T - 1, and walks back "
         "to t = 0, since step t needs the gradients that came back from step t + 1: for t in reversed(range(T))."),
        (_lstm_seq_variant(accumulate=False),
         "The weight gradients hold only the last step computed (t = 0): Wx, Wh and b are shared by every step, "
         "so add up the per-step gradients."),
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


def _mapping_test(trial):
    """torch.nn.LSTM loaded with the learner's tensors must reproduce the numpy LSTM's outputs."""
    import torch

    rng, ex = trial.rng, trial.exercise
    n, t, D, H = _dims(rng)
    args = _gate_weights(rng, D, H, 4)
    got = call(trial.fn, args)
    if not isinstance(got, dict):
        raise Failure(f"Expected a dict of tensors named like torch.nn.LSTM's parameters; got {kind(got)}.",
                      "Return {'weight_ih_l0': ..., 'weight_hh_l0': ..., 'bias_ih_l0': ..., 'bias_hh_l0': ...}.")
    ref = ex.reference(*snapshot(args).values())
    missing = sorted(set(ref) - set(got))
    if missing:
        raise Failure(f"Missing entries: {missing}. torch.nn.LSTM(D, H) has weight_ih_l0 (4H, D), weight_hh_l0 "
                      "(4H, H), bias_ih_l0 and bias_hh_l0 (4H,).")
    for name in ref:
        value = got[name]
        if not isinstance(value, torch.Tensor):
            raise Failure(f"`{name}` is {kind(value)}; load_state_dict needs torch tensors.",
                          "Wrap each array: torch.tensor(array) (it keeps numpy's float64).")
        if value.dtype != torch.float64:
            raise Failure(f"`{name}` is a {str(value.dtype).replace('torch.', '')} tensor; the weights are float64, "
                          f"and loading them into {value.dtype} would round them to about 7 significant digits.",
                          "torch.tensor(array) keeps float64; torch.Tensor(array) and .float() make float32.")
        if tuple(value.shape) == tuple(ref[name].shape)[::-1] and value.dim() == 2:
            raise Failure(f"`{name}` has shape {tuple(value.shape)}; torch stores it transposed, "
                          f"{tuple(ref[name].shape)}.", "torch computes x @ W.T, so its weight is our Wx.T (and Wh.T).")
    mine = {k: got[k].detach().cpu().numpy() for k in ref}
    for name in ("weight_ih_l0", "weight_hh_l0"):
        problem = mismatch(name, mine[name], ref[name].numpy(), 1e-7)
        if problem:
            ours_order = ref[name].numpy()[np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]]
            same_as_ours = mismatch(name, mine[name], ours_order, 1e-7) is None
            raise Failure(str(problem), "The gate blocks are still in our order i, f, o, g; torch.nn.LSTM stacks "
                          "them i, f, g, o, so swap the last two blocks of H rows." if same_as_ours else None)
    problem = mismatch("bias_ih_l0 + bias_hh_l0", mine["bias_ih_l0"] + mine["bias_hh_l0"], ref["bias_ih_l0"].numpy(),
                       1e-7)
    if problem:
        raise Failure(str(problem), "torch adds two biases, bias_ih_l0 + bias_hh_l0; together they must equal our b "
                      "(reordered i, f, g, o). Put b in one and zeros in the other.")
    lstm = torch.nn.LSTM(D, H, batch_first=True, dtype=torch.float64)
    try:
        lstm.load_state_dict({k: got[k] for k in ref})
    except Exception as exc:
        raise Failure(f"torch.nn.LSTM({D}, {H}).load_state_dict refused your dict: "
                      f"{str(exc).splitlines()[0]}") from None
    x, h0 = rng.standard_normal((n, t, D)), rng.standard_normal((n, H))
    with torch.no_grad():
        theirs, _ = lstm(torch.tensor(x), (torch.tensor(h0[None]), torch.zeros(1, n, H, dtype=torch.float64)))
    ours, _ = gates.lstm_forward(x, h0, **args)
    try:
        compare_outputs({"torch.nn.LSTM output": ours}, {"torch.nn.LSTM output": theirs.numpy()}, 1e-7)
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

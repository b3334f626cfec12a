"""The checks of notebook 03 must pass every correct implementation and fail every wrong one."""

import numpy as np
import pytest
import torch

from utils import check, gates

from .check_cases import assert_check_fails, assert_check_passes

# ---- correct variants ---------------------------------------------------------------------------


def clip_flat(grads, max_norm):
    arrays = list(grads.values()) if isinstance(grads, dict) else grads
    norm = np.linalg.norm(np.concatenate([g.ravel() for g in arrays]))
    f = max_norm / norm if norm > max_norm else 1.0
    return ({k: v * f for k, v in grads.items()} if isinstance(grads, dict) else [g * f for g in grads]), norm


def _sig(a):
    return 1 / (1 + np.exp(-a))


def lstm_step_separate(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    blocks = [x @ Wx[:, k * H:(k + 1) * H] + prev_h @ Wh[:, k * H:(k + 1) * H] + b[k * H:(k + 1) * H]
              for k in range(4)]
    i, f, o = (_sig(a) for a in blocks[:3])
    g = np.tanh(blocks[3])
    c = f * prev_c + i * g
    return o * np.tanh(c), c, "my cache"


def lstm_forward_steps(x, h0, Wx, Wh, b):
    h, c, out = h0, np.zeros_like(h0), []
    for t in range(x.shape[1]):
        h, c, _ = gates.lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        out.append(h)
    return np.stack(out, 1), None


def lstm_step_backward_explicit(dnext_h, dnext_c, cache):
    x, ph, pc, Wx, Wh, g4, nc = cache
    H = ph.shape[1]
    i, f, o, g = g4[:, :H], g4[:, H:2 * H], g4[:, 2 * H:3 * H], g4[:, 3 * H:]
    dc = dnext_c + dnext_h * o * (1 - np.tanh(nc) ** 2)
    da = np.hstack([dc * g * i * (1 - i), dc * pc * f * (1 - f), dnext_h * np.tanh(nc) * o * (1 - o),
                    dc * i * (1 - g * g)])
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, ph.T @ da, da.sum(0)


def lstm_backward_steps(dh, cache):
    x, h0, Wx, Wh, h, c, g = (cache[k] for k in ("x", "h0", "Wx", "Wh", "h", "c", "gates"))
    N, T, H = dh.shape
    dx, acc = np.zeros(x.shape), None
    dnh, dnc = np.zeros((N, H)), np.zeros((N, H))
    for t in range(T - 1, -1, -1):
        step = (x[:, t], h[:, t - 1] if t else h0, c[:, t - 1] if t else np.zeros((N, H)), Wx, Wh, g[:, t], c[:, t])
        dx[:, t], dnh, dnc, *d = lstm_step_backward_explicit(dh[:, t] + dnh, dnc, step)
        acc = d if acc is None else [a + v for a, v in zip(acc, d, strict=True)]
    return (dx, dnh, *acc)


def gru_separate(x, prev_h, Wx, Wh, b):
    H = prev_h.shape[1]
    z = _sig(x @ Wx[:, :H] + prev_h @ Wh[:, :H] + b[:H])
    r = _sig(x @ Wx[:, H:2 * H] + prev_h @ Wh[:, H:2 * H] + b[H:2 * H])
    n = np.tanh(x @ Wx[:, 2 * H:] + (r * prev_h) @ Wh[:, 2 * H:] + b[2 * H:])
    return prev_h + (1 - z) * (n - prev_h), None


def mapping_two_biases(Wx, Wh, b):
    H = Wh.shape[0]
    perm = list(range(2 * H)) + list(range(3 * H, 4 * H)) + list(range(2 * H, 3 * H))
    half = torch.tensor(b[perm] / 2)
    return {"weight_ih_l0": torch.tensor(Wx.T[perm]), "weight_hh_l0": torch.tensor(Wh.T[perm]),
            "bias_ih_l0": half, "bias_hh_l0": half.clone()}


def mapping_numpy_arrays(Wx, Wh, b):
    i, f, o, g = np.split(np.arange(Wx.shape[1]), 4)
    perm = np.concatenate([i, f, g, o])
    return {"weight_ih_l0": Wx[:, perm].T, "weight_hh_l0": Wh[:, perm].T, "bias_ih_l0": b[perm],
            "bias_hh_l0": np.zeros_like(b)}


def mapping_from_numpy(Wx, Wh, b):
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in mapping_numpy_arrays(Wx, Wh, b).items()}


CORRECT = {
    "clip_grad_norm": [gates.clip_grad_norm, clip_flat],
    "lstm_step_forward": [gates.lstm_step_forward, lstm_step_separate],
    "lstm_step_backward": [gates.lstm_step_backward, lstm_step_backward_explicit],
    "lstm_forward": [gates.lstm_forward, lstm_forward_steps],
    "lstm_backward": [gates.lstm_backward, lstm_backward_steps],
    "gru_step_forward": [gates.gru_step_forward, gru_separate],
    "lstm_to_torch": [check.get("lstm_to_torch").reference, mapping_two_biases, mapping_from_numpy],
}


@pytest.mark.parametrize(
    "name,fn", [(n, f) for n, fns in CORRECT.items() for f in fns], ids=lambda v: getattr(v, "__name__", v)
)
def test_correct_variants_pass(name, fn):
    assert_check_passes(name, fn)


# ---- wrong implementations ----------------------------------------------------------------------


def _clip(norm_fn, mode="global"):
    def wrong(grads, max_norm):
        arrays = list(grads.values()) if isinstance(grads, dict) else list(grads)
        norm = norm_fn(arrays)
        if mode == "each":
            out = [g * min(1, max_norm / np.linalg.norm(g)) for g in arrays]
        elif mode == "clip":
            out = [np.clip(g, -max_norm, max_norm) for g in arrays]
        elif mode == "always":
            out = [g * max_norm / norm for g in arrays]
        else:
            out = [g * min(1, max_norm / norm) for g in arrays]
        return (dict(zip(grads, out, strict=True)) if isinstance(grads, dict) else out), norm

    return wrong


def _norm(arrays):
    return np.sqrt(sum((g**2).sum() for g in arrays))


def _lstm_step(order="ifog", out_tanh=True, forget=True):
    def wrong(x, prev_h, prev_c, Wx, Wh, b):
        a = dict(zip(order, np.split(x @ Wx + prev_h @ Wh + b, 4, axis=1), strict=True))
        i, f, o, g = _sig(a["i"]), _sig(a["f"]), _sig(a["o"]), np.tanh(a["g"])
        c = (f if forget else 1) * prev_c + i * g
        return o * (np.tanh(c) if out_tanh else c), c, None

    return wrong


WRONG = {
    "clip_grad_norm": {
        "no sqrt": _clip(lambda a: sum((g**2).sum() for g in a)),
        "per array": _clip(_norm, "each"),
        "element-wise": _clip(_norm, "clip"),
        "always rescales": _clip(_norm, "always"),
        "max-abs norm": _clip(lambda a: max(np.abs(g).max() for g in a)),
        "returns clipped only": lambda g, m: gates.clip_grad_norm(g, m)[0],
        "in place": lambda g, m: (g.__setitem__(0, g[0] * 0) if isinstance(g, list) else None,
                                  gates.clip_grad_norm(g, m))[1],
    },
    "lstm_step_forward": {
        "torch gate order": _lstm_step("ifgo"),
        "gates ofig": _lstm_step("ofig"),
        "no tanh on cell": _lstm_step(out_tanh=False),
        "no forget gate": _lstm_step(forget=False),
        "h without o": lambda x, h, c, Wx, Wh, b: (np.tanh(gates.lstm_step_forward(x, h, c, Wx, Wh, b)[1]),
                                                   *gates.lstm_step_forward(x, h, c, Wx, Wh, b)[1:]),
        "returns two": lambda *a: gates.lstm_step_forward(*a)[:2],
    },
    "lstm_step_backward": {
        "dc ignores dnext_h": lambda dh, dc, cache: gates.lstm_step_backward(0 * dh, dc, cache)[:2] + (
            gates.lstm_step_backward(0 * dh, dc, cache)[2],) + gates.lstm_step_backward(dh, dc, cache)[3:],
        "dprev_c unscaled": lambda dh, dc, cache: (lambda r: (*r[:2], r[2] / cache[5][:, cache[1].shape[1]:
                                                                                   2 * cache[1].shape[1]], *r[3:]))(
            gates.lstm_step_backward(dh, dc, cache)),
        "db per example": lambda dh, dc, cache: (lambda r: (*r[:5], r[5] * 0 + r[5] / dh.shape[0]))(
            gates.lstm_step_backward(dh, dc, cache)),
    },
    "lstm_forward": {
        "cell reset": lambda x, h0, Wx, Wh, b: (np.stack(_reset_cell(x, h0, Wx, Wh, b), 1), None),
        "returns cell states": lambda x, h0, Wx, Wh, b: (gates.lstm_forward(x, h0, Wx, Wh, b)[1]["c"], None),
        "sigmoid candidate": lambda x, h0, Wx, Wh, b: (_seq(_lstm_step("ifog"), x, h0, Wx, Wh, b, act_g=True), None),
    },
    "lstm_backward": {
        "no cell gradient carried": lambda dh, cache: _backward_no_dc(dh, cache),
        "dh0 zero": lambda dh, cache: (lambda r: (r[0], 0 * r[1], *r[2:]))(gates.lstm_backward(dh, cache)),
        "weights averaged": lambda dh, cache: (lambda r: (*r[:2], *(g / dh.shape[1] for g in r[2:])))(
            gates.lstm_backward(dh, cache)),
    },
    "gru_step_forward": {
        "torch reset": lambda x, h, Wx, Wh, b: (_gru(x, h, Wx, Wh, b, after=True), None),
        "z swapped": lambda x, h, Wx, Wh, b: (_gru(x, h, Wx, Wh, b, swap=True), None),
        "no reset": lambda x, h, Wx, Wh, b: (_gru(x, h, Wx, Wh, b, reset=False), None),
        "order r z n": lambda x, h, Wx, Wh, b: (_gru(x, h, Wx, Wh, b, rz=True), None),
    },
    "lstm_to_torch": {
        "not transposed": lambda Wx, Wh, b: {"weight_ih_l0": torch.tensor(Wx), "weight_hh_l0": torch.tensor(Wh),
                                             "bias_ih_l0": torch.tensor(b), "bias_hh_l0": torch.tensor(0 * b)},
        "our gate order": lambda Wx, Wh, b: {"weight_ih_l0": torch.tensor(Wx.T), "weight_hh_l0": torch.tensor(Wh.T),
                                             "bias_ih_l0": torch.tensor(b), "bias_hh_l0": torch.tensor(0 * b)},
        "bias twice": lambda Wx, Wh, b: {**mapping_from_numpy(Wx, Wh, b),
                                         "bias_hh_l0": mapping_from_numpy(Wx, Wh, b)["bias_ih_l0"]},
        "missing biases": lambda Wx, Wh, b: {k: v for k, v in mapping_from_numpy(Wx, Wh, b).items() if "weight" in k},
        "a list": lambda Wx, Wh, b: list(mapping_numpy_arrays(Wx, Wh, b).values()),
        "numpy arrays": mapping_numpy_arrays,
        "float32 tensors": lambda Wx, Wh, b: {k: v.float() for k, v in mapping_from_numpy(Wx, Wh, b).items()},
    },
}


def _reset_cell(x, h0, Wx, Wh, b):
    h, out = h0, []
    for t in range(x.shape[1]):
        h, _, _ = gates.lstm_step_forward(x[:, t], h, 0 * h0, Wx, Wh, b)
        out.append(h)
    return out


def _seq(step, x, h0, Wx, Wh, b, act_g=False):
    h, c, out = h0, np.zeros_like(h0), []
    for t in range(x.shape[1]):
        a = np.split(x[:, t] @ Wx + h @ Wh + b, 4, axis=1)
        i, f, o = (_sig(v) for v in a[:3])
        g = _sig(a[3]) if act_g else np.tanh(a[3])
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, 1)


def _backward_no_dc(dh, cache):
    x, h0, Wx, Wh, h, c, g = (cache[k] for k in ("x", "h0", "Wx", "Wh", "h", "c", "gates"))
    N, T, H = dh.shape
    dx, acc, dnh = np.zeros(x.shape), None, np.zeros((N, H))
    for t in range(T - 1, -1, -1):
        step = (x[:, t], h[:, t - 1] if t else h0, c[:, t - 1] if t else np.zeros((N, H)), Wx, Wh, g[:, t], c[:, t])
        dx[:, t], dnh, _, *d = gates.lstm_step_backward(dh[:, t] + dnh, np.zeros((N, H)), step)
        acc = d if acc is None else [a + v for a, v in zip(acc, d, strict=True)]
    return (dx, dnh, *acc)


def _gru(x, h, Wx, Wh, b, after=False, swap=False, reset=True, rz=False):
    H = h.shape[1]
    z = _sig(x @ Wx[:, :H] + h @ Wh[:, :H] + b[:H])
    r = _sig(x @ Wx[:, H:2 * H] + h @ Wh[:, H:2 * H] + b[H:2 * H])
    if rz:
        z, r = r, z
    r = r if reset else 1.0
    hn = r * (h @ Wh[:, 2 * H:]) if after else (r * h) @ Wh[:, 2 * H:]
    n = np.tanh(x @ Wx[:, 2 * H:] + hn + b[2 * H:])
    return (1 - z) * h + z * n if swap else z * h + (1 - z) * n


@pytest.mark.parametrize("name,label", [(n, k) for n, d in WRONG.items() for k in d])
def test_wrong_implementations_fail(name, label):
    assert_check_fails(name, WRONG[name][label], label)


@pytest.mark.parametrize("name,label,needle", [
    ("clip_grad_norm", "no sqrt", "square root"),
    ("clip_grad_norm", "per array", "global norm"),
    ("clip_grad_norm", "element-wise", "element-wise"),
    ("lstm_step_forward", "torch gate order", "i, f, o, g"),
    ("gru_step_forward", "torch reset", "before the product"),
    ("lstm_backward", "no cell gradient carried", "highway"),
    ("lstm_to_torch", "our gate order", "i, f, g, o"),
    ("lstm_to_torch", "not transposed", "transposed"),
    ("lstm_to_torch", "bias twice", "two biases"),
])
def test_hints_name_the_mistake(name, label, needle):
    result = check.run(name, WRONG[name][label])
    assert needle in result.message, result.message


def test_every_exercise_has_correct_and_wrong_cases():
    assert set(CORRECT) == set(WRONG) == {ex.name for ex in check.exercises() if ex.notebook == "03"}

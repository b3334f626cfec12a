"""Checks a learner can trust: every backward pass judged with its own forward's cache, no verdict left to
the luck of a random draw, no crash, no unnoticed change to an input, and messages that locate the bug."""

import math
import textwrap

import numpy as np
import pytest
import torch

from utils import charrnn, check, decoding, gates, layers

from .check_cases import REPEATS, assert_check_fails, assert_check_passes
from .test_check_attention import backward_dict_cache, forward_dict_cache

# ---- backward passes paired with forwards whose caches are laid out as CS231n learners lay them out --------


def step_forward_6(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, b, next_h)


def step_backward_6(dnext_h, cache):
    x, prev_h, Wx, Wh, b, next_h = cache
    da = dnext_h * (1 - next_h**2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def step_forward_dict(x, prev_h, Wx, Wh, b):
    a = x @ Wx + prev_h @ Wh + b
    return np.tanh(a), {"a": a, "x": x, "h": prev_h, "W": (Wx, Wh)}


def step_backward_dict(dnext_h, cache):
    da = dnext_h / np.cosh(cache["a"]) ** 2
    Wx, Wh = cache["W"]
    return da @ Wx.T, da @ Wh.T, cache["x"].T @ da, cache["h"].T @ da, da.sum(axis=0)


def seq_forward_steps(x, h0, Wx, Wh, b):
    """A list of step caches in the CS231n order (x, prev_h, Wx, Wh, b, next_h)."""
    h, caches, out = h0, [], []
    for t in range(x.shape[1]):
        h, cache = step_forward_6(x[:, t], h, Wx, Wh, b)
        caches.append(cache)
        out.append(h)
    return np.stack(out, axis=1), caches


def seq_backward_steps(dh, caches):
    N, T, H = dh.shape
    dx = np.zeros((N, T, caches[0][0].shape[1]))
    dWx, dWh, db, dprev = 0, 0, 0, np.zeros((N, H))
    for t in reversed(range(T)):
        dx[:, t], dprev, a, b, c = step_backward_6(dh[:, t] + dprev, caches[t])
        dWx, dWh, db = dWx + a, dWh + b, db + c
    return dx, dprev, dWx, dWh, db


def lstm_step_forward_dict(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = (1 / (1 + np.exp(-a[:, k * H:(k + 1) * H])) for k in range(3))
    g = np.tanh(a[:, 3 * H:])
    c = f * prev_c + i * g
    h = o * np.tanh(c)
    return h, c, {"x": x, "prev_h": prev_h, "prev_c": prev_c, "W": (Wx, Wh), "i": i, "f": f, "o": o, "g": g, "c": c}


def lstm_step_backward_dict(dnext_h, dnext_c, k):
    t = np.tanh(k["c"])
    dc = dnext_c + dnext_h * k["o"] * (1 - t**2)
    i, f, o, g = k["i"], k["f"], k["o"], k["g"]
    da = np.hstack([dc * g * i * (1 - i), dc * k["prev_c"] * f * (1 - f), dnext_h * t * o * (1 - o),
                    dc * i * (1 - g**2)])
    Wx, Wh = k["W"]
    return da @ Wx.T, da @ Wh.T, dc * f, k["x"].T @ da, k["prev_h"].T @ da, da.sum(axis=0)


def lstm_forward_list(x, h0, Wx, Wh, b):
    h, c, caches, out = h0, np.zeros_like(h0), [], []
    for t in range(x.shape[1]):
        h, c, cache = lstm_step_forward_dict(x[:, t], h, c, Wx, Wh, b)
        caches.append(cache)
        out.append(h)
    return np.stack(out, axis=1), caches


def lstm_backward_list(dh, caches):
    N, T, H = dh.shape
    dx, total = np.zeros((N, T, caches[0]["x"].shape[1])), None
    dnh, dnc = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        dx[:, t], dnh, dnc, *grads = lstm_step_backward_dict(dh[:, t] + dnh, dnc, caches[t])
        total = grads if total is None else [a + g for a, g in zip(total, grads, strict=True)]
    return (dx, dnh, *total)


def embed_forward_cs231n(x, W):
    return W[x], (x, W)


def embed_backward_cs231n(dout, cache):
    x, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    return dW


def affine_forward_3(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward_3(dout, cache):
    x, w, b = cache
    N, T, D = x.shape
    return dout @ w.T, x.reshape(N * T, D).T @ dout.reshape(N * T, -1), dout.sum(axis=(0, 1))


def fusion_forward_dict(q, v, Wq, Wv, b, mode):
    a, c = q @ Wq, v @ Wv
    cache = {"inputs": (q, v, Wq, Wv), "a": a, "c": c, "product": mode != "concat"}
    return (a + c if mode == "concat" else a * c) + b, cache


def fusion_backward_dict(dz, cache):
    q, v, Wq, Wv = cache["inputs"]
    da, dc = (dz * cache["c"], dz * cache["a"]) if cache["product"] else (dz, dz)
    return da @ Wq.T, dc @ Wv.T, q.T @ da, v.T @ dc, dz.sum(axis=0)


PAIRS = [
    ("rnn_step_backward", step_forward_6, step_backward_6),
    ("rnn_step_backward", step_forward_dict, step_backward_dict),
    ("rnn_backward", seq_forward_steps, seq_backward_steps),
    ("lstm_step_backward", lstm_step_forward_dict, lstm_step_backward_dict),
    ("lstm_backward", lstm_forward_list, lstm_backward_list),
    ("word_embedding_backward", embed_forward_cs231n, embed_backward_cs231n),
    ("temporal_affine_backward", affine_forward_3, affine_backward_3),
    ("attention_backward", forward_dict_cache, backward_dict_cache),
    ("fusion_backward", fusion_forward_dict, fusion_backward_dict),
]


@pytest.mark.parametrize("name,forward,backward", PAIRS, ids=lambda v: getattr(v, "__name__", v))
def test_a_correct_pair_with_its_own_cache_passes(name, forward, backward):
    assert_check_passes(name, backward, forward=forward)


def test_every_backward_exercise_has_a_pair_with_a_cache_of_its_own():
    backward = {ex.name for ex in check.exercises() if ex.is_backward}
    assert {name for name, _, _ in PAIRS} == backward


@pytest.mark.parametrize("name,forward,backward", PAIRS, ids=lambda v: getattr(v, "__name__", v))
def test_a_backward_given_another_forwards_cache_is_told_about_the_cache(name, forward, backward):
    result = check.run(name, backward)  # paired with the reference forward, whose cache it cannot read
    assert not result.passed
    assert "The cache it was given, from the course's forward" in result.message, result.message


def test_a_wrong_forward_makes_its_pair_fail_with_a_message_about_the_forward():
    def drifting(x, prev_h, Wx, Wh, b):
        next_h, cache = step_forward_6(x, prev_h, Wx, Wh, b)
        return next_h * 1.01, cache

    result = check.run("rnn_step_backward", step_backward_6, forward=drifting)
    assert not result.passed and "forward pass `drifting`" in result.message, result.message


def test_check_returns_both_of_the_learners_functions_or_both_references(capsys):
    assert check("rnn_step_backward", step_backward_6, forward=step_forward_6) == (step_forward_6, step_backward_6)
    wrong = lambda dnext_h, cache: step_backward_6(2 * dnext_h, cache)  # noqa: E731
    fallback = check("rnn_step_backward", wrong, forward=step_forward_6)
    assert fallback == (layers.rnn_step_forward, layers.rnn_step_backward)
    assert "reference pair" in capsys.readouterr().out


def test_check_of_a_backward_without_its_forward_says_how_to_call_it():
    with pytest.raises(TypeError, match=r"lstm_forward, lstm_backward = check\(\"lstm_backward\""):
        check("lstm_backward", gates.lstm_backward)


# ---- wrong code that used to pass ------------------------------------------------------------------------

def clip_in_place(grads, max_norm):
    arrays = list(grads.values()) if isinstance(grads, dict) else grads
    norm = float(np.sqrt(sum(np.sum(g**2) for g in arrays)))
    for g in arrays:
        g *= min(1.0, max_norm / norm)
    return grads, norm


def test_clipping_the_learners_arrays_in_place_fails():
    assert_check_fails("clip_grad_norm", clip_in_place, "clip in place")
    assert "modified its input `grads[" in check.run("clip_grad_norm", clip_in_place).message


def test_lstm_weights_as_numpy_arrays_fail_before_load_state_dict_does():
    def as_numpy(Wx, Wh, b):
        return {k: v.numpy() for k, v in check.get("lstm_to_torch").reference(Wx, Wh, b).items()}

    assert_check_fails("lstm_to_torch", as_numpy, "numpy arrays")
    assert "load_state_dict needs torch tensors" in check.run("lstm_to_torch", as_numpy).message


# ---- no lottery -------------------------------------------------------------------------------------------

def tbptt_floor_division(loss_fn, params, data, T, step, h0):
    losses, h = [], h0
    for k in range(data.shape[1] // T):
        loss, grads, h = loss_fn(params, data[:, k * T:k * T + T], data[:, k * T + 1:k * T + T + 1], h)
        step(grads)
        losses.append(loss)
    return losses, h


def bleu_ties_to_longer(candidates, references, max_n=4):
    shorter = decoding.bleu(candidates, references, max_n)
    c = sum(map(len, candidates))
    pairs = list(zip(candidates, references, strict=True))
    r_short = sum(min((abs(len(r) - len(x)), len(r)) for r in rs)[1] for x, rs in pairs)
    r_long = -sum(min((abs(len(r) - len(x)), -len(r)) for r in rs)[1] for x, rs in pairs)
    if shorter == 0:
        return 0.0
    return shorter / min(1.0, math.exp(1 - r_short / c)) * min(1.0, math.exp(1 - r_long / c))


def bleu_uncapped(candidates, references, max_n=4):
    score = decoding.bleu(candidates, references, max_n)
    c = sum(map(len, candidates))
    pairs = zip(candidates, references, strict=True)
    r = sum(min((abs(len(ref) - len(x)), len(ref)) for ref in rs)[1] for x, rs in pairs)
    return score / min(1.0, math.exp(1 - r / c)) * math.exp(1 - r / c) if score else 0.0


def bleu_math_log(candidates, references, max_n=4):
    """Correct except that it takes math.log of every precision, which raises when one is 0."""
    from collections import Counter

    matched, total, c, r = [0] * max_n, [0] * max_n, 0, 0
    for cand, refs in zip(candidates, references, strict=True):
        c += len(cand)
        r += min((abs(len(x) - len(cand)), len(x)) for x in refs)[1]
        for n in range(1, max_n + 1):
            grams = Counter(tuple(cand[i:i + n]) for i in range(len(cand) - n + 1))
            best = Counter()
            for ref in refs:
                best |= Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
            matched[n - 1] += sum(min(k, best[g]) for g, k in grams.items())
            total[n - 1] += sum(grams.values())
    log_p = sum(math.log(m / t) for m, t in zip(matched, total, strict=True))  # raises when some m is 0
    return min(1.0, math.exp(1 - r / c)) * math.exp(log_p / max_n)


@pytest.mark.parametrize("name,fn", [
    ("truncated_bptt", tbptt_floor_division),
    ("bleu", bleu_ties_to_longer),
    ("bleu", bleu_uncapped),
    ("bleu", bleu_math_log),
], ids=["tbptt L // T chunks", "BLEU ties to the longer reference", "BLEU without min(1, .)", "BLEU log(0)"])
def test_mistakes_that_only_some_draws_exposed_fail_every_time(name, fn):
    assert_check_fails(name, fn, fn.__name__)


# ---- never crash ------------------------------------------------------------------------------------------

def test_a_list_returned_for_a_dict_of_gradients_is_a_failure_not_a_crash(capsys):
    def as_list(grads, max_norm):
        clipped, norm = gates.clip_grad_norm(grads, max_norm)
        return list(clipped.values()) if isinstance(clipped, dict) else clipped, norm

    result = check.run("clip_grad_norm", as_list)
    assert result.status == "failed" and "return a dict with the same keys" in result.message
    assert check("clip_grad_norm", as_list) is gates.clip_grad_norm


# ---- messages that locate the bug ------------------------------------------------------------------------

def lstm_step_backward_no_output_tanh(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, g4, next_c = cache
    i, f, o, g = np.split(g4, 4, axis=1)
    t = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - t**2)
    da = np.hstack([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * next_c * o * (1 - o),
                    dc * i * (1 - g**2)])
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def test_several_outputs_say_which_are_right_and_which_wrong_and_the_worst_element():
    result = check.run("lstm_step_backward", lstm_step_backward_no_output_tanh)
    msg = result.message
    assert "`dx` is wrong" in msg and "`db` is wrong" in msg and "Right: `dprev_c`." in msg
    assert "the largest error at index" in msg and "Errors: relative error" in msg
    assert "tanh of the cell" in result.hint


def test_the_largest_error_is_reported_with_its_own_values():
    def off_at_one_place(x, h0, Wx, Wh, b):
        h, cache = layers.rnn_forward(x, h0, Wx, Wh, b)
        h = h.copy()
        h[0, 0, 0] *= 1.01  # the first wrong value: off by 1 %
        h[-1, -1, -1] = -h[-1, -1, -1] - 1  # the worst one
        return h, cache

    msg = check.run("rnn_forward", off_at_one_place).message
    assert "the largest error at index (" in msg and "the first wrong value is at index (0, 0, 0)" in msg


def test_float32_results_that_print_alike_name_the_dtype():
    def float32(x, prev_h, Wx, Wh, b):
        return np.tanh(x @ Wx + prev_h @ Wh + b).astype(np.float32), None

    msg = check.run("rnn_step_forward", float32).message
    assert "`next_h` is float32, but the inputs are float64" in msg


def test_float32_tensors_for_the_lstm_weights_name_the_dtype():
    def float32(Wx, Wh, b):
        return {k: v.float() for k, v in check.get("lstm_to_torch").reference(Wx, Wh, b).items()}

    assert "float32 tensor; the weights are float64" in check.run("lstm_to_torch", float32).message


@pytest.mark.parametrize("fn,needle", [
    (lambda dout, cache: (lambda r: (*r[:4], r[4] / dout.shape[0]))(layers.rnn_step_backward(dout, cache)),
     "db is a mean over the batch"),
    (lambda x, prev_h, Wx, Wh, b: (np.tanh(x @ Wx) + prev_h @ Wh + b, None), "misplaced parenthesis"),
], ids=["db as a mean", "a misplaced parenthesis"])
def test_common_mistakes_that_used_to_get_no_hint_get_one(fn, needle):
    name = "rnn_step_backward" if fn.__code__.co_varnames[0] == "dout" else "rnn_step_forward"
    assert needle in check.run(name, fn).hint


def test_softmax_over_time_and_a_backward_walk_forwards_in_time_are_named():
    def over_time(x, y, mask):
        p = np.exp(x - x.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        picked = np.take_along_axis(p, y[:, :, None], axis=2)[:, :, 0]
        dx = p.copy()
        np.put_along_axis(dx, y[:, :, None], picked[:, :, None] - 1, axis=2)
        m = np.asarray(mask, dtype=float)
        return -(np.log(picked) * m).sum() / x.shape[0], dx * m[:, :, None] / x.shape[0]

    def forwards(dh, caches):
        N, T, H = dh.shape
        dx, sums, dprev = np.zeros((N, T, caches[0][0].shape[1])), [0, 0, 0], np.zeros((N, H))
        for t in range(T):
            dx[:, t], dprev, *g = layers.rnn_step_backward(dh[:, t] + dprev, caches[t])
            sums = [s + v for s, v in zip(sums, g, strict=True)]
        return (dx, dprev, *sums)

    assert "over the wrong axis" in check.run("temporal_softmax_loss", over_time).hint
    assert "walks forwards in time" in check.run("rnn_backward", forwards).hint


def beam_one_step_short(step, state, start, end, beam_width, max_len):
    return decoding.beam_search(step, state, start, end, beam_width, max_len - 1) if max_len > 1 else []


def beam_never_narrows(step, state, start, end, beam_width, max_len):
    beam, scores, finished = [[]], np.zeros(1), []
    for _ in range(max_len):
        log_probs, new_state = step(np.array([b[-1] if b else start for b in beam]), state)
        total = scores[:, None] + log_probs
        rows, words = np.unravel_index(np.argsort(-total, axis=None, kind="stable")[:beam_width], total.shape)
        keep = []
        for r, w in zip(rows, words, strict=True):
            (finished if w == end else keep).append((beam[r] + [int(w)], float(total[r, w]), r))
        if not keep:
            break
        beam, scores = [k[0] for k in keep], np.array([k[1] for k in keep])
        state = new_state[[k[2] for k in keep]]
    else:
        finished += [(b, s, 0) for b, s in zip(beam, scores, strict=True)]
    return sorted([(w, s) for w, s, _ in finished], key=lambda h: -h[1])[:beam_width]


@pytest.mark.parametrize("fn,needle", [(beam_one_step_short, "one step early"),
                                       (beam_never_narrows, "one narrower for each")])
def test_beam_search_hints_match_the_mistake(fn, needle):
    assert_check_fails("beam_search", fn, fn.__name__)
    hints = {check.run("beam_search", fn).hint for _ in range(5)}
    assert all(needle in h for h in hints), hints


@pytest.mark.parametrize("calls", ["never", "once at the end", "twice per chunk"])
def test_calling_step_the_wrong_number_of_times_is_named_as_such(calls):
    def loop(loss_fn, params, data, T, step, h0):
        losses, h = [], h0
        for s in range(0, data.shape[1] - T, T):
            loss, grads, h = loss_fn(params, data[:, s:s + T], data[:, s + 1:s + T + 1], h)
            if calls == "twice per chunk":
                step(grads)
                step(grads)
            losses.append(loss)
        if calls == "once at the end":
            step(grads)
        return losses, h

    result = check.run("truncated_bptt", loop)
    assert not result.passed and "step(grads)" in result.message and "once per chunk" in result.hint
    assert "wrong hidden state" not in result.message


def test_an_exception_inside_numpy_points_at_the_learners_line(tmp_path, monkeypatch):
    module = tmp_path / "sampler_code.py"
    module.write_text(textwrap.dedent("""
        import numpy as np

        def temperature_sample(scores, temperature, rng):
            p = np.exp(scores / temperature)
            return np.array([rng.choice(len(row), p=row) for row in p])  # not normalised
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    from sampler_code import temperature_sample

    result = check.run("temperature_sample", temperature_sample)
    assert result.status == "error" and "line 6 of your code" in result.message, result.message


def test_sampling_every_row_from_the_first_rows_probabilities_is_named():
    def first_row(scores, temperature, rng):
        p = layers.softmax(scores[:1] / temperature)[0]
        return rng.choice(len(p), size=len(scores), p=p)

    assert "not all from row 0's" in check.run("temperature_sample", first_row).hint


def test_plurals_and_seeds():
    assert "its one test passed" in check.run("lstm_to_torch", check.get("lstm_to_torch").reference).message
    assert "all 4 tests passed" in check.run("rnn_forward", layers.rnn_forward).message
    wrong = check.run("lstm_to_torch", lambda Wx, Wh, b: None)
    assert "(0 of 1 test passed)" in wrong.message


def test_a_failure_replays_exactly_from_its_seed():
    def wrong(x, h0, Wx, Wh, b):
        h, cache = layers.rnn_forward(x, h0, Wx, Wh, b)
        return h + 1e-3 * x.sum(), cache

    first = check.run("rnn_forward", wrong)
    again = check.run("rnn_forward", wrong, seed=first.seed)
    assert f"seed={first.seed}" in first.message and again.message == first.message
    assert check.run("rnn_forward", wrong).seed != first.seed


def test_the_numpy_language_model_takes_the_pair_it_is_given():
    params = charrnn.init_params(5, 4, np.random.default_rng(0))
    x = np.random.default_rng(1).integers(0, 5, (2, 6))
    ref = charrnn.char_rnn_loss(params, x, x, np.zeros((2, 4)))
    mine = charrnn.char_rnn_loss(params, x, x, np.zeros((2, 4)), rnn_forward=seq_forward_steps,
                                 rnn_backward=seq_backward_steps)
    assert np.isclose(ref[0], mine[0]) and all(np.allclose(ref[1][k], mine[1][k]) for k in ref[1])


def test_repeats_are_at_least_twenty():
    assert REPEATS >= 20


def test_torch_inputs_are_compared_after_the_call():
    from utils.check.battery import changed

    before = {"w": torch.zeros(3)}
    after = {"w": torch.ones(3)}
    assert changed(before, after, "x") == "x['w']"


# ---- found by a learner working from the lecture text ----------------------------------------------------

def _bleu_r(rule):
    """A BLEU whose reference length r follows `rule(candidate, references)`; otherwise the reference's."""
    from collections import Counter

    def bleu(candidates, references, max_n=4):
        matched, total, c, r = [0] * max_n, [0] * max_n, 0, 0
        for cand, refs in zip(candidates, references, strict=True):
            c += len(cand)
            r += rule(cand, refs)
            for n in range(1, max_n + 1):
                grams = Counter(tuple(cand[i:i + n]) for i in range(len(cand) - n + 1))
                best = Counter()
                for ref in refs:
                    best |= Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
                matched[n - 1] += sum(min(k, best[g]) for g, k in grams.items())
                total[n - 1] += sum(grams.values())
        if c == 0 or min(matched) == 0:
            return 0.0
        return min(1.0, math.exp(1 - r / c)) * math.exp(sum(math.log(m / t) for m, t in zip(matched, total,
                                                                                             strict=True)) / max_n)

    return bleu


def bleu_clip_by_sum(candidates, references, max_n=4):
    from collections import Counter

    matched, total, c, r = [0] * max_n, [0] * max_n, 0, 0
    for cand, refs in zip(candidates, references, strict=True):
        c += len(cand)
        r += min((abs(len(x) - len(cand)), len(x)) for x in refs)[1]
        for n in range(1, max_n + 1):
            grams = Counter(tuple(cand[i:i + n]) for i in range(len(cand) - n + 1))
            summed = sum((Counter(tuple(x[i:i + n]) for i in range(len(x) - n + 1)) for x in refs), Counter())
            matched[n - 1] += sum(min(k, summed[g]) for g, k in grams.items())
            total[n - 1] += sum(grams.values())
    if min(matched) == 0:
        return 0.0
    return min(1.0, math.exp(1 - r / c)) * math.exp(sum(math.log(m / t) for m, t in zip(matched, total,
                                                                                         strict=True)) / max_n)


@pytest.mark.parametrize("fn", [
    _bleu_r(lambda cand, refs: len(refs[0])),
    _bleu_r(lambda cand, refs: min(refs, key=lambda x: abs(len(x) - len(cand))).__len__()),  # first listed on a tie
    bleu_clip_by_sum,
    lambda candidates, references, max_n=4: decoding.bleu(candidates, references, 4),  # ignores max_n
], ids=["r from the first reference", "a tie to the first listed", "clip by the sum over references",
        "max_n ignored"])
def test_bleu_mistakes_that_passed_on_some_draws_now_fail_every_time(fn):
    assert_check_fails("bleu", fn, "a wrong BLEU")


@pytest.mark.parametrize("name,fn,needle", [
    ("rnn_step_forward", lambda x, h, Wx, Wh, b: (np.tanh(x @ Wx + h @ Wh + b).tolist(), None), "is a list"),
    ("rnn_step_forward", lambda x, h, Wx, Wh, b: (torch.tensor(np.tanh(x @ Wx + h @ Wh + b)), None),
     "torch tensor"),
    ("rnn_step_forward", lambda x, h, Wx, Wh, b: (np.tanh(x @ Wx + h @ Wh + b) + 0j, None), "complex"),
    ("temperature_sample", lambda s, t, rng: layers.temperature_sample(s, t, rng).tolist(), "numpy array"),
    ("rnn_sample", lambda *a: layers.rnn_sample(*a).tolist(), "numpy array"),
    ("clip_grad_norm", lambda g, m: (lambda c, n: (tuple(c) if isinstance(c, list) else c, n))(
        *gates.clip_grad_norm(g, m)), "return a list of 3"),
    ("beam_search", lambda *a: [(np.array(w), s) for w, s in decoding.beam_search(*a)], "a list of ints"),
], ids=["list", "tensor", "complex", "sample list", "rnn_sample list", "tuple for a list", "beam words array"])
def test_results_in_the_wrong_container_fail_before_a_later_cell_breaks(name, fn, needle):
    result = check.run(name, fn)
    assert not result.passed and needle in result.message, result.message


@pytest.mark.parametrize("name,fn,needle", [
    ("rnn_step_backward", lambda d, cache: (lambda r: (*r[:4], r[4] * 0 + (d * (1 - cache[4] ** 2))))(
        layers.rnn_step_backward(d, cache)), "extra leading axes"),
    ("temporal_softmax_loss", lambda x, y, m: layers.temporal_softmax_loss(x, y, m)[::-1], "in the order (loss, dx)"),
    ("temporal_affine_backward", lambda d, cache: (lambda r: (r[0], r[1].T, r[2]))(
        layers.temporal_affine_backward(d, cache)), "transposed"),
    ("temporal_softmax_loss", lambda x, y, m: (np.float32(layers.temporal_softmax_loss(x, y, m)[0]),
                                               layers.temporal_softmax_loss(x, y, m)[1]), "float32"),
], ids=["db not summed", "outputs swapped", "dw transposed", "float32 loss"])
def test_shape_and_dtype_mistakes_get_a_hint_that_names_them(name, fn, needle):
    result = check.run(name, fn)
    assert needle in result.message + result.hint, result.message


def test_a_generator_is_named_as_such():
    def lazy(loss_fn, params, data, T, step, h0):
        yield from ()

    assert "returned a generator" in check.run("truncated_bptt", lazy).message


def test_an_endless_loop_is_stopped_in_a_learners_session(monkeypatch):
    from utils.check import core

    monkeypatch.setattr(core, "TIME_LIMIT", 1)

    def endless(x, h0, Wx, Wh, b):
        while True:
            pass

    result = check.run("rnn_forward", endless)
    assert result.status == "error" and "ran for more than 1 s" in result.hint


def test_a_seed_that_is_not_an_integer_is_explained():
    with pytest.raises(TypeError, match="seed must be the non-negative integer"):
        check.run("rnn_forward", layers.rnn_forward, seed="abc")


def test_the_summary_pairs_a_backward_with_the_forward_its_check_cell_names(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from utils.check import progress

    forward = textwrap.dedent("""
        def my_step_forward(x, prev_h, Wx, Wh, b):
            next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
            return next_h, {"x": x, "prev_h": prev_h, "W": (Wx, Wh), "next_h": next_h}
    """)
    backward = textwrap.dedent("""
        def rnn_step_backward(dnext_h, cache):
            da = dnext_h * (1 - cache["next_h"] ** 2)
            Wx, Wh = cache["W"]
            return da @ Wx.T, da @ Wh.T, cache["x"].T @ da, cache["prev_h"].T @ da, da.sum(axis=0)
    """)
    nb = new_notebook(cells=[new_code_cell("import numpy as np\nfrom utils import check"), new_code_cell(forward),
                             new_code_cell(backward), new_code_cell(
        'my_step_forward, rnn_step_backward = check("rnn_step_backward", rnn_step_backward, forward=my_step_forward)')])
    nb.metadata["course"] = {"notebook": "02"}
    path = tmp_path / "02_mine.ipynb"
    nbformat.write(nb, path)
    assert progress.forward_expressions(nbformat.read(path, as_version=4)) == {"rnn_step_backward": "my_step_forward"}
    rows, problems = progress.summarize([path])
    assert {r["exercise"]: r["status"] for r in rows}["rnn_step_backward"] == "passed", problems

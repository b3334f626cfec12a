"""The checks of notebook 04 must pass every correct implementation and fail every wrong one."""

import math
from collections import Counter

import numpy as np
import pytest

from utils import check, decoding, layers
from utils.check import captioning as checks

from .check_cases import assert_check_fails, assert_check_passes

# ---- correct variants ---------------------------------------------------------------------------


def embed_one_hot(x, W):
    return np.eye(W.shape[0])[x] @ W, (x, W)


def embed_loop(x, W):
    out = np.zeros(x.shape + (W.shape[1],), dtype=W.dtype)
    for n in range(x.shape[0]):
        for t in range(x.shape[1]):
            out[n, t] = W[x[n, t]]
    return out, {"x": x, "V": W.shape[0]}


def embed_backward_loop(dout, cache):
    x, shape = cache
    dW = np.zeros(shape)
    for n, t in np.ndindex(x.shape):
        dW[x[n, t]] += dout[n, t]
    return dW


def embed_backward_one_hot(dout, cache):
    x, (V, D) = cache
    return np.eye(V)[x].reshape(-1, V).T @ dout.reshape(-1, D)


def affine_einsum(x, w, b):
    return np.einsum("ntd,dm->ntm", x, w) + b, (x, w, b)


def affine_backward_einsum(dout, cache):
    x, w = cache
    return np.einsum("ntm,dm->ntd", dout, w), np.einsum("ntd,ntm->dm", x, dout), dout.sum(axis=(0, 1))


def beam_by_sorting(step, state, start, end, beam_width, max_len):
    """Candidates as (score, row, word) tuples sorted in Python instead of a flat argsort."""
    hyps, done = [([], 0.0)], []
    for _ in range(max_len):
        log_probs, new_state = step(np.array([h[0][-1] if h[0] else start for h in hyps]), state)
        V = log_probs.shape[1]
        cands = sorted(((s + log_probs[r, w], r, w) for r, (_, s) in enumerate(hyps) for w in range(V)),
                       key=lambda c: (-c[0], c[1], c[2]))[:beam_width - len(done)]
        keep = []
        for score, r, w in cands:
            (done.append((hyps[r][0] + [w], score)) if w == end else keep.append((hyps[r][0] + [w], score, r)))
        if not keep:
            break
        hyps = [(words, score) for words, score, _ in keep]
        state = new_state[[r for *_, r in keep]]
    else:
        done += hyps
    return sorted(done, key=lambda h: -h[1])


def bleu_by_formula(candidates, references, max_n=4):
    """BLEU written with per-order dicts and logs summed explicitly."""
    def grams(s, n):
        return Counter(tuple(s[i:i + n]) for i in range(len(s) - n + 1))

    hits, count = {n: 0 for n in range(1, max_n + 1)}, {n: 0 for n in range(1, max_n + 1)}
    c = sum(len(x) for x in candidates)
    r = sum(sorted((len(ref) for ref in refs), key=lambda k: (abs(k - len(cand)), k))[0]
            for cand, refs in zip(candidates, references, strict=True))
    for cand, refs in zip(candidates, references, strict=True):
        for n in hits:
            g = grams(cand, n)
            hits[n] += sum(min(k, max(grams(ref, n)[key] for ref in refs)) for key, k in g.items())
            count[n] += sum(g.values())
    if any(hits[n] == 0 for n in hits):
        return 0
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(sum(math.log(hits[n] / count[n]) for n in hits) / max_n)


CORRECT = {
    "word_embedding_forward": [layers.word_embedding_forward, embed_one_hot, embed_loop],
    "word_embedding_backward": [layers.word_embedding_backward, embed_backward_loop, embed_backward_one_hot],
    "temporal_affine_forward": [layers.temporal_affine_forward, affine_einsum],
    "temporal_affine_backward": [layers.temporal_affine_backward, affine_backward_einsum],
    "beam_search": [decoding.beam_search, beam_by_sorting],
    "bleu": [decoding.bleu, bleu_by_formula],
}


@pytest.mark.parametrize(
    "name,fn", [(n, f) for n, fns in CORRECT.items() for f in fns], ids=lambda v: getattr(v, "__name__", v)
)
def test_correct_variants_pass(name, fn):
    assert_check_passes(name, fn)


# ---- wrong implementations ----------------------------------------------------------------------


def _embed_backward_buffered(dout, cache):
    x, shape = cache
    dW = np.zeros(shape)
    dW[x] += dout
    return dW


def _embed_backward_mean(dout, cache):
    x, shape = cache
    dW = layers.word_embedding_backward(dout, cache)
    return dW / np.maximum(1, np.bincount(x.ravel(), minlength=shape[0]))[:, None]


def _beam_greedy(step, state, start, end, beam_width, max_len):
    words, score, last = [], 0.0, start
    for _ in range(max_len):
        log_probs, state = step(np.array([last]), state)
        last = int(np.argmax(log_probs[0]))
        words.append(last)
        score += log_probs[0, last]
        if last == end:
            break
    return [(words, score)]


def _beam_unsorted(step, state, start, end, beam_width, max_len):
    return decoding.beam_search(step, state, start, end, beam_width, max_len)[::-1]


def _beam_probs(step, state, start, end, beam_width, max_len):
    return [(w, math.exp(s)) for w, s in decoding.beam_search(step, state, start, end, beam_width, max_len)]


def _bleu_trigram(candidates, references, max_n=4):
    return decoding.bleu(candidates, references, max_n=3)


def _bleu_bp_inverted(candidates, references, max_n=4):
    c = sum(len(x) for x in candidates)
    r = sum(min((abs(len(ref) - len(cand)), len(ref)) for ref in refs)[1]
            for cand, refs in zip(candidates, references, strict=True))
    plain = decoding.bleu(candidates, references, max_n)
    return plain / min(1.0, math.exp(1 - r / c)) * min(1.0, math.exp(1 - c / r)) if plain else 0.0


WRONG = {
    "word_embedding_forward": {
        "no cache": lambda x, W: W[x],
        "time-major output": lambda x, W: (W[x.T], None),
        "plus one": lambda x, W: (W[x] + 1, None),
    },
    "word_embedding_backward": {
        "buffered": _embed_backward_buffered,
        "mean over repeats": _embed_backward_mean,
        "transposed": lambda dout, cache: layers.word_embedding_backward(dout, cache).T,
    },
    "temporal_affine_forward": {
        "no bias": lambda x, w, b: (x @ w, (x, w)),
        "bias twice": lambda x, w, b: (x @ w + 2 * b, (x, w)),
    },
    "temporal_affine_backward": {
        "first example only": lambda dout, cache: (dout @ cache[1].T, cache[0][0].T @ dout[0], dout[0].sum(axis=0)),
        "last step only": lambda dout, cache: (dout @ cache[1].T, cache[0][:, -1].T @ dout[:, -1],
                                               dout[:, -1].sum(axis=0)),
        "db per step": lambda dout, cache: (dout @ cache[1].T, layers.temporal_affine_backward(dout, cache)[1],
                                            dout.sum(axis=0)),
    },
    "beam_search": {
        "no reorder": checks._beam_variant(reorder_state=False),
        "last word only": checks._beam_variant(accumulate=False),
        "finished kept in the beam": checks._beam_variant(drop_finished=False),
        "length normalised": checks._beam_variant(normalise=True),
        "greedy": _beam_greedy,
        "worst first": _beam_unsorted,
        "probabilities": _beam_probs,
    },
    "bleu": {
        "no clip": checks._bleu_variant(clip=False),
        "no brevity penalty": checks._bleu_variant(brevity=None),
        "shortest reference": checks._bleu_variant(brevity="shortest"),
        "longest reference": checks._bleu_variant(brevity="longest"),
        "arithmetic mean": checks._bleu_variant(mean="arithmetic"),
        "sentence mean": checks._bleu_variant(corpus=False),
        "trigrams": _bleu_trigram,
        "penalty inverted": _bleu_bp_inverted,
    },
}


@pytest.mark.parametrize("name,label", [(n, k) for n, d in WRONG.items() for k in d])
def test_wrong_implementations_fail(name, label):
    assert_check_fails(name, WRONG[name][label], label)


@pytest.mark.parametrize("name,label,needle", [
    ("word_embedding_backward", "buffered", "np.add.at"),
    ("temporal_affine_backward", "first example only", "every example and every time step"),
    ("beam_search", "no reorder", "its own parent's state"),
    ("beam_search", "last word only", "sum of the log-probabilities"),
    ("beam_search", "finished kept in the beam", "has finished"),
    ("beam_search", "length normalised", "not divided by the length"),
    ("bleu", "no clip", "Clip each n-gram"),
    ("bleu", "shortest reference", "closest"),
    ("bleu", "sentence mean", "average of sentence BLEUs"),
])
def test_hints_name_the_mistake(name, label, needle):
    result = check.run(name, WRONG[name][label])
    assert needle in result.message, result.message


def test_every_exercise_has_correct_and_wrong_cases():
    assert set(CORRECT) == set(WRONG) == {ex.name for ex in check.exercises() if ex.notebook == "04"}

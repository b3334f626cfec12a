"""Exercises of notebook 04: word embeddings, the temporal affine layer, beam search and BLEU."""

from collections import Counter

import numpy as np

from .. import decoding, layers
from ..decoding import TableModel
from .battery import backward_test, call, describe_inputs, returns, snapshot, value_test
from .compare import Failure, kind
from .core import Exercise, register
from .rnn_basics import FLOAT32

NB = "04"


# --- word embeddings -----------------------------------------------------------------------------

def _embedding_args(dtype=np.float64, N=None, T=None):
    def make(rng):
        V, D = int(rng.integers(4, 8)), int(rng.integers(3, 6))
        n, t = N or int(rng.integers(2, 5)), T or int(rng.integers(3, 7))
        x = rng.integers(0, V, (n, t))
        x.flat[-1] = x.flat[0]  # a word that occurs twice, always
        x[x == V - 1] = 0  # and a word that never occurs: its row of dW stays zero
        return {"x": x, "W": rng.standard_normal((V, D)).astype(dtype)}

    return make


def _embedding_variant(buffered=False, mean=False):
    """A wrong word_embedding_backward from the forward's inputs."""

    def wrong(inputs, ups):
        x, W = inputs["x"], inputs["W"]
        (dout,) = ups
        dW = np.zeros(W.shape)
        if buffered:
            dW[x] += dout
            return dW
        np.add.at(dW, x, dout)
        return dW / np.maximum(1, np.bincount(x.ravel(), minlength=W.shape[0]))[:, None] if mean else dW

    return wrong


register(Exercise(
    "word_embedding_forward", NB, layers.word_embedding_forward,
    tests=[
        ("values (float64)", value_test(_embedding_args(), returns("out", "cache"), 1e-12)),
        ("one word (N = T = 1)", value_test(_embedding_args(N=1, T=1), returns("out", "cache"), 1e-12)),
        ("float32 weights", value_test(_embedding_args(np.float32), returns("out", "cache"), **FLOAT32)),
    ],
))

register(Exercise(
    "word_embedding_backward", NB, layers.word_embedding_backward, forward=layers.word_embedding_forward,
    forward_name="word_embedding_forward",
    tests=[
        ("values against the reference (repeated words)",
         backward_test(_embedding_args(), ("out",), ("dout",), ("dW",))),
        ("one word (N = T = 1)", backward_test(_embedding_args(N=1, T=1), ("out",), ("dout",), ("dW",))),
        ("against numerical gradients",
         backward_test(_embedding_args(), ("out",), ("dout",), ("dW",), numeric=True)),
    ],
    mistakes=[
        (_embedding_variant(buffered=True),
         "A word that occurs more than once must add up all its gradients. `dW[x] += dout` does not: numpy "
         "writes each repeated row once. Use np.add.at(dW, x, dout), or loop over the positions."),
        (_embedding_variant(mean=True),
         "A repeated word's gradients are averaged; the embedding row is used at each of its positions, so its "
         "gradient is their sum."),
        (lambda inputs, ups: np.zeros(inputs["W"].shape),
         "dW is all zeros: each position (n, t) adds dout[n, t] to row x[n, t] of dW."),
    ],
))


# --- temporal affine -----------------------------------------------------------------------------

def _affine_args(dtype=np.float64, N=None, T=None):
    def make(rng):
        n, t, D = (N or int(rng.integers(2, 6))), (T or int(rng.integers(2, 6))), int(rng.integers(2, 6))
        M = D + int(rng.integers(1, 4))  # D != M, so a transposed w cannot go unnoticed
        return {"x": rng.standard_normal((n, t, D)).astype(dtype),
                "w": (rng.standard_normal((D, M)) / np.sqrt(D)).astype(dtype),
                "b": rng.standard_normal(M).astype(dtype)}

    return make


def _affine_variant(time_only=False, batch_only=False, db_mean=False):
    """A wrong temporal_affine_backward from the forward's inputs."""

    def wrong(inputs, ups):
        x, w = inputs["x"], inputs["w"]
        (dout,) = ups
        D, M = w.shape
        dx, dw, db = dout @ w.T, x.reshape(-1, D).T @ dout.reshape(-1, M), dout.sum(axis=(0, 1))
        if time_only:
            dw, db = x[0].T @ dout[0], dout[0].sum(axis=0)
        if batch_only:
            dw, db = x[:, -1].T @ dout[:, -1], dout[:, -1].sum(axis=0)
        if db_mean:
            db = dout.mean(axis=(0, 1))
        return dx, dw, db

    return wrong


register(Exercise(
    "temporal_affine_forward", NB, layers.temporal_affine_forward,
    tests=[
        ("values (float64)", value_test(_affine_args(), returns("out", "cache"), 1e-7)),
        ("float32 inputs", value_test(_affine_args(np.float32), returns("out", "cache"), **FLOAT32)),
    ],
    mistakes=[
        (lambda x, w, b: (x @ w, None), "The bias b is missing: out = x @ w + b at every step."),
    ],
))

register(Exercise(
    "temporal_affine_backward", NB, layers.temporal_affine_backward, forward=layers.temporal_affine_forward,
    forward_name="temporal_affine_forward",
    tests=[
        ("values against the reference", backward_test(_affine_args(), ("out",), ("dout",), ("dx", "dw", "db"))),
        ("one example, one step (N = T = 1)",
         backward_test(_affine_args(N=1, T=1), ("out",), ("dout",), ("dx", "dw", "db"))),
        ("against numerical gradients",
         backward_test(_affine_args(), ("out",), ("dout",), ("dx", "dw", "db"), numeric=True)),
    ],
    mistakes=[
        (_affine_variant(time_only=True),
         "dw and db only see the first example: the weights are shared by every example and every time "
         "step, so sum over both (reshape x to (N*T, D) and dout to (N*T, M))."),
        (_affine_variant(batch_only=True),
         "dw and db only see the last time step: sum the gradients of every step, since the same w is "
         "used at each one."),
        (_affine_variant(db_mean=True),
         "db is a mean; the bias is added at every step of every example, so db is the sum of dout over N and T."),
    ],
))


# --- beam search ---------------------------------------------------------------------------------

class TinyRNN:
    """A random word-level RNN language model, small enough to trace by hand in a check.

    Its state matters (the next word depends on all earlier ones), so a search that mixes up which
    state belongs to which hypothesis gets different scores. Word 0 is <START> and is never predicted;
    word 1 is <END>, made likelier or rarer by end_bias.
    """

    def __init__(self, rng, V=7, H=6, end_bias=0.0):
        self.E = rng.standard_normal((V, H))
        self.Wh = 1.5 * rng.standard_normal((H, H)) / np.sqrt(H)
        self.Wy = rng.standard_normal((H, V))
        self.by = np.zeros(V)
        self.by[0], self.by[1] = -np.inf, end_bias
        self.H = H

    def step(self, words, state):
        words, state = np.asarray(words), np.asarray(state)
        if words.ndim != 1 or state.ndim != 2 or len(words) != len(state):
            raise ValueError(f"step takes words (B,) and state (B, {self.H}); got words {words.shape} and state "
                             f"{state.shape}. Pass one row of state per hypothesis, in the order of the words.")
        h = np.tanh(self.E[words] + state @ self.Wh)
        with np.errstate(divide="ignore"):
            return np.log(layers.softmax(h @ self.Wy + self.by)), h


def _beam_checked(trial, step, state, beam_width, max_len):
    args = {"step": step, "state": state, "start": 0, "end": 1, "beam_width": beam_width, "max_len": max_len}
    out = call(trial.fn, args, keep=("step",))
    pairs = out if isinstance(out, list | tuple) else []
    for words, *_ in (p for p in pairs if isinstance(p, list | tuple) and len(p) == 2):
        if not isinstance(words, list):
            raise Failure(f"A hypothesis' words are {kind(words)}; the contract is a list of ints, e.g. [3, 4, 1].",
                          "Keep each hypothesis as a Python list (beam[r] + [int(w)]): the cells after the check "
                          "compare it with lists.")
    try:
        if not isinstance(out, list | tuple):
            raise TypeError
        return [([int(w) for w in words], float(score)) for words, score in out], args
    except Exception:
        held = f" holding {kind(out[0])}" if isinstance(out, list | tuple) and out else ""
        raise Failure(f"Expected a list of (words, score) pairs; got {kind(out)}{held}.",
                      "Return e.g. [([3, 4, 1], -1.02), ([2, 5, 1], -1.90)], best first.") from None


def _describe_hyps(hyps):
    return "; ".join(f"{words} {score:.4f}" for words, score in hyps[:4]) or "nothing"


def _same(got, want):
    return len(got) == len(want) and all(
        g[0] == w[0] and abs(g[1] - w[1]) <= 1e-9 * max(1.0, abs(w[1])) for g, w in zip(got, want, strict=True))


def _beam_test(make_model, beam_width, max_len, models=1):
    """Compare with the reference on `models` fresh models (several, where one alone can miss a mistake)."""

    def test(trial):
        for _ in range(models):
            _one_beam_test(trial, make_model(trial.rng), beam_width, max_len)

    return test


def _one_beam_test(trial, model, beam_width, max_len):
    ex = trial.exercise
    state = np.zeros((1, model.H))
    got, args = _beam_checked(trial, model.step, state, beam_width, max_len)
    want = ex.reference(*snapshot(args).values())
    if _same(got, want):
        return
    hint = None
    for wrong, why in ex.mistakes:
        try:
            theirs = wrong(*snapshot(args).values())
        except ValueError:  # this mistake cannot even run on this model
            continue
        if _same(got, theirs):
            hint = why
            break
    same_scores = len(got) == len(want) and all(abs(g[1] - w[1]) <= 1e-9 * max(1.0, abs(w[1]))
                                                  for g, w in zip(got, want, strict=True))
    if hint is None and same_scores:
        hint = ("The scores are right but hypotheses with equal scores come in another order: pick the extensions "
                "with np.argsort(-total, axis=None, kind='stable') (ties go to the earlier hypothesis and the lower "
                "word id) and sort the final list by score with a stable sort.")
    elif hint is None and got and want and [w for w, _ in got] == [w for w, _ in want]:
        hint = ("The words are right but the scores are not: a hypothesis' score is the sum of the log-probabilities "
                "of its words, as step returns them (not probabilities, not a mean).")
    elif hint is None and got and want and _same(got[:1], want[:1]):
        hint = ("The best caption is right but the rest of the list is not: return every finished hypothesis "
                "and those left in the beam after max_len words, best first, at most beam_width of them.")
    raise Failure(
        f"Expected (words, score), best first: {_describe_hyps(want)}.\nGot: {_describe_hyps(got)}."
        f"\nInputs: {describe_inputs({k: v for k, v in args.items() if k != 'step'})}, a {type(model).__name__} "
        "model (word 0 is <START>, 1 is <END>).",
        hint or "Trace the search by hand for two steps with beam_width=2: which hypotheses are kept, and "
                "which state row does each one continue from?")


def _beam_variant(reorder_state=True, accumulate=True, drop_finished=True, narrow=True, normalise=False,
                  short=False):
    """A wrong beam search: one of its bookkeeping steps left out. narrow=False keeps beam_width live hypotheses
    however many have finished; short=True makes one step fewer than max_len."""

    def wrong(step, state, start, end, beam_width, max_len):
        beam, scores, finished = [[]], np.zeros(1), []
        for _ in range(max_len - 1 if short else max_len):
            last = np.array([seq[-1] if seq else start for seq in beam])
            log_probs, new_state = step(last, state)
            total = (scores[:, None] if accumulate else 0) + log_probs
            width = beam_width - len(finished) if drop_finished and narrow else beam_width
            rows, words = np.unravel_index(np.argsort(-total, axis=None, kind="stable")[:width], total.shape)
            live = []
            for r, w in zip(rows, words, strict=True):
                hyp = (beam[r] + [int(w)], float(total[r, w]))
                if w == end and drop_finished:
                    finished.append(hyp)
                else:
                    live.append((hyp, r))
            if not live:
                break
            beam = [h[0] for h, _ in live]
            scores = np.array([h[1] for h, _ in live])
            rows = [r for _, r in live] if reorder_state else np.arange(len(live)) % len(new_state)  # rows as they come
            state = new_state[rows]
        else:
            finished += list(zip(beam, scores.tolist(), strict=True))
        if normalise:
            return sorted(finished, key=lambda h: -h[1] / len(h[0]))[:beam_width]
        return sorted(finished, key=lambda h: -h[1])[:beam_width]

    return wrong


register(Exercise(
    "beam_search", NB, decoding.beam_search,
    tests=[
        ("beam_width=1 is greedy decoding", _beam_test(lambda rng: TinyRNN(rng), 1, 6)),
        ("finds the best caption that greedy misses",
         _beam_test(lambda rng: TableModel(TableModel.GARDEN_PATH), 2, 5)),
        ("ranks by total log-probability", _beam_test(lambda rng: TableModel(TableModel.SHORT_OR_LONG), 2, 6)),
        ("beam_width=3 on a random RNN", _beam_test(lambda rng: TinyRNN(rng), 3, 6, models=3)),
        ("beam_width=4, hypotheses cut at max_len",
         _beam_test(lambda rng: TinyRNN(rng, end_bias=-2.0), 4, 7, models=3)),
        ("max_len=1: one word per hypothesis", _beam_test(lambda rng: TinyRNN(rng), 3, 1, models=2)),
    ],
    mistakes=[
        (_beam_variant(reorder_state=False),
         "Each kept hypothesis must continue from its own parent's state: reorder the rows of the new state "
         "with the indices of the hypotheses you kept (new_state[rows])."),
        (_beam_variant(accumulate=False),
         "Score a hypothesis by the sum of the log-probabilities of all its words, not of its last word only."),
        (_beam_variant(drop_finished=False),
         "A hypothesis that ends with <END> has finished: move it out of the beam (which gets one narrower) "
         "instead of extending it further."),
        (_beam_variant(narrow=False),
         "Finished hypotheses leave the beam, and the beam gets one narrower for each: keep only "
         "beam_width - len(finished) extensions at each step, so that at most beam_width hypotheses exist."),
        (_beam_variant(short=True),
         "Your search stops one step early: it must extend the hypotheses max_len times (max_len words each, "
         "<END> included), unless every hypothesis has finished before."),
        (_beam_variant(normalise=True),
         "Rank by the total log-probability, not divided by the length (length normalisation is a variant the "
         "notebook discusses, not this exercise)."),
    ],
))


# --- BLEU ----------------------------------------------------------------------------------------

def _corpus(rng):
    """Short sentences over a 4-word vocabulary, so n-grams of every order match now and then."""
    words = ["a", "red", "circle", "left"]

    def sentence():
        return [words[i] for i in rng.integers(0, 4, int(rng.integers(4, 10)))]

    n = int(rng.integers(3, 7))
    cands = [sentence() for _ in range(n)]
    refs = [[sentence() for _ in range(int(rng.integers(2, 4)))] for _ in range(n)]
    for c, r in zip(cands, refs, strict=True):  # plant a long match, so no p_n is zero
        r[0][:4] = c[:4]
    return cands, refs


def _bleu_args(rng):
    cands, refs = _corpus(rng)
    return {"candidates": cands, "references": refs}


def _short_args(rng):
    """Candidates cut short: references a little longer, much longer and much shorter; only the closest is r."""
    cands, _ = _corpus(rng)
    refs = [[c + ["left", "a"], c + ["red"] * int(rng.integers(4, 7)), c[:1]] for c in cands]
    return {"candidates": cands, "references": refs}


def _words(rng, n=8):
    """n distinct words in a fresh order, so the fixed cases below are not fixed strings."""
    pool = ["a", "red", "blue", "circle", "square", "left", "of", "and", "green", "triangle", ",", "right"]
    return [pool[i] for i in rng.permutation(len(pool))[:n]]


def _tie_args(rng):
    """Two candidates of 5 words, each as close to a reference of 4 words as to one of 6: r takes the 4 (the
    shorter). The 6 is listed first for one and last for the other, so neither "the first listed" nor "the last
    listed" is the rule; a third candidate, much shorter than its reference, puts r above c so that the brevity
    penalty shows every choice of r."""
    w = _words(rng)
    cand, back = w[:5], list(reversed(w[:5]))
    return {"candidates": [cand, back, w[5:8]],
            "references": [[cand + [w[5]], cand[:4]], [back[:4], back + [w[6]]], [w[5:8] + w[:5]]]}


def _closest_args(rng):
    """References of 12, 2 and 7 words for a candidate of 6: r is 7 (the closest, listed last), so BP =
    exp(1 - 7/6); the first reference would give exp(1 - 12/6) and the shortest BP = 1."""
    w = _words(rng)
    cand = w[:6]
    return {"candidates": [cand], "references": [[w[:2] * 6, w[:2], cand + [w[6]]]]}


def _clip_max_args(rng):
    """A word twice in the candidate and once in each of two references: clipped to 1 (the most in any one
    reference), not 2 (the sum over the references)."""
    a, b, c, d, e, f, g, h = _words(rng)
    return {"candidates": [[a, b, c, d, a]], "references": [[[a, b, c, d, e], [f, a, g, h, e]]]}


def _max_n_args(max_n):
    def make(rng):
        return {**_bleu_args(rng), "max_n": max_n}

    return make


def _long_args(rng):
    """Candidates longer than every reference: exp(1 - r / c) > 1, and the penalty must stay at 1."""
    w = _words(rng)
    return {"candidates": [w[:7], w[1:8]], "references": [[w[:5]], [w[1:6], w[1:5]]]}


def _zero_args(rng):
    """No 4-gram of the candidates occurs in a reference: p_4 = 0, so BLEU is 0 (no smoothing), without crashing."""
    w = _words(rng)
    return {"candidates": [[w[0], w[1], w[2], w[4], w[3]]], "references": [[[w[0], w[1], w[2], w[3], w[4]]]]}


def _three_word_args(rng):
    """Three-word candidates have no 4-gram at all: p_4 = 0 / 0, and BLEU-4 is 0."""
    w = _words(rng)
    return {"candidates": [w[:3], w[3:6]], "references": [[w[:3]], [w[3:6]]]}


def _bleu_select(result):
    if isinstance(result, tuple | list | np.ndarray) and np.ndim(result) > 0:
        one = np.size(result) == 1
        raise Failure(f"Expected one number, the corpus BLEU; got {kind(result)}.",
                      "Return the number itself, float(...), not a container of one." if one else
                      "Sum the matched and total n-gram counts over the whole corpus, then combine them once.")
    return {"bleu": result}


def _bleu_variant(clip=True, brevity="closest", mean="geometric", corpus=True, cap=True):
    """A wrong BLEU. clip: True (the most in any one reference), False, or "sum" (over the references); brevity:
    "closest", "closest-longer" (ties to the longer), "first", "shortest", "longest" or None; mean: "geometric" or
    "arithmetic"; cap=False leaves out the min(1, .) of the brevity penalty."""

    def one(cands, refs, max_n):
        matched, total, c, r = np.zeros(max_n), np.zeros(max_n), 0, 0
        for cand, rs in zip(cands, refs, strict=True):
            c += len(cand)
            lengths = [len(x) for x in rs]
            r += {"closest": min(lengths, key=lambda k: (abs(k - len(cand)), k)),
                  "closest-longer": min(lengths, key=lambda k: (abs(k - len(cand)), -k)), "first": lengths[0],
                  "shortest": min(lengths), "longest": max(lengths), None: 0}[brevity]
            for n in range(1, max_n + 1):
                counts = decoding._ngrams(cand, n)
                most = Counter()
                for ref in rs:
                    most = most + decoding._ngrams(ref, n) if clip == "sum" else most | decoding._ngrams(ref, n)
                matched[n - 1] += sum(min(k, most[g]) if clip else k * (most[g] > 0) for g, k in counts.items())
                total[n - 1] += sum(counts.values())
        if matched.min() == 0:
            return 0.0
        p = matched / total
        score = np.exp(np.log(p).mean()) if mean == "geometric" else p.mean()
        penalty = np.exp(1 - r / c)
        return float((min(1.0, penalty) if cap else penalty) * score)

    def wrong(candidates, references, max_n=4):
        if corpus:
            return one(candidates, references, max_n)
        return float(np.mean([one([c], [r], max_n) for c, r in zip(candidates, references, strict=True)]))

    return wrong


register(Exercise(
    "bleu", NB, decoding.bleu,
    tests=[
        ("a perfect match scores 1", value_test(
            lambda rng: (lambda c: {"candidates": c, "references": [[s] for s in c]})(_corpus(rng)[0]),
            _bleu_select, 1e-9)),
        ("random corpora against the reference", value_test(_bleu_args, _bleu_select, 1e-9)),
        ("short candidates pay the brevity penalty", value_test(_short_args, _bleu_select, 1e-9)),
        ("a repeated word is clipped", value_test(
            lambda rng: {"candidates": [["a"] * 7, ["a", "red", "circle", "left", "of", "a", "blue"]],
                         "references": [[["a", "red", "circle", "left", "of", "a", "red", "square"]],
                                        [["a", "red", "circle", "left", "of", "a", "blue", "square"]]]},
            _bleu_select, 1e-9)),
        ("equally close references: the shorter is r", value_test(_tie_args, _bleu_select, 1e-9)),
        ("the closest reference is not the first one", value_test(_closest_args, _bleu_select, 1e-9)),
        ("clipped by the most in any one reference", value_test(_clip_max_args, _bleu_select, 1e-9)),
        ("BLEU-2 (max_n=2)", value_test(_max_n_args(2), _bleu_select, 1e-9)),
        ("BLEU-3 (max_n=3)", value_test(_max_n_args(3), _bleu_select, 1e-9)),
        ("candidates longer than the references: BP stays 1", value_test(_long_args, _bleu_select, 1e-9)),
        ("no matching 4-gram: BLEU is 0", value_test(_zero_args, _bleu_select, 1e-9)),
        ("candidates too short for a 4-gram: BLEU is 0", value_test(_three_word_args, _bleu_select, 1e-9)),
    ],
    mistakes=[
        (_bleu_variant(clip=False),
         "Clip each n-gram's count by the largest number of times it occurs in any one reference: otherwise "
         "'a a a a' gets full marks against 'a red circle'."),
        (_bleu_variant(brevity=None),
         "The brevity penalty is missing, or taken from a reference shorter than the candidate (which makes it 1): "
         "BP = min(1, exp(1 - r / c)), with r the length of the reference closest to each candidate's. Without it, "
         "short captions that leave words out score too well."),
        (_bleu_variant(brevity="shortest"),
         "For r, take the reference whose length is closest to the candidate's (the shorter one on a tie), not "
         "the shortest reference."),
        (_bleu_variant(brevity="longest"),
         "For r, take the reference whose length is closest to the candidate's, not the longest reference."),
        (_bleu_variant(clip="sum"),
         "Clip each n-gram by the most times it occurs in any *one* reference (the maximum over the references), "
         "not by its total over all the references."),
        (_bleu_variant(brevity="first"),
         "r is the length of the reference *closest* to each candidate's length, not the first reference's."),
        (_bleu_variant(brevity="closest-longer"),
         "When two references are equally close to the candidate's length, r takes the shorter one (Papineni's "
         "rule, which the exercise states)."),
        (_bleu_variant(cap=False),
         "The brevity penalty is min(1, exp(1 - r / c)): a candidate longer than its references is not rewarded, "
         "so cap the penalty at 1."),
        (_bleu_variant(mean="arithmetic"),
         "Combine p_1..p_4 with the geometric mean, exp(mean(log p_n)), not the arithmetic mean."),
        (_bleu_variant(corpus=False),
         "That is the average of sentence BLEUs. Corpus BLEU sums the matched and total n-gram counts (and the "
         "lengths) over all candidates first, then computes the precisions and the brevity penalty once."),
    ],
))

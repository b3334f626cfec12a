"""Beam search against brute force and hand-traced cases; BLEU against values computed by hand."""

import itertools
import math

import numpy as np
import pytest

from utils.check.captioning import TinyRNN
from utils.decoding import TableModel, beam_search, bleu

START, END = 0, 1


def _score(model, words):
    state, total = np.zeros((1, model.H)), 0.0
    for prev, w in zip([START] + words[:-1], words, strict=True):
        log_probs, state = model.step(np.array([prev]), state)
        total += log_probs[0, w]
    return total


def _all_captions(V, max_len):
    """Every caption a search could return: ends at its first <END>, or is cut at max_len words."""
    for n in range(1, max_len + 1):
        for words in itertools.product(range(1, V), repeat=n):
            if END not in words[:-1] and (words[-1] == END or n == max_len):
                yield list(words)


def test_a_beam_wide_enough_is_exhaustive_search():
    for seed in range(5):
        model = TinyRNN(np.random.default_rng(seed), V=4, H=3)
        ranked = sorted(((w, _score(model, w)) for w in _all_captions(4, 4)), key=lambda h: -h[1])
        got = beam_search(model.step, np.zeros((1, 3)), START, END, beam_width=1000, max_len=4)
        got = [h for h in got if np.isfinite(h[1])]  # the beam also holds the impossible, word 0 (<START>)
        assert [w for w, _ in got] == [w for w, _ in ranked]
        assert np.allclose([s for _, s in got], [s for _, s in ranked])


def test_width_one_is_greedy():
    model = TinyRNN(np.random.default_rng(7))
    state, words = np.zeros((1, model.H)), [START]
    for _ in range(6):
        log_probs, state = model.step(np.array(words[-1:]), state)
        words.append(int(log_probs[0].argmax()))
        if words[-1] == END:
            break
    ((got, score),) = beam_search(model.step, np.zeros((1, model.H)), START, END, 1, 6)
    assert got == words[1:] and score == pytest.approx(_score(model, got))


def test_the_garden_path_traced_by_hand():
    got = beam_search(TableModel(TableModel.GARDEN_PATH).step, np.zeros((1, 1)), START, END, 2, 5)
    assert [w for w, _ in got] == [[3, 4, END], [2, 4, END]]
    assert np.allclose([s for _, s in got], np.log([0.4 * 0.9, 0.6 * 0.25]))
    got = beam_search(TableModel(TableModel.SHORT_OR_LONG).step, np.zeros((1, 1)), START, END, 2, 6)
    assert got == [([END], pytest.approx(math.log(0.4))), ([2, 3, 4, END], pytest.approx(math.log(0.18)))]


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 1"):
        beam_search(TinyRNN(np.random.default_rng(0)).step, np.zeros((1, 6)), START, END, 0, 5)
    with pytest.raises(TypeError, match="token lists"):
        bleu(["a red circle"], [["a red circle"]])
    with pytest.raises(ValueError, match="2 candidates but 1"):
        bleu([["a"], ["b"]], [[["a"]]])


CAND = "a red circle left of a blue square".split()
REF = "a red circle left of a green square".split()


def test_bleu_by_hand():
    assert bleu([CAND], [[CAND]]) == pytest.approx(1.0)
    # unigrams 7/8, bigrams 5/7, trigrams 4/6, 4-grams 3/5; equal lengths, so no brevity penalty
    assert bleu([CAND], [[REF]]) == pytest.approx((7 / 8 * 5 / 7 * 4 / 6 * 3 / 5) ** 0.25)
    assert bleu([CAND], [[REF]], max_n=2) == pytest.approx(math.sqrt(7 / 8 * 5 / 7))
    # Papineni's example: "the" counts at most twice, as often as in the reference that has the most
    the = "the the the the the the the".split()
    refs = ["the cat is on the mat".split(), "there is a cat on the mat".split()]
    assert bleu([the], [refs], max_n=1) == pytest.approx(2 / 7)
    # every n-gram right, but 3 words where the reference has 8: BP = exp(1 - 8/3)
    assert bleu([CAND[:3]], [[CAND]], max_n=2) == pytest.approx(math.exp(1 - 8 / 3))
    # no 4-gram at all: p_4 = 0 gives 0
    assert bleu([CAND[:3]], [[CAND]]) == 0.0


def test_bleu_is_a_corpus_score_not_a_mean_of_sentences():
    # the first pair alone scores 1 and the second 0 (no matching bigram); pooled, the bigram precision is 7/9
    cands = [CAND, ["blue", "square"]]
    refs = [[CAND], [["green", "circle"]]]
    p1, p2 = 8 / 10, 7 / 8
    assert bleu(cands, refs, max_n=2) == pytest.approx(math.sqrt(p1 * p2))

"""Beam search and BLEU, the reference solutions of notebook 04's last two exercises, and a toy model.

Both are written against plain numpy and lists, not a model class: beam search sees the model only
through a `step` function, so the same search decodes the torch captioner, the check's tiny numpy
models, the toy TableModel and the attention decoder of notebook 05.
"""

import math
from collections import Counter

import numpy as np


def beam_search(step, state, start, end, beam_width, max_len):
    """The most likely captions under the model, searched with a beam of `beam_width` hypotheses.

    step(words, state) -> (log_probs, new_state): words (B,) int ids, state (B, S); log_probs (B, V) are
    the log-probabilities of the next word after each hypothesis, new_state (B, S) its state after
    reading that word. `state` is the (1, S) state before the first word; `start` the <START> id.

    Every step extends each hypothesis in the beam by every word, scores a hypothesis by the sum of its
    words' log-probabilities, and keeps the beam_width best (ties go to the earlier hypothesis and the
    lower word id). A kept hypothesis whose last word is `end` has finished: it leaves the beam, which is
    one narrower from then on. The search stops when the beam is empty or after max_len words.

    Returns [(words, score), ...]: the finished hypotheses and those still in the beam at the end, best
    score first, at most beam_width of them; words is a list of ids without <START> (with `end` where the
    hypothesis finished).
    """
    if beam_width < 1 or max_len < 1:
        raise ValueError(f"beam_width and max_len must be at least 1; got {beam_width} and {max_len}.")
    beam, scores = [[]], np.zeros(1)
    finished = []
    for _ in range(max_len):
        last = np.array([seq[-1] if seq else start for seq in beam])
        log_probs, new_state = step(last, state)
        total = scores[:, None] + np.asarray(log_probs, dtype=np.float64)
        best = np.argsort(-total, axis=None, kind="stable")[:beam_width - len(finished)]
        rows, words = np.unravel_index(best, total.shape)
        live = []
        for r, w in zip(rows, words, strict=True):
            hyp = (beam[r] + [int(w)], float(total[r, w]))
            if w == end:
                finished.append(hyp)
            else:
                live.append((hyp, r))
        if not live:
            return sorted(finished, key=lambda h: -h[1])
        beam = [seq for (seq, _), _ in live]
        scores = np.array([score for (_, score), _ in live])
        state = np.asarray(new_state)[[r for _, r in live]]
    results = finished + list(zip(beam, scores.tolist(), strict=True))
    return sorted(results, key=lambda h: -h[1])[:beam_width]


def _ngrams(words, n):
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def bleu(candidates, references, max_n=4):
    """Corpus BLEU (Papineni et al., 2002) of token lists, between 0 and 1.

    candidates: [words, ...]; references: for each candidate, a list of reference token lists.
    For each n = 1..max_n, the modified precision p_n = (n-grams of the candidates, each counted at most
    as often as it occurs in any one of its references) / (all n-grams of the candidates), summed over the
    corpus before dividing. BLEU = BP * exp(mean of log p_n), with the brevity penalty
    BP = min(1, exp(1 - r / c)): c the candidates' total length, r the sum of the reference lengths closest
    to each candidate's (the shorter on a tie). Any p_n = 0 gives 0 (no smoothing).
    """
    if isinstance(candidates, str) or any(isinstance(c, str) for c in candidates):
        raise TypeError("bleu takes token lists, e.g. [caption.split() for caption in captions], not strings.")
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists.")
    matched, total = [0] * max_n, [0] * max_n
    c = r = 0
    for cand, refs in zip(candidates, references, strict=True):
        if not refs:
            raise ValueError("Every candidate needs at least one reference.")
        c += len(cand)
        r += min((abs(len(ref) - len(cand)), len(ref)) for ref in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(cand, n)
            most = Counter()
            for ref in refs:
                most |= _ngrams(ref, n)  # | keeps the larger count of each n-gram
            matched[n - 1] += sum(min(k, most[g]) for g, k in counts.items())
            total[n - 1] += sum(counts.values())
    if c == 0 or min(matched) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matched, total, strict=True)) / max_n
    return min(1.0, math.exp(1 - r / c)) * math.exp(log_p)


class TableModel:
    """A toy language model given by a table of next-word probabilities, for tracing searches by hand.

    Word 0 is <START> and 1 is <END>; table[w] maps each possible next word after w to its probability,
    and a word missing from the table is followed by <END>. The state is just the last word.

    GARDEN_PATH: the likeliest first word (2, p=0.6) leads to four words at 0.25 each; the other (3, 0.4)
    to word 4 with 0.9. The best caption is 3 4 <END> (p = 0.36); greedy ends at 0.6 * 0.25 = 0.15.
    SHORT_OR_LONG: <END> at once has p = 0.4; 2 3 4 <END> has p = 0.6 * 0.5 * 0.6 = 0.18, lower in total
    but higher per word, so ranking by the mean log-probability instead of the sum reverses the two.
    """

    GARDEN_PATH = {0: {2: 0.6, 3: 0.4}, 2: {4: 0.25, 5: 0.25, 6: 0.25, 7: 0.25}, 3: {4: 0.9, 5: 0.1}}
    SHORT_OR_LONG = {0: {1: 0.4, 2: 0.6}, 2: {3: 0.5, 5: 0.5}, 3: {4: 0.6, 6: 0.4}, 5: {7: 1.0}}
    V, H = 8, 1

    def __init__(self, table):
        self.table = table

    def step(self, words, state):
        rows = [[self.table.get(int(w), {1: 1.0}).get(v, 0.0) for v in range(self.V)] for w in words]
        with np.errstate(divide="ignore"):
            return np.log(np.array(rows)), np.asarray(words, dtype=np.float64)[:, None]

"""A synthetic text with a dependency of known length, for showing what truncated BPTT cannot learn.

Blocks of `gap + 2` characters: a key (one of A, B, C, D), gap - 1 noise characters (x, y, z), the
cue `=`, and the key again. Everything is random except the character after `=`, which can only be
predicted by remembering a character `gap` + 1 steps back: with chunks shorter than that, no gradient
ever connects the two.
"""

import random

KEYS, NOISE, CUE = "ABCD", "xyz", "="


def delayed_recall_text(blocks, gap, seed):
    """`blocks` blocks of the task, deterministic for a seed (Python's random, stable across versions)."""
    if gap < 1:
        raise ValueError(f"gap must be at least 1; got {gap}.")
    r = random.Random(seed)
    out = []
    for _ in range(blocks):
        key = r.choice(KEYS)
        out.append(key + "".join(r.choice(NOISE) for _ in range(gap - 1)) + CUE + key)
    return "".join(out)


def recall_positions(text):
    """Indices of the characters that follow a cue: the ones that need memory."""
    return [i + 1 for i, c in enumerate(text[:-1]) if c == CUE]

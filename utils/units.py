"""Looking for interpretable hidden units: per-character features of a text, and the units that track them.

A feature is a number per character (inside a string literal or not, column in the line, ...). A unit
"tracks" a feature when its activation over a long text correlates strongly with it. We search every
unit for every feature and report the best correlation, whatever it is: a feature with no unit above
a modest |r| is worth reporting too (the model may spread it over many units, or not represent it).
"""

import io
import tokenize

import numpy as np


def line_features(text):
    """Column of each character in its line and the indentation (leading spaces) of its line."""
    column = np.empty(len(text))
    indent = np.empty(len(text))
    pos = 0
    for line in text.splitlines(keepends=True):
        n = len(line)
        column[pos:pos + n] = np.arange(n)
        indent[pos:pos + n] = len(line) - len(line.lstrip(" "))
        pos += n
    return {"column in line": column, "indentation": indent}


# Python 3.12 splits f-strings into several tokens; 3.11 has one STRING token for them.
_FSTRING_TOKENS = {getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
                   if hasattr(tokenize, n)}


def python_features(files):
    """Features of Python source from the tokenizer, for the files joined by newlines (as load_corpus does).

    in string: the character belongs to a string literal (quotes included); in comment: to a # comment;
    in brackets: it lies inside (), [] or {} (nesting depth > 0). Plus line_features.
    """
    parts = {"inside a string": [], "inside a comment": [], "inside brackets": []}
    for k, src in enumerate(files):
        n = len(src) + (k < len(files) - 1)  # the joining newline
        flags = {name: np.zeros(n, dtype=bool) for name in parts}
        starts = np.cumsum([0] + [len(line) for line in src.splitlines(keepends=True)])
        depth, last = 0, 0
        try:
            for tok in tokenize.generate_tokens(io.StringIO(src).readline):
                a = starts[tok.start[0] - 1] + tok.start[1] if tok.start[0] - 1 < len(starts) else n
                b = starts[tok.end[0] - 1] + tok.end[1] if tok.end[0] - 1 < len(starts) else n
                flags["inside brackets"][last:a] = depth > 0
                if tok.type == tokenize.STRING or tok.type in _FSTRING_TOKENS:
                    flags["inside a string"][a:b] = True
                elif tok.type == tokenize.COMMENT:
                    flags["inside a comment"][a:b] = True
                elif tok.type == tokenize.OP and tok.string in "([{":
                    depth += 1
                elif tok.type == tokenize.OP and tok.string in ")]}":
                    depth = max(0, depth - 1)
                flags["inside brackets"][a:b] = depth > 0 or (tok.type == tokenize.OP and tok.string in ")]}")
                last = b
        except (tokenize.TokenError, SyntaxError, IndentationError):
            pass  # a file that does not tokenize keeps the flags found so far
        for name in parts:
            parts[name].append(flags[name])
    features = {name: np.concatenate(v).astype(float) for name, v in parts.items()}
    return {**features, **line_features("\n".join(files))}


def prose_features(text):
    """Features of a play's text: column in the line, and being inside a [stage direction].

    A stage direction may run over several lines; a blank line closes any that was left open (the
    texts have a few unmatched brackets, which would otherwise mark the rest of the corpus).
    """
    column = line_features(text)["column in line"]
    inside = np.zeros(len(text))
    depth, previous = 0, ""
    for i, c in enumerate(text):
        if c == "[":
            depth += 1
        elif c == "\n" and previous == "\n":
            depth = 0
        inside[i] = depth > 0
        if c == "]":
            depth = max(0, depth - 1)
        previous = c
    return {"column in line": column, "inside [stage directions]": inside}


def best_units(activations, features):
    """For each feature, the unit whose activation correlates most with it (Pearson r, by |r|).

    activations: (L, U) over L characters; features: {name: (L,)}. Returns {name: (unit, r)}.
    """
    A = activations - activations.mean(axis=0)
    A /= np.maximum(A.std(axis=0), 1e-12)
    found = {}
    for name, f in features.items():
        f = np.asarray(f, dtype=float)
        if f.shape != (len(A),):
            raise ValueError(f"Feature {name!r} has shape {f.shape}; expected ({len(A)},), one value per character.")
        z = (f - f.mean()) / max(f.std(), 1e-12)
        r = A.T @ z / len(z)
        unit = int(np.argmax(np.abs(r)))
        found[name] = (unit, float(r[unit]))
    return found

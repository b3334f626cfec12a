"""Diagrams drawn by code: unrolled computation graphs and the RNN input/output patterns.

Colours follow the usual RNN figures: inputs red, hidden states green, outputs blue.
"""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

COLOURS = {"x": "#f4b6b6", "h": "#b7e1b0", "y": "#b6cdf4", "W": "#f6e3a1"}

#: (title, example, inputs per step, outputs per step) for the five patterns.
PATTERNS = [
    ("one to one", "image classification", [1], [1]),
    ("one to many", "image captioning", [1, 0, 0, 0], [1, 1, 1, 1]),
    ("many to one", "question encoder (VQA),\nsentiment of a sentence", [1, 1, 1, 1], [0, 0, 0, 1]),
    ("many to many", "translation, video description\n(encode, then decode)", [1, 1, 1, 0, 0], [0, 0, 0, 1, 1]),
    ("many to many, aligned", "labelling every video frame,\nchar language model", [1, 1, 1, 1], [1, 1, 1, 1]),
]


def _box(ax, x, y, kind, label=None, w=0.7, h=0.55):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02",
                                fc=COLOURS[kind], ec="0.25", lw=1))
    if label:
        ax.text(x, y, label, ha="center", va="center", fontsize=9)


def _arrow(ax, start, end, colour="0.25", style="-|>", **kw):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=10, color=colour, lw=1, **kw))


def _finish(ax, title=None):
    ax.set_aspect("equal")
    ax.axis("off")
    ax.autoscale_view()
    if title:
        ax.set_title(title, fontsize=10)


def draw_pattern(ax, title, example, inputs, outputs):
    """One input/output pattern: a column per time step, x below, h in the middle, y above."""
    for t, (has_x, has_y) in enumerate(zip(inputs, outputs, strict=True)):
        _box(ax, t, 1, "h")
        if has_x:
            _box(ax, t, 0, "x")
            _arrow(ax, (t, 0.28), (t, 0.72))
        if has_y:
            _box(ax, t, 2, "y")
            _arrow(ax, (t, 1.28), (t, 1.72))
        if t:
            _arrow(ax, (t - 0.65, 1), (t - 0.35, 1))
    ax.set_xlim(-0.6, max(len(inputs), 4) - 0.4)
    ax.set_ylim(-0.9, 2.5)
    _finish(ax, title)
    ax.text(0.5, -0.02, example, transform=ax.transAxes, ha="center", va="top", fontsize=8, color="0.3")


def draw_io_patterns():
    """The five ways an RNN maps inputs to outputs, side by side."""
    fig, axes = plt.subplots(1, len(PATTERNS), figsize=(15, 3.2))
    for ax, pattern in zip(axes, PATTERNS, strict=True):
        draw_pattern(ax, *pattern)
    fig.text(0.01, 0.02, "red: input x_t    green: hidden state h_t    blue: output y_t", fontsize=9)
    return fig


def draw_unrolled(T=4):
    """The unrolled graph: the same function f_W, with the same W, at every step."""
    fig, ax = plt.subplots(figsize=(2.2 * T + 1.5, 3.6))
    for t in range(1, T + 1):
        x = 2 * t
        _box(ax, x, 1, "h", "$f_W$", w=0.9)
        _box(ax, x, 0, "x", f"$x_{t}$")
        _box(ax, x + 1, 1, "h", f"$h_{t}$", w=0.6)
        _box(ax, x + 1, 2.2, "y", f"$y_{t}$", w=0.6)
        _arrow(ax, (x, 0.28), (x, 0.72))
        _arrow(ax, (x + 0.45, 1), (x + 0.7, 1))
        _arrow(ax, (x + 1, 1.28), (x + 1, 1.92))
        if t < T:
            _arrow(ax, (x + 1.3, 1), (x + 1.55, 1))
        _arrow(ax, (T + 1.2, 3.1), (x, 1.3), colour="#b08800", connectionstyle="arc3,rad=0.0", alpha=0.8)
    _box(ax, 1, 1, "h", "$h_0$", w=0.6)
    _arrow(ax, (1.3, 1), (1.55, 1))
    _box(ax, T + 1.2, 3.3, "W", "one shared $W$", w=2.2)
    ax.set_xlim(0.4, 2 * T + 1.6)
    ax.set_ylim(-0.5, 3.8)
    _finish(ax)
    return fig

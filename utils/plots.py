"""Diagrams drawn by code: unrolled computation graphs, the RNN input/output patterns, the LSTM's matrix,
shape-world scenes, and attention maps drawn over images.

Colours follow the usual RNN figures: inputs red, hidden states green, outputs blue.
"""

import textwrap

import matplotlib.pyplot as plt
import numpy as np
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


GATE_COLOURS = {"i": "#f4b6b6", "f": "#b7e1b0", "o": "#b6cdf4", "g": "#f6e3a1"}


def draw_lstm_matrix(D=3, H=2):
    """The LSTM's one stacked matrix: 4H rows (gates i, f, o, g) by D + H columns (x and h_{t-1}).

    In the lecture's notation W is (4n x 2n) with D = H = n: one product of W with [x; h] gives all four
    gates' pre-activations at once, and every gate sees both x and the previous hidden state.
    """
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1.3, 1]})
    for k, gate in enumerate("ifog"):
        for col in range(D + H):
            ax.add_patch(plt.Rectangle((col, -(k + 1) * H), 1, H, fc=GATE_COLOURS[gate],
                                       ec="0.3" if col != D else "k", lw=0.6))
        ax.text(-0.3, -(k + 0.5) * H, f"{gate}: {H} rows", ha="right", va="center", fontsize=10)
    ax.plot([D, D], [0, -4 * H], "k", lw=2)
    ax.text(D / 2, 0.4, f"multiplies x_t ({D} columns)", ha="center", fontsize=9)
    ax.text(D + H / 2, 0.4, f"multiplies h_(t-1) ({H})", ha="center", fontsize=9)
    ax.set(xlim=(-3.2, D + H + 0.5), ylim=(-4 * H - 0.5, 1.2), title=f"W: (4H) x (D + H) = {4 * H} x {D + H}")
    ax.set_aspect("equal")
    ax.axis("off")
    lines = ["a = W [x_t ; h_(t-1)] + b      (4H numbers)",
             "i = sigmoid(a[0:H])      input gate",
             "f = sigmoid(a[H:2H])     forget gate",
             "o = sigmoid(a[2H:3H])    output gate",
             "g = tanh(a[3H:4H])       candidate",
             "c_t = f * c_(t-1) + i * g     (* : element-wise)",
             "h_t = o * tanh(c_t)"]
    for k, line in enumerate(lines):
        ax2.text(0, 1 - k * 0.13, line, family="monospace", fontsize=10, va="top",
                 color="k" if k in (0, 5, 6) else "0.25",
                 bbox={"fc": GATE_COLOURS["ifog"[k - 1]], "ec": "none"} if 1 <= k <= 4 else None)
    ax2.axis("off")
    fig.tight_layout()
    return fig


def draw_highways():
    """A residual block and an LSTM cell side by side: both carry their input forward by addition."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, (title, inp, branch, out, skip) in zip(axes, [
        ("ResNet block", "x", "F(x)\n(conv layers)", "x + F(x)", "identity"),
        ("LSTM cell state", "c_(t-1)", "i * g\n(new content)", "f * c_(t-1) + i * g", "x f (identity when f = 1)"),
    ], strict=True):
        _box(ax, 0, 0, "h", inp, w=1.3)
        _box(ax, 3, 1.2, "W", branch, w=1.9, h=0.9)
        _box(ax, 6.3, 0, "y", out, w=2.9)
        _arrow(ax, (0.65, 0), (4.85, 0))
        ax.text(2.8, -0.35, skip, ha="center", fontsize=9, color="0.2")
        _arrow(ax, (0.5, 0.25), (2.05, 1.1))
        _arrow(ax, (3.95, 1.1), (5.4, 0.3))
        ax.text(4.75, 0.5, "+", fontsize=16)
        _finish(ax, title)
        ax.set_xlim(-1, 8)
        ax.set_ylim(-0.8, 2)
    fig.suptitle("Gradients flow back along the straight path unchanged (ResNet) or scaled by f (LSTM)", y=1.02)
    return fig


def draw_scenes(images, captions, cols=4, width=2.6):
    """A grid of images, each titled by its caption (wrapped at 30 characters; a newline starts a new line)."""
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * width, rows * (width + 1.0)), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, img, cap in zip(axes.ravel(), images, captions, strict=False):
        ax.imshow(img)
        ax.set_title("\n".join(line for part in cap.split("\n") for line in textwrap.wrap(part, 30)), fontsize=8)
    fig.tight_layout()
    return fig


def upsample(alpha, size=64):
    """A grid's weights (L,) as a (size, size) map: each cell's weight spread over the pixels it sits on."""
    side = int(round(np.sqrt(len(alpha))))
    cell = size // side
    return np.kron(np.reshape(alpha, (side, side)), np.ones((cell, cell))) / cell**2


def overlay_attention(ax, image, alpha, title=None, box=None, chosen=None):
    """The image with alpha (L,) drawn over it as a heat map (brighter = more attention); optionally the box
    (x0, y0, x1, y1) of the object being named, and the cell `chosen` by hard attention, outlined."""
    heat = upsample(alpha, image.shape[0])
    ax.imshow(image)
    ax.imshow(heat, cmap="inferno", alpha=0.6, vmin=0, vmax=max(heat.max(), 1e-12))
    side = int(round(np.sqrt(len(alpha))))
    cell = image.shape[0] / side
    if box is not None:
        x0, y0, x1, y1 = box
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="#00e5ff", lw=1.5))
    if chosen is not None:
        r, c = divmod(int(chosen), side)
        ax.add_patch(plt.Rectangle((c * cell - 0.5, r * cell - 0.5), cell, cell, fill=False, ec="#7CFC00", lw=1.5))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def draw_word_maps(image, words, alphas, boxes=None, width=1.7):
    """One panel per word: the attention the model paid while predicting it. boxes[t] is the box of the object
    word t names, or None."""
    fig, axes = plt.subplots(1, len(words), figsize=(width * len(words), width + 0.4), squeeze=False)
    for t, (ax, word) in enumerate(zip(axes[0], words, strict=True)):
        overlay_attention(ax, image, alphas[t], word, None if boxes is None else boxes[t])
    fig.tight_layout()
    return fig


def draw_grid(image, side, receptive_field, cells):
    """The image cut into its side x side grid of cells, with the receptive field (a square of that many pixels)
    of each cell in `cells` (row, column) outlined around the cell it belongs to."""
    fig, ax = plt.subplots(figsize=(4, 4))
    size = image.shape[0]
    step = size / side
    ax.imshow(image)
    for k in range(1, side):
        ax.axhline(k * step - 0.5, color="w", lw=0.3, alpha=0.6)
        ax.axvline(k * step - 0.5, color="w", lw=0.3, alpha=0.6)
    for (r, c), colour in zip(cells, ("#ff4d4d", "#00e5ff", "#7CFC00", "#ffd700"), strict=False):
        cx, cy = (c + 0.5) * step - 0.5, (r + 0.5) * step - 0.5
        ax.add_patch(plt.Rectangle((c * step - 0.5, r * step - 0.5), step, step, fc=colour, ec="none", alpha=0.8))
        half = receptive_field / 2
        ax.add_patch(plt.Rectangle((cx - half, cy - half), receptive_field, receptive_field, fill=False, ec=colour,
                                   lw=1.5))
    ax.set(xlim=(-0.5, size - 0.5), ylim=(size - 0.5, -0.5))
    ax.set_axis_off()
    return fig


def draw_hops(images, maps, titles, width=2.0):
    """One row per image: the image, then each hop's attention map over it. maps[r] holds row r's (gh, gw) maps."""
    cols = 1 + max(len(m) for m in maps)
    fig, axes = plt.subplots(len(images), cols, figsize=(cols * width, len(images) * (width + 0.35)), squeeze=False)
    for row, (img, hops, title) in enumerate(zip(images, maps, titles, strict=True)):
        axes[row, 0].imshow(img)
        axes[row, 0].set_title("\n".join(textwrap.wrap(title, 34)), fontsize=7, loc="left")
        for k, alpha in enumerate(hops, start=1):
            axes[row, k].imshow(img)
            axes[row, k].imshow(alpha, cmap="magma", alpha=0.65, extent=(0, img.shape[1], img.shape[0], 0),
                                interpolation="nearest")
            axes[row, k].set_title(f"hop {k}: peak {alpha.max():.2f}", fontsize=7)
        for ax in axes[row]:
            ax.set_axis_off()
    fig.tight_layout()
    return fig

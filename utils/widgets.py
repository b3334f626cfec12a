"""Interactive explorers (ipywidgets): a control changes the plot, the kernel redraws it."""

import textwrap

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from .check import grading


def _interactive(show, **controls):
    """widgets.interactive(show, **controls); in a graded run, the first view drawn once as plain output instead.

    Nobody moves a control in a graded run, and the feedback page cannot run widgets. An explorer's output
    captured by its Output widget has also left nbgrader's executor waiting, with the kernel idle, until the cell
    timed out (seen in the course's tests, two notebooks running at once).
    """
    if grading.active():
        show(**{name: control.value for name, control in controls.items()})
        return None
    return widgets.interactive(show, **controls)


def step_through(vocab, inputs, hidden, probs, outputs):
    """Slide over time steps of a char RNN: x_t one-hot, h_t as bars, softmax y_t, the sampled char.

    inputs, outputs: (T,) token indices; hidden: (T, H); probs: (T, V).
    """
    vocab, T = list(vocab), len(inputs)

    def show(t):
        fig, axes = plt.subplots(1, 3, figsize=(12, 2.8), gridspec_kw={"width_ratios": [1, 2.5, 1]})
        axes[0].bar(vocab, np.eye(len(vocab))[inputs[t]], color="#e06666")
        axes[0].set(title=f"input x_{t} = '{vocab[inputs[t]]}' (one-hot)", ylim=(0, 1.05))
        axes[1].bar(range(hidden.shape[1]), hidden[t], color="#6aa84f")
        axes[1].set(title=f"hidden state h_{t} (tanh keeps it in (-1, 1))", ylim=(-1.05, 1.05), xlabel="unit")
        colours = ["#3d85c6" if i == outputs[t] else "#9fc5e8" for i in range(len(vocab))]
        axes[2].bar(vocab, probs[t], color=colours)
        axes[2].set(title=f"softmax y_{t}: sampled '{vocab[outputs[t]]}'", ylim=(0, 1.05))
        text = "".join(vocab[i] for i in inputs[: t + 1]) + "|" + vocab[outputs[t]]
        fig.suptitle(f"text so far: {text}", y=1.05)
        plt.show()

    return _interactive(show, t=widgets.IntSlider(value=0, min=0, max=T - 1, description="step t"))


def temperature_explorer(generate, prime="ROMEO.\n", n=300):
    """A temperature slider and a prime text box; generate(prime, n, temperature) -> text is redrawn on change."""

    def show(temperature, prime):
        try:
            text = generate(prime, n, temperature)
        except ValueError as err:  # e.g. a character the corpus never uses, or an empty prime
            print(f"Cannot sample: {err}")
            return
        print(f"temperature {temperature:.2f}\n{'-' * 60}\n{text}")

    return _interactive(
        show,
        temperature=widgets.FloatSlider(value=0.8, min=0.1, max=2.0, step=0.05, description="temperature",
                                        continuous_update=False, style={"description_width": "initial"}),
        prime=widgets.Text(value=prime, description="prime", continuous_update=False,
                           style={"description_width": "initial"}),
    )


def _colour(value):
    """Blue for -1, white for 0, red for +1 (the colouring of the famous char-RNN unit plots)."""
    v = float(np.clip(value, -1, 1))
    fade = int(255 * (1 - abs(v)))
    return f"rgb(255,{fade},{fade})" if v > 0 else f"rgb({fade},{fade},255)"


def unit_html(text, activation):
    """The text as HTML, each character's background coloured by one unit's activation in [-1, 1]."""
    import html

    spans = []
    for c, a in zip(text, activation, strict=True):
        shown = "⏎<br>" if c == "\n" else html.escape(c).replace(" ", "&nbsp;")
        spans.append(f'<span style="background:{_colour(a)}">{shown}</span>')
    return ('<div style="font-family:monospace;font-size:12px;line-height:1.5;color:#000">'
            + "".join(spans) + "</div>")


def unit_viewer(text, activations, suggested, names=None):
    """Colour `text` by a chosen unit. activations: (len(text), U); suggested: {label: unit} shown first.

    Each unit is scaled by its largest |activation| in the text, so unbounded units (an LSTM's cell
    state) colour as clearly as tanh-bounded ones. names(u) labels unit u in the menu.
    """
    names = names or (lambda u: f"unit {u}")
    options = [(f"{label}: {names(u)}", u) for label, u in suggested.items()]
    options += [(names(u), u) for u in range(activations.shape[1]) if u not in suggested.values()]
    pick = widgets.Dropdown(options=options, description="unit")
    out = widgets.HTML()

    def redraw(change=None):
        a = activations[:, pick.value]
        out.value = unit_html(text, a / max(np.abs(a).max(), 1e-12))

    pick.observe(redraw, names="value")
    redraw()
    return widgets.VBox([pick, out])


def slider_plot(draw, **sliders):
    """A generic explorer: draw(**values) makes a figure; each keyword is a FloatSlider's (min, max, step, value)."""
    controls = {name: widgets.FloatSlider(value=v, min=lo, max=hi, step=st, description=name,
                                          continuous_update=False, style={"description_width": "initial"})
                for name, (lo, hi, st, v) in sliders.items()}

    def show(**values):
        draw(**values)
        plt.show()

    return _interactive(show, **controls)


def gate_explorer():
    """One LSTM unit: sliders for f, i, o, g and the previous cell c_(t-1); bars show c_t, h_t and the
    local gradients dc_t/dc_(t-1) = f and dh_t/dc_t = o * (1 - tanh(c_t)^2)."""

    def draw(f, i, o, g, c_prev):
        c = f * c_prev + i * g
        h = o * np.tanh(c)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 2.8))
        a1.bar(["c_(t-1)", "f * c_(t-1)", "i * g", "c_t", "h_t"], [c_prev, f * c_prev, i * g, c, h],
               color=["0.7", "#b7e1b0", "#f6e3a1", "#6aa84f", "#3d85c6"])
        a1.axhline(0, color="k", lw=0.5)
        a1.set(ylim=(-3, 3), title=f"c_t = {f:.2f} * {c_prev:.2f} + {i:.2f} * {g:.2f} = {c:.2f};  h_t = {h:.2f}")
        a2.bar(["dc_t / dc_(t-1)", "dh_t / dc_t"], [f, o * (1 - np.tanh(c) ** 2)], color=["#b7e1b0", "#3d85c6"])
        a2.set(ylim=(0, 1.05), title="local gradients: f passes the cell's gradient back")

    return slider_plot(draw, f=(0, 1, 0.05, 0.9), i=(0, 1, 0.05, 0.5), o=(0, 1, 0.05, 0.5),
                       g=(-1, 1, 0.05, 0.8), c_prev=(-2, 2, 0.1, 1.0))


def caption_browser(images, references, predict, next_words):
    """Browse images with a slider: the image, its reference and predicted captions, and for each predicted
    word the model's five likeliest candidates at that position.

    predict(i) -> caption; next_words(i, caption) -> [(word, [(candidate, p), ...]), ...] (captioning.next_word_table).
    """
    from html import escape

    from IPython.display import HTML, display

    def show(index):
        caption = predict(index)
        fig, ax = plt.subplots(figsize=(2.4, 2.4))
        ax.imshow(images[index])
        ax.set_axis_off()
        plt.show()
        verdict = "exact match" if caption in references[index] else "differs from every reference"
        rows = []
        for word, top in next_words(index, caption):
            cells = "".join(f"<td style='padding:0 8px;{'font-weight:bold' if w == word else ''}'>"
                            f"{escape(w)} {p:.2f}</td>" for w, p in top)
            rows.append(f"<tr><td style='padding:0 8px'><b>{escape(word)}</b></td>{cells}</tr>")
        display(HTML(f"<p>reference: <i>{references[index][0]}</i><br>predicted: <i>{caption}</i> ({verdict})</p>"
                     "<table><tr><th>word</th><th colspan=5>the 5 likeliest words at this position</th></tr>"
                     + "".join(rows) + "</table>"))

    return _interactive(show, index=widgets.IntSlider(value=0, min=0, max=len(images) - 1,
                                                             description="image", continuous_update=False))


def attention_explorer(images, explain, max_words, n_images=None):
    """Where each model looked while saying each word of its own caption, models side by side.

    explain: {model name: fn(index) -> (words, alphas (len(words), L), chosen)}, with chosen the cells a hard
    model attended to (or None). A slider moves through the words, up to max_words (past the end of a shorter
    caption its last word stays), another through the images (the first n_images; all by default).
    """
    from . import plots

    names = list(explain)
    cache = {}

    def explained(name, index):
        if (name, index) not in cache:
            cache[name, index] = explain[name](index)
        return cache[name, index]

    def show(word, image):
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.6), squeeze=False)
        for ax, name in zip(axes[0], names, strict=True):
            words, alphas, chosen = explained(name, image)
            t = min(word, len(words) - 1)
            said = " ".join(w if k != t else f"[{w}]" for k, w in enumerate(words))
            plots.overlay_attention(ax, images[image], alphas[t], None, None, None if chosen is None else chosen[t])
            ax.set_title(f"{name}: '{words[t]}'", fontsize=10)
            ax.text(0.5, -0.06, "\n".join(textwrap.wrap(said, 34)), transform=ax.transAxes, ha="center", va="top",
                    fontsize=8)
        plt.show()

    n = len(images) if n_images is None else n_images
    return _interactive(
        show,
        word=widgets.IntSlider(value=0, min=0, max=max_words, description="word", continuous_update=False),
        image=widgets.IntSlider(value=0, min=0, max=n - 1, description="image", continuous_update=False))


def question_explorer(images, ask, question="is there a red circle ?", index=0, titles=None):
    """Choose an image with a slider and type any question: each attention hop's map over the image and the top
    answers with their probabilities.

    ask(index, question) -> ([(answer, p), ...], [map (gh, gw), ...]); a ValueError it raises (an unknown word,
    say) is shown as its message. titles(index) -> a line shown above the image (e.g. its caption).
    """
    from .plots import draw_hops

    def show(index, question):
        try:
            top, maps = ask(index, question)
        except ValueError as err:
            print(err)
            return
        draw_hops([images[index]], [maps], [titles(index) if titles else f"image {index}"], width=2.4)
        plt.show()
        print(question)
        for answer, p in top:
            print(f"  {p:6.1%}  {answer:8s} {'#' * round(40 * p)}")

    return _interactive(
        show,
        index=widgets.IntSlider(value=index, min=0, max=len(images) - 1, description="image",
                                continuous_update=False),
        question=widgets.Text(value=question, description="question", continuous_update=False,
                              layout=widgets.Layout(width="600px")))

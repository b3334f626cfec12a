"""Interactive explorers (ipywidgets): a control changes the plot, the kernel redraws it."""

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np


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

    return widgets.interactive(show, t=widgets.IntSlider(value=0, min=0, max=T - 1, description="step t"))

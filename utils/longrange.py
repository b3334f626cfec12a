"""Synthetic sequence tasks with a known answer, the small models that learn them, and their training loop.

Notebook 03 uses them to show what gates buy: a label fixed by the first token must be reported after
L distractors ("I grew up in France ... I speak fluent French"), and a tag that depends on a later token
needs a bidirectional model.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .train import clipped_update, progress


def remember_first(n, L, classes, distractors, rng):
    """x: (n, L + 1) token ids, y: (n,) labels. The first token is the label (0..classes-1); the L tokens
    after it are distractors (ids classes..classes+distractors-1) that carry no information."""
    y = rng.integers(0, classes, n)
    x = np.concatenate([y[:, None], rng.integers(classes, classes + distractors, (n, L))], axis=1)
    return x, y


def look_ahead(n, T, classes, shift, rng):
    """x: (n, T) random tokens; the tag of position t is the token at t + shift (the last `shift`
    positions have no tag and are marked -1): only a model that reads the future can tag."""
    x = rng.integers(0, classes, (n, T))
    y = np.full((n, T), -1)
    y[:, :T - shift] = x[:, shift:]
    return x, y


class LectureGRU(nn.Module):
    """A GRU layer in the lecture's formulation (utils.gates.gru_step_forward): the reset gate multiplies
    h before the product with W_hn. torch.nn.GRU multiplies the product instead. Batch first."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.x2h = nn.Linear(input_size, 3 * hidden_size)
        self.h2zr = nn.Linear(hidden_size, 2 * hidden_size, bias=False)
        self.h2n = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x, h=None):
        H = self.hidden_size
        h = x.new_zeros(x.shape[0], H) if h is None else h[0]
        ax, out = self.x2h(x), []
        for t in range(x.shape[1]):
            z, r = torch.sigmoid(ax[:, t, :2 * H] + self.h2zr(h)).split(H, dim=1)
            n = torch.tanh(ax[:, t, 2 * H:] + self.h2n(r * h))
            h = z * h + (1 - z) * n
            out.append(h)
        return torch.stack(out, dim=1), h[None]


class LayerNormRNN(nn.Module):
    """A tanh RNN whose pre-activation is layer-normalised at every step: each example's H values are
    rescaled to mean 0 and variance 1 (then a learned gain and bias), independently of the batch."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.x2h = nn.Linear(input_size, hidden_size, bias=False)
        self.h2h = nn.Linear(hidden_size, hidden_size, bias=False)
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, x, h=None):
        h = x.new_zeros(x.shape[0], self.hidden_size) if h is None else h[0]
        ax, out = self.x2h(x), []
        for t in range(x.shape[1]):
            h = torch.tanh(self.norm(ax[:, t] + self.h2h(h)))
            out.append(h)
        return torch.stack(out, dim=1), h[None]


CORES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU, "gru (lecture)": LectureGRU, "rnn + layer norm": LayerNormRNN}


#: How a vanilla RNN's recurrent matrix W_hh starts (Tagger's recurrent_init).
RECURRENT_INITS = ("default", "orthogonal", "identity")


class Tagger(nn.Module):
    """Embedding -> recurrent core -> a linear read-out at every step: (N, T) ids -> (N, T, classes) scores.

    cell: a key of CORES; layers and bidirectional apply to the torch.nn cores. keep_bias: the initial bias
    of the gate that keeps the old state (LSTM forget gate, GRU update gate); torch's own default is 0.
    recurrent_init, recurrent_gain: how the vanilla RNN's W_hh starts, for cell "rnn" only (see
    `_init_recurrent`).
    """

    def __init__(self, vocab, classes, hidden=32, cell="lstm", layers=1, bidirectional=False, embed=16, keep_bias=3.0,
                 recurrent_init="default", recurrent_gain=1.0):
        super().__init__()
        if cell not in CORES:
            raise ValueError(f"cell must be one of {sorted(CORES)}; got {cell!r}.")
        if recurrent_init not in RECURRENT_INITS:
            raise ValueError(f"recurrent_init must be one of {RECURRENT_INITS}; got {recurrent_init!r}.")
        if recurrent_init != "default" and cell != "rnn":
            raise ValueError(f"recurrent_init={recurrent_init!r} is for the vanilla RNN (cell 'rnn'); "
                             f"got cell {cell!r}.")
        self.embed = nn.Embedding(vocab, embed)
        if cell in ("rnn", "lstm", "gru"):
            self.core = CORES[cell](embed, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        elif layers != 1 or bidirectional:
            raise ValueError(f"{cell!r} is one layer, one direction.")
        else:
            self.core = CORES[cell](embed, hidden)
        self._start_by_keeping(cell, hidden, keep_bias)
        self._init_recurrent(recurrent_init, recurrent_gain)
        self.out = nn.Linear(hidden * (2 if bidirectional else 1), classes)

    @torch.no_grad()
    def _start_by_keeping(self, cell, H, value):
        """Bias the gate that keeps the old state towards keeping: the LSTM's forget gate f (torch's second
        block of i, f, g, o) and the GRU's update gate z (torch's second block of r, z, n; the first of our
        lecture GRU's z, r, n). sigmoid(3) = 0.95, so at the start most of the state survives each step."""
        if cell in ("lstm", "gru"):
            for name, p in self.core.named_parameters():
                if name.startswith("bias_ih"):
                    p[H:2 * H] = value
        elif cell == "gru (lecture)":
            self.core.x2h.bias[:H] = value

    @torch.no_grad()
    def _init_recurrent(self, how, gain):
        """Start every W_hh of a vanilla RNN (each layer and direction) as torch's default, uniform in
        +-1/sqrt(H) (spectral radius about 0.58, so a signal shrinks at every step), as a random orthogonal
        matrix times gain (every singular value equals gain: with gain 1 no direction grows or shrinks; Saxe et
        al. 2014), or as gain times the identity (the state starts as a running sum of the inputs; Le et al.
        2015). The orthogonal draw uses torch's global generator, so torch.manual_seed repeats it."""
        if how == "default":
            return
        for name, p in self.core.named_parameters():
            if name.startswith("weight_hh"):
                if how == "orthogonal":
                    nn.init.orthogonal_(p, gain=gain)
                else:
                    p.copy_(gain * torch.eye(p.shape[0]))

    def forward(self, x):
        return self.out(self.core(self.embed(x))[0])


def train_tagger(model, make_batch, steps, lr=3e-3, clip=1.0, last_only=True, optimizer="adam", norms=None, desc=None):
    """A fixed number of steps on fresh batches from make_batch(step), with gradient-norm clipping.

    optimizer: "adam", or "sgd" (plain gradient descent, whose step is lr times the gradient: the step that
    clipping bounds). clip: the largest global gradient norm, or None for no clipping. norms: a list that
    receives each step's gradient norm before clipping, if given. last_only: the task is many-to-one, scored
    at the last step; otherwise every position with a tag >= 0 is scored. Returns the list of training losses.
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f'optimizer must be "adam" or "sgd"; got {optimizer!r}.')
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=lr)
    losses = []
    for step in progress(0, steps, desc):
        x, y = (torch.as_tensor(a) for a in make_batch(step))
        scores = model(x)
        loss = (F.cross_entropy(scores[:, -1], y) if last_only
                else F.cross_entropy(scores.reshape(-1, scores.shape[-1]), y.reshape(-1), ignore_index=-1))
        norm = clipped_update(model, opt, loss, clip)
        if norms is not None:
            norms.append(norm)
        losses.append(loss.item())
    return losses


@torch.no_grad()
def accuracy(model, x, y, last_only=True):
    """Fraction of correct labels (last step) or of correct tags (every tagged position)."""
    model.eval()
    guess = model(torch.as_tensor(x)).argmax(dim=-1).numpy()
    model.train()
    if last_only:
        return float((guess[:, -1] == y).mean())
    tagged = y >= 0
    return float((guess[tagged] == y[tagged]).mean())

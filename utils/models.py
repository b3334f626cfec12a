"""PyTorch models used by the notebooks."""

import torch
from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class CharLM(nn.Module):
    """Character language model: embedding -> recurrent layers -> a linear map to next-char scores.

    `cell` is "rnn" (tanh), "lstm" or "gru"; everything else is identical, so the three can be compared
    on equal terms. forward(x, state) takes x: (N, T) character ids and the state carried over from
    the previous chunk (None at the start) and returns (scores (N, T, V), state, hidden (N, T, H)).
    """

    def __init__(self, vocab_size, embed=64, hidden=256, cell="lstm", layers=1):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}; got {cell!r}.")
        self.cell = cell
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = CELLS[cell](embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x, state=None):
        hidden, state = self.rnn(self.embed(x), state)
        return self.head(hidden), state, hidden


def detach(state):
    """Cut the graph at a chunk boundary: keep the state's values, drop its history (truncated BPTT)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


class ImageEncoder(nn.Module):
    """A small CNN trained from scratch: (N, 3, 64, 64) floats in [0, 1] -> (N, feature) vectors.

    Three stride-2 convolutions, each with batch normalisation, bring 64x64 down to an 8x8 grid of 64
    channels (`grid`, the L x D features that attention looks over in notebook 05). Captions list objects
    from left to right and never mention height, so the vector is made from the maximum over each column
    of the grid: it keeps which column holds what, the order a caption needs, where a global average
    would lose it.
    """

    def __init__(self, feature=128, channels=(16, 32, 64)):
        super().__init__()
        c1, c2, c3 = channels
        self.grid = nn.Sequential(
            nn.Conv2d(3, c1, 5, stride=2, padding=2), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.BatchNorm2d(c3), nn.ReLU())
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(c3 * 8, feature), nn.ReLU())

    def forward(self, images):
        columns = self.grid(images).amax(dim=2)  # (N, C, 8, 8) -> (N, C, 8): the maximum down each column
        return self.project(columns)


#: How the image vector v sets the initial state of an image_input="h0" captioner (Captioner's h0).
H0_MAPS = ("tanh", "affine")


class Captioner(nn.Module):
    """CNN encoder + recurrent decoder, trained with teacher forcing.

    image_input="h0": the image vector v sets the initial state, h0 = tanh(v W_init + b_init) (h0="tanh") or
    h0 = v W_init + b_init (h0="affine", as in notebook 04's numpy loss and CS231n's captioner), with c0 = 0 for an
    LSTM, and the words alone drive the steps after that. image_input="every_step": h0 = 0 and v joins the word
    embedding at every step, so the recurrence reads from x_t W_x + h_{t-1} W_h + v W_v.
    forward(images, words) takes words (N, T) ids (the caption without its last token) and returns
    scores (N, T, V) for the next word at every position, and the final state.
    """

    def __init__(self, vocab_size, image_input="every_step", cell="lstm", embed=32, hidden=256, feature=128, h0="tanh"):
        super().__init__()
        if image_input not in ("h0", "every_step"):
            raise ValueError(f'image_input must be "h0" or "every_step"; got {image_input!r}.')
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}; got {cell!r}.")
        if h0 not in H0_MAPS:
            raise ValueError(f"h0 must be one of {H0_MAPS}; got {h0!r}.")
        if h0 != "tanh" and image_input != "h0":
            raise ValueError(f'h0={h0!r} applies to image_input="h0" only; got image_input={image_input!r}.')
        self.image_input, self.cell, self.h0 = image_input, cell, h0
        self.encoder = ImageEncoder(feature)
        self.embed = nn.Embedding(vocab_size, embed)
        extra = feature if image_input == "every_step" else 0
        self.rnn = CELLS[cell](embed + extra, hidden, batch_first=True)
        self.init_h = nn.Linear(feature, hidden) if image_input == "h0" else None
        self.head = nn.Linear(hidden, vocab_size)

    def initial_hidden(self, v):
        """The initial hidden state (N, H) made from image vectors v (N, feature): image_input="h0" only."""
        a = self.init_h(v)
        return a.tanh() if self.h0 == "tanh" else a

    def start(self, images):
        """Encode the images: returns (v, state) to begin decoding with."""
        v = self.encoder(images)
        if self.image_input == "every_step":
            return v, None
        h0 = self.initial_hidden(v)[None]
        return v, ((h0, torch.zeros_like(h0)) if self.cell == "lstm" else h0)

    def step(self, v, words, state):
        """Scores for the word after each of words (N, T), continuing from state."""
        x = self.embed(words)
        if self.image_input == "every_step":
            x = torch.cat([x, v[:, None].expand(-1, x.shape[1], -1)], dim=2)
        hidden, state = self.rnn(x, state)
        return self.head(hidden), state

    def forward(self, images, words):
        v, state = self.start(images)
        return self.step(v, words, state)

"""PyTorch models used by the notebooks."""

import torch
import torch.nn.functional as F
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


class GridEncoder(nn.Module):
    """A CNN that keeps a grid of local features: (N, 3, 64, 64) floats in [0, 1] -> (N, L, D) with L = 16 x 16.

    Two stride-2 convolutions (kernel 4, padding 1) bring 64x64 to 16x16, then `depth` stride-1 3x3
    convolutions add context; each has batch normalisation. Kernel 4 with padding 1 keeps every cell's
    receptive field centred on the 4x4 block of pixels the cell sits on, so a cell's attention weight
    can be drawn on its own pixels. The receptive field is 10 + 8 * depth pixels wide (`receptive_field`):
    with depth 1 a cell sees 18 px, about one object, so the only cells that can tell the decoder about
    an object are the ones on or next to it. With `positions`, each cell's centre (x, y), scaled to [-1, 1],
    is appended to its features: convolutions are translation invariant and would not otherwise say
    where a cell is, and a caption that lists objects left to right needs to know.
    """

    def __init__(self, channels=(16, 32, 32), depth=1, positions=True):
        super().__init__()
        c1, c2, c3 = channels
        layers = [nn.Conv2d(3, c1, 4, stride=2, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
                  nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.BatchNorm2d(c2), nn.ReLU()]
        for k in range(depth):
            layers += [nn.Conv2d(c2 if k == 0 else c3, c3, 3, padding=1), nn.BatchNorm2d(c3), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.side, self.positions = 16, positions
        self.features = (c3 if depth else c2) + (2 if positions else 0)
        self.receptive_field = 10 + 8 * depth
        centres = (torch.arange(self.side) + 0.5) / self.side * 2 - 1
        y, x = torch.meshgrid(centres, centres, indexing="ij")
        self.register_buffer("coords", torch.stack([x, y], dim=-1).reshape(-1, 2), persistent=False)

    def forward(self, images):
        grid = self.convs(images).flatten(2).transpose(1, 2)  # (N, C, 16, 16) -> (N, 256, C), row by row
        if self.positions:
            grid = torch.cat([grid, self.coords.expand(len(grid), -1, -1)], dim=2)
        return grid


class AttentionCaptioner(nn.Module):
    """Show, Attend and Tell on a grid: at every word the decoder chooses where to look.

    Step t scores every location i of the grid V (N, L, D) from the previous hidden state,
    e_ti = w . tanh(V_i W_v + h_(t-1) W_h + c_ti u + p_ti u') + b, and turns the scores into attention
    alpha_t = softmax_i(e_t). Two numbers per location remember where the decoder has looked: c_ti, the
    attention location i received at all the steps before t (its "coverage"), and p_ti, what it received at
    step t - 1. A caption lists its objects left to right, so the next object is the leftmost one not yet
    looked at, and an object's shape word looks where its colour word did: both are easy to read from these
    two maps and hard to keep in h. With `coverage=False` both are left out and the scores are the paper's.
    What the decoder reads from the image depends on `attention`:
      "soft": the expectation z_t = sum_i alpha_ti V_i (differentiable);
      "hard": one sampled location, z_t = V_s with s ~ alpha_t while training (its argmax when not);
      "gumbel": the straight-through Gumbel-softmax sample, one-hot forward, soft gradient (argmax when not
      training).
    A gate beta_t = sigmoid(f_beta(h_(t-1))) scales z_t; the LSTM reads [word embedding, beta_t z_t] and the
    scores for the next word come from [h_t, beta_t z_t]. The initial h and c are computed from the mean of
    V, as in the paper.

    The decoder's state is (h, c, covered, previous), each (1, N, ...). `decode` returns everything (scores,
    state and a record of the attention); `start` and `step` follow the protocol of `Captioner`, so
    `utils.captioning`'s greedy decoding and beam search drive this model unchanged.
    """

    ATTENTION = ("soft", "hard", "gumbel")

    def __init__(self, vocab_size, attention="soft", embed=32, hidden=128, attend=32, tau=1.0, coverage=True,
                 **grid):
        super().__init__()
        if attention not in self.ATTENTION:
            raise ValueError(f"attention must be one of {self.ATTENTION}; got {attention!r}.")
        self.attention, self.tau, self.cell = attention, tau, "lstm"
        self.att_c = nn.Parameter(torch.zeros(2, attend)) if coverage else None
        self.encoder = GridEncoder(**grid)
        D = self.encoder.features
        self.embed = nn.Embedding(vocab_size, embed)
        self.init = nn.Linear(D, 2 * hidden)
        self.att_v, self.att_h = nn.Linear(D, attend), nn.Linear(hidden, attend, bias=False)
        self.att_w = nn.Linear(attend, 1)
        self.gate = nn.Linear(hidden, 1)
        self.rnn = nn.LSTMCell(embed + D, hidden)
        self.head = nn.Linear(hidden + D, vocab_size)

    def start(self, images):
        """Encode the images: returns (V (N, L, D), state) to begin decoding with."""
        V = self.encoder(images)
        h, c = self.init(V.mean(dim=1)).tanh().chunk(2, dim=1)
        return V, (h[None], c[None], V.new_zeros(1, *V.shape[:2]), V.new_zeros(1, *V.shape[:2]))

    def scores(self, V, h, projected=None, covered=None, previous=None):
        """Attention scores e (N, L) of every location for hidden states h (N, H), the attention each location
        has received so far, covered (N, L), and at the previous word, previous (N, L)."""
        projected = self.att_v(V) if projected is None else projected
        pre = projected + self.att_h(h)[:, None]
        if self.att_c is not None and covered is not None:
            pre = torch.addcmul(pre, covered[:, :, None], self.att_c[0])  # + covered * u, in one pass
            pre = torch.addcmul(pre, previous[:, :, None], self.att_c[1])
        return self.att_w(torch.tanh(pre)).squeeze(2)

    def decode(self, V, words, state, attention=None, sample=None):
        """Teacher-forced decoding of words (N, T) from state.

        attention overrides the model's kind for this call ("soft" for the semi-sampling trick); sample says
        whether hard or Gumbel attention samples (default: while training) or takes the argmax.
        Returns scores (N, T, vocab), the final state, and a dict of (N, T, ...) tensors: alpha (N, T, L),
        beta (N, T), and for hard attention the chosen locations `chosen` and their log-probabilities
        `log_prob` (N, T), with the entropy of each alpha_t (N, T).
        """
        attention = attention or self.attention
        sample = self.training if sample is None else sample
        h, c, covered, previous = (s[0] for s in state)
        x = self.embed(words)
        projected = self.att_v(V)
        out, record = [], {"alpha": [], "log_alpha": [], "beta": [], "chosen": [], "log_prob": []}
        for t in range(words.shape[1]):
            e = self.scores(V, h, projected, covered, previous)
            log_alpha = e.log_softmax(dim=1)
            alpha = log_alpha.exp()
            if attention == "soft":
                weights = alpha
            elif attention == "gumbel" and sample:
                weights = F.gumbel_softmax(e, tau=self.tau, hard=True)
            else:
                chosen = torch.multinomial(alpha, 1) if sample else alpha.argmax(dim=1, keepdim=True)
                weights = torch.zeros_like(alpha).scatter_(1, chosen, 1.0)
                record["chosen"].append(chosen[:, 0])
                record["log_prob"].append(log_alpha.gather(1, chosen)[:, 0])
            z = torch.bmm(weights[:, None], V)[:, 0]
            covered, previous = covered + weights, weights
            beta = torch.sigmoid(self.gate(h))
            z = beta * z
            h, c = self.rnn(torch.cat([x[:, t], z], dim=1), (h, c))
            out.append(torch.cat([h, z], dim=1))
            record["alpha"].append(alpha)
            record["log_alpha"].append(log_alpha)
            record["beta"].append(beta[:, 0])
        record = {k: torch.stack(v, dim=1) for k, v in record.items() if v}
        record["entropy"] = -(record["alpha"] * record.pop("log_alpha")).sum(dim=2)
        return self.head(torch.stack(out, dim=1)), (h[None], c[None], covered[None], previous[None]), record

    def step(self, V, words, state):
        """Scores for the word after each of words (N, T), continuing from state (the Captioner protocol)."""
        scores, state, _ = self.decode(V, words, state)
        return scores, state

    def forward(self, images, words):
        V, state = self.start(images)
        return self.decode(V, words, state)

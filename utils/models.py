"""PyTorch models used by the notebooks."""

import torch
import torch.nn.functional as F
from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

#: Modules an exercise hands to a learner's function: under grading they travel to the submission's worker as
#: class name, constructor arguments (`.sizes`) and weights (utils.check.wire), so each keeps its `sizes`.
PORTABLE_MODULES = ("AdditiveAttention",)


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


def conv_grid(channels=(16, 32, 64)):
    """Three stride-2 convolutions with batch normalisation: (N, 3, H, W) -> (N, channels[-1], H / 8, W / 8).

    On 64x64 images that is an 8x8 grid of 64-channel cells, the L x D features attention looks over.
    """
    c1, c2, c3 = channels
    return nn.Sequential(
        nn.Conv2d(3, c1, 5, stride=2, padding=2), nn.BatchNorm2d(c1), nn.ReLU(),
        nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
        nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.BatchNorm2d(c3), nn.ReLU())


class ImageEncoder(nn.Module):
    """A small CNN trained from scratch: (N, 3, 64, 64) floats in [0, 1] -> (N, feature) vectors.

    Three stride-2 convolutions (`conv_grid`) bring 64x64 down to an 8x8 grid of 64 channels (`grid`,
    the L x D features that attention looks over in notebook 05). Captions list objects from left to
    right and never mention height, so the vector is made from the maximum over each column of the grid:
    it keeps which column holds what, the order a caption needs, where a global average would lose it.
    """

    def __init__(self, feature=128, channels=(16, 32, 64)):
        super().__init__()
        c3 = channels[-1]
        self.grid = conv_grid(channels)
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


class AdditiveAttention(nn.Module):
    """Additive attention over L locations (Bahdanau et al.; Show, Attend and Tell's soft attention).

    forward(query (N, Q), keys (N, L, K)) -> (context (N, K), alpha (N, L)) with
    e_i = w . tanh(keys_i W_k + query W_q + b), alpha = softmax_i(e) and context = sum_i alpha_i keys_i:
    a weighted average of the locations, the weights chosen by the query. The bias b sits in W_q.
    project_keys + attend split forward in two, so that many queries about one image (a VQA batch asks
    several questions per image) can share one projection of its keys.
    """

    def __init__(self, query_dim, key_dim, hidden):
        super().__init__()
        self.sizes = (query_dim, key_dim, hidden)  # what rebuilds it elsewhere (a graded submission's worker)
        self.W_k = nn.Linear(key_dim, hidden, bias=False)
        self.W_q = nn.Linear(query_dim, hidden)
        self.w = nn.Linear(hidden, 1, bias=False)

    def project_keys(self, keys):
        return self.W_k(keys)

    def attend(self, query, keys, projected):
        """As forward, with projected = project_keys(keys) computed beforehand."""
        scores = self.w(torch.tanh(projected + self.W_q(query)[:, None])).squeeze(2)  # (N, L)
        alpha = scores.softmax(dim=1)
        return torch.bmm(alpha[:, None], keys)[:, 0], alpha

    def forward(self, query, keys):
        return self.attend(query, keys, self.project_keys(keys))


def attention_hop(u, keys, attention):
    """One stacked-attention hop: the query u (N, Q) attends over keys (N, L, Q) and adds what it saw,
    u_next = u + context. Returns (u_next, alpha). VQAModel runs the same hop, with each image's keys
    projected once for all the questions about it."""
    context, alpha = attention(u, keys)
    return u + context, alpha


class QuestionEncoder(nn.Module):
    """Many-to-one: word ids (M, T), padded with `pad` after the last real token -> (M, hidden), the LSTM's
    state after each question's last real token (the state at the padded end has also read the padding)."""

    def __init__(self, vocab_size, embed=32, hidden=128, pad=0):
        super().__init__()
        self.pad = pad
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = nn.LSTM(embed, hidden, batch_first=True)

    def forward(self, questions):
        lengths = (questions != self.pad).sum(dim=1)
        if (lengths == 0).any():
            raise ValueError(f"Question {int((lengths == 0).nonzero()[0])} has no token besides padding.")
        # a batch asks the same question about several images: run the LSTM once per distinct question
        distinct, which = torch.unique(questions, dim=0, return_inverse=True)
        states, _ = self.rnn(self.embed(distinct))
        last = (distinct != self.pad).sum(dim=1) - 1
        return states[torch.arange(len(distinct), device=questions.device), last][which]


FUSIONS = ("concat", "product")


class Fusion(nn.Module):
    """Two vectors into one, as utils.vqa_layers.fusion_forward: u (N, Q), v (N, V) -> z (N, out).

    "concat": z = [u, v] W + b = u W_q + v W_v + b; "product": z = (u W_q) * (v W_v) + b.
    """

    def __init__(self, q_dim, v_dim, out, mode="product"):
        super().__init__()
        if mode not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}; got {mode!r}.")
        self.mode = mode
        self.W_q, self.W_v = nn.Linear(q_dim, out, bias=False), nn.Linear(v_dim, out, bias=False)
        self.b = nn.Parameter(torch.zeros(out))

    def forward(self, u, v):
        a, c = self.W_q(u), self.W_v(v)
        return (a + c if self.mode == "concat" else a * c) + self.b


class VQAModel(nn.Module):
    """Question encoder + image encoder + fusion + answer classifier, with 0, 1 or more attention hops.

    forward(images (B, 3, H, W) floats in [0, 1], questions (M, T) ids, image_index (M,) which image each
    question asks about; None: question m is about image m) -> answer scores (M, n_answers); with
    return_attention=True also the attention of each hop, a list of (M, H / 8, W / 8) maps.

    The image becomes an (H / 8) x (W / 8) grid of cells (`conv_grid`). Without attention (hops=0) the whole
    grid, flattened, is mapped to one image vector v and fused with the question vector q. With attention,
    u_0 = q and each hop k attends over the cells (plus their x, y coordinates) with the query u_{k-1}:
    u_k = u_{k-1} + context_k (stacked attention, Yang et al. 2016); u_K is then fused with v as q was.
    image=False gives the question-only baseline (no CNN at all).
    Fusion "concat": z = [u, v] W + b; "product": z = (u W_u) * (v W_v) + b; then an MLP chooses the answer.
    """

    def __init__(self, vocab_size, n_answers, image=True, fusion="product", hops=0, image_size=(64, 64),
                 embed=32, hidden=64, attention_hidden=32, channels=(16, 32, 64), relation=16, pad=0):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}; got {fusion!r}.")
        if hops and not image:
            raise ValueError("Attention looks at the image: hops > 0 needs image=True.")
        self.image, self.fusion, self.n_hops = image, fusion, hops
        self.knockout = None  # a diagnostic (see vqa.knocked_out): "attention" or "image vector"
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.question = QuestionEncoder(vocab_size, embed, hidden, pad)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_answers))
        if not image:
            return
        self.grid_size = tuple(-(-s // 8) for s in self.image_size)
        cells = self.grid_size[0] * self.grid_size[1]
        self.grid = conv_grid(channels)
        self.flat = nn.Sequential(nn.Flatten(), nn.Linear(channels[-1] * cells, hidden), nn.ReLU())
        self.fuse = Fusion(hidden, hidden, hidden, fusion)
        if hops:
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, self.grid_size[0]), torch.linspace(-1, 1, self.grid_size[1]),
                                    indexing="ij")
            self.register_buffer("coords", torch.stack([xs.ravel(), ys.ravel()], dim=1), persistent=False)
            self.keys = nn.ModuleList(nn.Linear(channels[-1] + 2, hidden) for _ in range(hops))
            self.hops = nn.ModuleList(AdditiveAttention(hidden, hidden, attention_hidden) for _ in range(hops))
            # what a later hop sees of each cell relative to the previous hop's glimpse (see forward)
            self.attributes = nn.Linear(channels[-1], relation)
            self.relative = nn.ModuleList(nn.Linear(relation + 4, hidden, bias=False) for _ in range(hops - 1))

    def forward(self, images, questions, image_index=None, return_attention=False):
        u = self.question(questions)
        maps = []
        if self.image:
            if tuple(images.shape[1:]) != (3, *self.image_size):
                raise ValueError(f"images should be (N, 3, {self.image_size[0]}, {self.image_size[1]}); got "
                                 f"{tuple(images.shape)}.")
            idx = torch.arange(len(questions), device=u.device) if image_index is None else image_index
            grid = self.grid(images)                       # (B, C, gh, gw)
            v = self.flat(grid)
            if self.knockout == "image vector":           # every image gets the batch's average vector
                v = v.mean(dim=0, keepdim=True).expand_as(v)
            # index_select, not v[idx], here and below: the backward of v[idx] adds into the rows that several
            # questions share with atomic adds on the CPU, in an order that changes from run to run (the same 300
            # steps ended at losses 0.876 and 0.855 in two runs); index_select's backward sums in order.
            v = v.index_select(0, idx)                     # (M, hidden)
            if self.n_hops:
                raw = grid.flatten(2).transpose(1, 2)     # (B, L, C)
                cells = torch.cat([raw, self.coords.expand(len(raw), -1, -1)], dim=2)
                attributes = self.attributes(raw)         # (B, L, relation)
                alpha = None
                for k, (project, hop) in enumerate(zip(self.keys, self.hops, strict=True)):
                    keys = project(cells)                  # each hop sees the cells through its own projection
                    if alpha is None:                      # the first hop: one set of keys per image
                        keys = torch.tanh(keys)
                        keys, projected = keys.index_select(0, idx), hop.project_keys(keys).index_select(0, idx)
                    else:  # later hops: each cell relative to where the previous hop looked and what it saw
                        offset = self.coords[None] - (alpha @ self.coords)[:, None]          # (M, L, 2)
                        mine = attributes.index_select(0, idx)                              # (M, L, relation)
                        seen = torch.bmm(alpha[:, None], mine)                               # (M, 1, relation)
                        looked = alpha[:, :, None] * alpha.shape[1]                          # 1 if uniform
                        keys = torch.tanh(keys.index_select(0, idx) + self.relative[k - 1](torch.cat(
                            [mine * seen, offset, offset.norm(dim=2, keepdim=True), looked], dim=2)))
                        projected = hop.project_keys(keys)
                    if self.knockout == "attention":      # every cell gets the same weight
                        alpha = torch.full(keys.shape[:2], 1 / keys.shape[1], device=u.device)
                        context = keys.mean(dim=1)
                    else:
                        context, alpha = hop.attend(u, keys, projected)
                    u = u + context
                    maps.append(alpha.reshape(-1, *self.grid_size))
            u = self.fuse(u, v)
        scores = self.head(u)
        return (scores, maps) if return_attention else scores

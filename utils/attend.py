"""Training objectives, grounding measurements and gradient diagnostics for the attention captioners of
`utils.models.AttentionCaptioner` on shape world (notebook 05).

Training itself is `captioning.train_captioner` with one of the objectives below; decoding and scoring
are notebook 04's (`captioning.greedy`, `captioning.beam_captions`, `captioning.exact_match`).
"""

import copy

import numpy as np
import torch

from .captioning import greedy, image_tensor, word_loss
from .data.shapes import COLOURS, SHAPES, SIZE, Vocab
from .train import device_of


def penalty(alpha, mask):
    """The doubly stochastic penalty of every caption, sum_i (1 - sum_t alpha_ti)^2 over the caption's real
    steps: alpha (N, T, L), mask (N, T) -> (N,). A torch twin of the numpy exercise (without the mean)."""
    return (1 - (alpha * mask[..., None]).sum(dim=1)).pow(2).sum(dim=1)


def reinforce_loss(log_prob, cost, entropy, baseline, entropy_weight=0.0, decay=0.9):
    """The REINFORCE surrogate with a moving-average baseline and an entropy bonus.

    log_prob (N,): log-probability of the choices each example made (differentiable); cost (N,): the loss
    each example got with them; entropy (N,): the entropy of each example's choice distributions; baseline:
    a float, the running average of past costs. Returns (surrogate, new_baseline): the surrogate
    mean_n (cost_n - baseline) * log_prob_n - entropy_weight * mean_n entropy_n, whose gradient estimates
    the gradient of the expected cost (minus the bonus), with cost and baseline treated as constants; and
    decay * baseline + (1 - decay) * mean(cost), a float.
    """
    advantage = (cost - baseline).detach()
    surrogate = (advantage * log_prob).mean() - entropy_weight * entropy.mean()
    return surrogate, decay * baseline + (1 - decay) * float(cost.detach().mean())


class SoftObjective:
    """Teacher forcing for soft (or Gumbel) attention, plus lam * the doubly stochastic penalty.

    As in the original code the penalty is weighed against the caption's summed word loss; both are divided
    by the number of words, so the logged `loss` stays the mean loss per word, comparable across models.
    """

    def __init__(self, lam=1.0):
        self.lam = lam

    def __call__(self, model, images, words):
        V, state = model.start(images)
        scores, _, record = model.decode(V, words[:, :-1], state)
        mask = words[:, 1:] != Vocab.NULL
        nll = word_loss(scores, words[:, 1:], reduction="none").sum()
        pen = penalty(record["alpha"], mask).sum()
        n_words = mask.sum()
        total = (nll + self.lam * pen) / n_words if self.lam else nll / n_words
        return total, {"loss": nll.item() / n_words.item(), "penalty": pen.item() / len(words)}


class HardObjective:
    """Hard attention: the caption loss through the sampled locations plus the REINFORCE term for alpha.

    The decoder and encoder learn from the caption loss given the sampled context (its gradient exists);
    the attention's parameters get no gradient that way (a sampled index is not differentiable), so
    `reinforce(log_prob, cost, entropy, baseline, entropy_weight, decay)` supplies one, with each caption's
    summed word loss as its cost. Dividing the surrogate by the mean caption length makes it estimate the
    gradient of the same per-word loss (the original code scaled it by 1/10 for the same reason).
    With probability `semi` a minibatch uses the expected (soft) context instead, the original's
    semi-sampling trick; `coin` seeds that choice.
    `weight` scales the REINFORCE term against the caption loss. Measured at notebook 05's budget (1,000 steps,
    one thread, seeds 0 and 1): 0.1 and 1 wrecked training (6 to 73 % validation exact match), while 0, no
    REINFORCE at all, did about as well as 0.01 (91 / 87 % against 93 / 73 %): with semi-sampling the attention
    learns mostly from the soft minibatches.
    """

    def __init__(self, reinforce=reinforce_loss, semi=0.5, weight=0.01, entropy_weight=0.0, decay=0.9, coin=0):
        self.reinforce, self.semi, self.weight = reinforce, semi, weight
        self.entropy_weight, self.decay = entropy_weight, decay
        self.coin = np.random.default_rng(coin)
        self.baseline = 0.0

    def __call__(self, model, images, words):
        V, state = model.start(images)
        soft = self.coin.random() < self.semi
        scores, _, record = model.decode(V, words[:, :-1], state, attention="soft" if soft else None)
        mask = words[:, 1:] != Vocab.NULL
        nll = word_loss(scores, words[:, 1:], reduction="none")
        n_words = mask.sum()
        loss = nll.sum() / n_words
        logged = {"loss": loss.item()}
        if soft:
            return loss, logged
        surrogate, self.baseline = self.reinforce((record["log_prob"] * mask).sum(dim=1), nll.sum(dim=1),
                                                  (record["entropy"] * mask).sum(dim=1), self.baseline,
                                                  self.entropy_weight, self.decay)
        return loss + self.weight * surrogate * len(words) / n_words, {**logged, "baseline": self.baseline}


# ---------------------------------------------------------------- where does the model look?

def receptive_field(encoder, images, cell):
    """Which pixels reach one grid cell: the mean |d features / d pixel| over `images` (N, 3, H, W floats),
    summed over colour channels and features, as an (H, W) map. Batch norm runs in eval mode, so each image's
    gradient comes from that image alone. Pixels outside the cell's receptive field get exactly 0."""
    enc = copy.deepcopy(encoder).eval()
    x = images.clone().requires_grad_(True)
    features = enc(x)[:, cell]
    if enc.positions:
        features = features[:, :-2]  # the coordinates are constants, not computed from pixels
    grads = [torch.autograd.grad(features[:, k].sum(), x, retain_graph=True)[0].abs()
             for k in range(features.shape[1])]
    return torch.stack(grads).sum(dim=(0, 2)).mean(dim=0).numpy()


def explain(model, image, vocab, max_len):
    """The model's greedy caption of one image and where it looked for each word: (words with "<END>",
    alphas (len(words), L), chosen cells (hard and Gumbel attention) or None)."""
    ids = greedy(model, image[None], max_len)
    words = vocab.decode(ids[0]).split()
    caption = vocab.encode([" ".join(words)])
    alpha = attention_maps(model, image[None], caption)[0]
    chosen = None if model.attention == "soft" else alpha.argmax(axis=1)
    return words + ["<END>"], alpha, chosen


def box_overlap(scenes, side=16):
    """For every scene and object, the fraction of each grid cell's pixels inside the object's box:
    (N, 4, side * side), zeros for missing objects. A cell's weight, spread evenly over the SIZE / side
    pixels square it sits on, puts this fraction of its mass inside the box."""
    cell = SIZE // side
    edges = np.arange(side) * cell
    out = np.zeros((len(scenes), 4, side * side))
    for n, scene in enumerate(scenes):
        for k, t in enumerate(scene.things):
            x0, y0, x1, y1 = t.box
            fx = np.clip(np.minimum(edges + cell, x1) - np.maximum(edges, x0), 0, None) / cell
            fy = np.clip(np.minimum(edges + cell, y1) - np.maximum(edges, y0), 0, None) / cell
            out[n, k] = np.outer(fy, fx).ravel()  # rows are y, columns x: the grid's row-by-row order
    return out


def named_positions(ids, vocab):
    """For captions ids (N, T) in canonical order, the object each target word names: (N, T - 1) with the
    object's index (0 = leftmost) at colour and shape words, -1 elsewhere, and whether it is a colour word."""
    colours = {vocab.index[c] for c in COLOURS if c in vocab.index}
    shapes = {vocab.index[s] for s in SHAPES if s in vocab.index}
    targets = ids[:, 1:]
    obj = np.full(targets.shape, -1)
    is_colour = np.isin(targets, list(colours))
    for n, row in enumerate(targets):
        k = -1
        for t, w in enumerate(row):
            if w in colours:
                k += 1
            if w in colours or w in shapes:
                obj[n, t] = k
    return obj, is_colour


@torch.no_grad()
def attention_maps(model, images, ids, attention=None, batch=250):
    """Teacher-forced attention of every target position: (N, T - 1, L) alpha, the model in eval mode."""
    model.eval()
    dev = device_of(model)
    out = []
    for lo in range(0, len(ids), batch):
        V, state = model.start(image_tensor(images[lo:lo + batch], dev))
        words = torch.as_tensor(ids[lo:lo + batch, :-1], device=dev)
        out.append(model.decode(V, words, state, attention=attention)[2]["alpha"].double().cpu().numpy())
    model.train()
    return np.concatenate(out)


def _tv(a, b):
    """Total variation distance between attention maps, 0.5 * sum_i |a_i - b_i|: 0 same map, 1 no overlap."""
    return 0.5 * np.abs(a - b).sum(axis=-1)


def grounding(alpha, ids, scenes, vocab):
    """How well attention finds the object each word names, over every colour and shape word.

    Returns a dict: correctness, the mean share of alpha's mass inside the named object's box (Liu et al.,
    2017, per word rather than the maximum over a phrase); uniform, the same for uniform attention (box area /
    image area); pointing, the share of words whose most attended cell lies mostly inside the box (Zhang et
    al., 2016); and how far the map moves, as total variation 0.5 * sum_i |a_i - b_i| (0 the same map, 1 maps
    that do not overlap): moves, between consecutive words of a caption; within, from an object's colour word
    to its shape word; between, from one object's colour word to the next object's. `per_word` holds the
    correctness of each named word, for plots.
    """
    obj, is_colour = named_positions(ids, vocab)
    overlap = box_overlap(scenes, int(np.sqrt(alpha.shape[2])))
    n, t = np.nonzero(obj >= 0)
    inside = overlap[n, obj[n, t]]                                    # (words, L)
    mass = np.sum(alpha[n, t] * inside, axis=1)
    pointed = inside[np.arange(len(n)), alpha[n, t].argmax(axis=1)] >= 0.5
    real = ids[:, 1:] != Vocab.NULL
    consecutive = _tv(alpha[:, 1:], alpha[:, :-1])[real[:, 1:] & real[:, :-1]]
    cn, ct = np.nonzero(is_colour & (obj >= 0))                       # each object's colour word; shape follows
    within = _tv(alpha[cn, ct], alpha[cn, ct + 1])
    nxt = np.nonzero(cn[1:] == cn[:-1])[0]                            # consecutive objects of one caption
    between = _tv(alpha[cn[nxt], ct[nxt]], alpha[cn[nxt + 1], ct[nxt + 1]])
    return {"correctness": float(mass.mean()), "uniform": float(inside.mean(axis=1).mean()),
            "pointing": float(pointed.mean()), "moves": float(consecutive.mean()), "within": float(within.mean()),
            "between": float(between.mean()) if len(between) else float("nan"), "per_word": mass}


# ---------------------------------------------------------------- gradient estimators

def attention_parameters(model):
    """The parameters that produce alpha (the scores' weights), whose gradient hard attention must estimate."""
    return [*model.att_v.parameters(), *model.att_h.parameters(), *model.att_w.parameters()]


def _sampled_costs(model, x, words, attention):
    """One draw of the attention for the batch: (each caption's summed word loss (B,), the attention record)."""
    V, state = model.start(x)
    scores, _, record = model.decode(V, words[:, :-1], state, attention=attention, sample=True)
    return word_loss(scores, words[:, 1:], reduction="none").sum(dim=1), record


def mean_cost(model, images, ids, repeats):
    """The mean over `repeats` draws of hard attention of the batch's mean caption cost (summed word loss): the
    value a moving-average baseline settles at for this model and batch."""
    model = copy.deepcopy(model).eval()
    dev = device_of(model)
    words = torch.as_tensor(ids, device=dev)
    x = image_tensor(images, dev)
    with torch.no_grad():
        return float(np.mean([_sampled_costs(model, x, words, "hard")[0].mean().item()
                              for _ in range(repeats)]))


def gradient_samples(model, images, ids, estimator, repeats, baseline=0.0):
    """`repeats` gradient estimates of the attention parameters on one fixed batch, (repeats, P).

    estimator: "soft" (the exact gradient of the soft model's loss: deterministic), "reinforce" (the
    REINFORCE surrogate with `baseline`, scaled by the batch over its number of words as in HardObjective), or
    "gumbel" (straight-through Gumbel-softmax). Batch norm runs in eval mode, so only the sampled locations
    differ between repeats.
    """
    model = copy.deepcopy(model).eval()
    dev = device_of(model)
    words = torch.as_tensor(ids, device=dev)
    x = image_tensor(images, dev)
    n_words = (words[:, 1:] != Vocab.NULL).sum()
    params = attention_parameters(model)
    out = []
    for _ in range(repeats):
        cost, record = _sampled_costs(model, x, words, {"reinforce": "hard"}.get(estimator, estimator))
        if estimator == "reinforce":
            mask = words[:, 1:] != Vocab.NULL
            surrogate, _ = reinforce_loss((record["log_prob"] * mask).sum(dim=1), cost, torch.zeros_like(cost),
                                          baseline)
            loss = surrogate * len(words) / n_words
        else:
            loss = cost.sum() / n_words
        grads = torch.autograd.grad(loss, params)
        out.append(torch.cat([g.reshape(-1) for g in grads]).double().cpu().numpy())
    return np.array(out)

"""Training, decoding and scoring for the captioners of `utils.models` on shape world (notebook 04)."""

from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

from .data.shapes import Vocab
from .layers import temperature_sample
from .train import History, clipped_update, device, device_of, image_tensor, progress


def word_loss(scores, targets, reduction="mean"):
    """Cross-entropy of scores (N, T, V) against targets (N, T), <NULL> positions left out.

    reduction "mean": per real word; "none": (N, T), 0 at the padding.
    """
    return F.cross_entropy(scores.transpose(1, 2), targets, ignore_index=Vocab.NULL, reduction=reduction)


def caption_loss(model, images, words):
    """The plain objective: teacher forcing, the mean loss per real word. Returns (loss, values to log)."""
    loss = word_loss(model(images, words[:, :-1])[0], words[:, 1:])
    return loss, {"loss": loss.item()}


def train_captioner(model, images, ids, steps, batch=64, lr=3e-3, clip=5.0, seed=0, desc=None,
                    objective=caption_loss, on_step=None):
    """Adam for a fixed number of steps on random batches (drawn from `seed`), minimising `objective`.

    ids: (N, T) captions as <START> words <END> <NULL>...; objective(model, images, words) -> (loss, logged)
    gets a batch of images (B, 3, H, W) and their ids (B, T) and returns the loss to minimise and a dict of
    numbers to record. The default, caption_loss, is teacher forcing: the model reads ids[:, :-1] and is
    scored on predicting ids[:, 1:], with <NULL> positions left out. The learning rate falls linearly to 0.
    Returns a history dict: step, seconds (training time only), and the mean of each logged number since the
    previous entry (for caption_loss: loss, per word). on_step(step, model), if given, runs after every update,
    outside the timed part (e.g. to keep a copy of the model at some step); when it returns True, training stops
    there, part of the way through the learning-rate schedule of `steps`.
    """
    dev = device()
    model.to(dev).train()
    ids = torch.as_tensor(ids, device=dev)
    order = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda done: 1 - done / steps)
    history = History(steps, 20)
    for step in progress(1, steps + 1, desc):
        with history.timed():
            rows = order.integers(0, len(ids), batch)
            loss, logged = objective(model, image_tensor(images[rows], dev), ids[rows])
            clipped_update(model, opt, loss, clip)
            schedule.step()
        history.add(**logged)
        if history.due(step):
            history.record(step)
        if on_step is not None and on_step(step, model):
            if not history["step"] or history["step"][-1] != step:
                history.record(step)
            break
    return history


@torch.no_grad()
def greedy(model, images, max_len=20, temperature=0.0, rng=None, batch=500):
    """Decode captions word by word: the most likely next word (temperature 0) or a sample.

    Returns (N, max_len) ids, <END> included, <NULL> after it. Sampling draws from softmax(scores / T)
    with the numpy Generator rng, so a seed repeats the captions.
    """
    model.eval()
    dev = device_of(model)
    out = np.full((len(images), max_len), Vocab.NULL, dtype=np.int64)
    for lo in range(0, len(images), batch):
        v, state = model.start(image_tensor(images[lo:lo + batch], dev))
        words = torch.full((len(v), 1), Vocab.START, device=dev)
        done = np.zeros(len(v), dtype=bool)
        for t in range(max_len):
            scores, state = model.step(v, words, state)
            scores = scores[:, -1].double().cpu().numpy()
            if temperature == 0:
                nxt = scores.argmax(axis=1)
            else:
                nxt = temperature_sample(scores, temperature, rng)
            nxt[done] = Vocab.NULL
            out[lo:lo + len(v), t] = nxt
            done |= nxt == Vocab.END
            if done.all():
                break
            words = torch.as_tensor(nxt, device=dev)[:, None]
    model.train()
    return out


@torch.no_grad()
def teacher_forced_hits(model, images, ids, batch=500):
    """Teacher forcing at test time: fed the true prefix ids[:, :t], is the model's likeliest next word ids[:, t]?

    Returns (hits, mask), two boolean (N, T - 1) arrays: hits is False wherever the target is <NULL>, and mask
    marks the real targets (the words and <END>).
    """
    model.eval()
    dev = device_of(model)
    ids = np.asarray(ids)
    guesses = np.zeros((len(ids), ids.shape[1] - 1), dtype=np.int64)
    for lo in range(0, len(ids), batch):
        words = torch.as_tensor(ids[lo:lo + batch, :-1], device=dev)
        scores, _ = model(image_tensor(images[lo:lo + batch], dev), words)
        guesses[lo:lo + batch] = scores.argmax(dim=2).cpu().numpy()
    model.train()
    mask = ids[:, 1:] != Vocab.NULL
    return (guesses == ids[:, 1:]) & mask, mask


def exact_match(predicted, scenes):
    """Fraction of predicted captions (strings) equal to one of their scene's reference captions."""
    return float(np.mean([p in s.captions for p, s in zip(predicted, scenes, strict=True)]))


def objects_named(captions, scenes, held_out):
    """How often each object is named right, for objects whose colour-shape pair is held out of training and
    for the others in the same scenes: {"held-out pair": (right, total), "seen pair": (right, total)}.

    A caption names its objects as "a <colour> <shape>", left to right; captions that name a different number of
    objects than the scene has are left out (exact match already counts them wrong).
    """
    tally = {"held-out pair": [0, 0], "seen pair": [0, 0]}
    for caption, scene in zip(captions, scenes, strict=True):
        w = caption.split()
        said = [(w[k + 1], w[k + 2]) for k in range(len(w) - 2) if w[k] == "a"]
        if len(said) != len(scene.things):
            continue
        for pair, thing in zip(said, scene.things, strict=True):
            kind = tally["held-out pair" if (thing.colour, thing.shape) in held_out else "seen pair"]
            kind[0] += pair == (thing.colour, thing.shape)
            kind[1] += 1
    return {k: tuple(v) for k, v in tally.items()}


def _state_sizes(model, state):
    """The widths of the parts of a decoder state: [H] for an RNN or GRU, [H, H] for an LSTM's (h, c), and
    whatever parts a model's own state has (the attention captioner adds the attention received so far)."""
    if state is None:
        return [model.rnn.hidden_size] * (2 if model.cell == "lstm" else 1)
    return [p.shape[-1] for p in (state if isinstance(state, tuple) else (state,))]


def _state_to_numpy(state, sizes, batch):
    """The decoder state as one (B, S) float64 array, its parts side by side (zeros for None)."""
    if state is None:
        return np.zeros((batch, sum(sizes)))
    parts = state if isinstance(state, tuple) else (state,)
    return torch.cat([p[0] for p in parts], dim=1).double().cpu().numpy()


def _state_from_numpy(state, sizes, dev):
    parts = torch.as_tensor(state, dtype=torch.float32, device=dev)[None].split(sizes, dim=2)
    return tuple(parts) if len(parts) > 1 else parts[0]


def beam_step(model, image):
    """(step, state) for one image, as `decoding.beam_search` wants them: numpy in, numpy out.

    step(words (B,), state (B, S)) -> (log_probs (B, V), new_state (B, S)) runs one decoder step for B
    hypotheses of the same image; state packs the parts of the decoder's state (h, and c for an LSTM) into
    one row per hypothesis.
    """
    model.eval()
    dev = device_of(model)
    with torch.no_grad():
        v, state = model.start(image_tensor(image[None], dev))
    sizes = _state_sizes(model, state)

    @torch.no_grad()
    def step(words, state):
        words = torch.as_tensor(np.asarray(words), device=dev)[:, None]
        scores, new = model.step(v.expand(len(words), *v.shape[1:]), words, _state_from_numpy(state, sizes, dev))
        return (F.log_softmax(scores[:, -1].double(), dim=1).cpu().numpy(), _state_to_numpy(new, sizes, len(words)))

    return step, _state_to_numpy(state, sizes, 1)


def beam_captions(model, images, vocab, search, beam_width, max_len=20):
    """The best caption of each image under search(step, state, start, end, beam_width, max_len)."""
    out = []
    for image in images:
        step, state = beam_step(model, image)
        best_words, _ = search(step, state, Vocab.START, Vocab.END, beam_width, max_len)[0]
        out.append(vocab.decode(best_words))
    model.train()
    return out


@torch.no_grad()
def next_word_table(model, image, vocab, caption, k=5):
    """For each word of `caption` (and the <END> after it), the k likeliest words the model predicted there.

    Returns a list of (word, [(candidate, probability), ...]) pairs, teacher-forced on the caption.
    """
    model.eval()
    dev = device_of(model)
    ids = torch.as_tensor(vocab.encode([caption]), device=dev)
    scores, _ = model(image_tensor(image[None], dev), ids[:, :-1])
    probs = scores[0].softmax(dim=1).cpu().numpy()
    model.train()
    rows = []
    for t, target in enumerate(ids[0, 1:].tolist()):
        top = np.argsort(-probs[t])[:k]
        rows.append((vocab.words[target], [(vocab.words[i], float(probs[t, i])) for i in top]))
    return rows


def blind_loss(ids):
    """The lowest loss per word a model can reach without looking at the image: the entropy of each next word
    given all the words before it, measured on the captions `ids` themselves (in nats, like the training loss)."""
    counts, prefixes = Counter(), Counter()
    for row in ids.tolist():
        for t in range(1, len(row)):
            if row[t] == Vocab.NULL:
                break
            counts[tuple(row[:t + 1])] += 1
            prefixes[tuple(row[:t])] += 1
    words = sum(counts.values())
    return -sum(k * np.log(k / prefixes[seq[:-1]]) for seq, k in counts.items()) / words


def image_gradient_by_position(model, images, ids):
    """How strongly each position's loss reaches the image vector v: the mean over the batch of
    ||d loss_t / d v|| for every target position t (positions past a caption's end are NaN)."""
    dev = device_of(model)
    model.eval()
    ids = torch.as_tensor(ids, device=dev)
    v, state = model.start(image_tensor(images, dev))
    scores, _ = model.step(v, ids[:, :-1], state)
    losses = F.cross_entropy(scores.transpose(1, 2), ids[:, 1:], reduction="none")  # (N, T)
    norms = np.full(losses.shape, np.nan)
    for t in range(losses.shape[1]):
        live = ids[:, t + 1] != Vocab.NULL
        if not live.any():
            break
        grad, = torch.autograd.grad(losses[:, t].sum(), v, retain_graph=True)
        norms[live.cpu().numpy(), t] = grad[live].norm(dim=1).cpu().numpy()
    model.train()
    return np.nanmean(norms, axis=0)

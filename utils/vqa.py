"""Visual question answering (notebook 06): questions as ids, training, answering, scoring and looking inside.

The training helper and the scorers work for any images (N, 3, H, W) floats in [0, 1] (or shape world's uint8
(N, H, W, 3)), any tokenised questions and any answer set. Questions are rows of word ids padded with
Vocab.NULL; `image_index[m]` says which image question m asks about, so one image can carry several
questions and the CNN looks at it once for all of them.
"""

import re
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data.shapes import QUESTION_GROUPS
from .train import History, clipped_update, device, device_of, image_tensor, progress


def tokenize(text):
    """A typed question as the generator writes it: lower case, "?" and "," as words of their own."""
    return " ".join(re.sub(r"([?,])", r" \1 ", text.lower()).split())


@dataclass
class Questions:
    """A flat table of questions: the m-th question, its type, its answer and the row of its image."""

    text: list
    types: list
    answers: list
    image_index: np.ndarray

    def __len__(self):
        return len(self.text)

    @classmethod
    def of(cls, scenes, per_scene=None):
        """The questions of shape-world scenes: their balanced `questions`, or per_scene[i] for scene i."""
        rows = [(i, q) for i, s in enumerate(scenes) for q in (s.questions if per_scene is None else per_scene[i])]
        return cls([q for _, (_, q, _) in rows], [t for _, (t, _, _) in rows], [a for _, (_, _, a) in rows],
                   np.array([i for i, _ in rows], dtype=np.int64))

    def where(self, keep):
        """The questions for which keep (a boolean array) is true."""
        keep = np.asarray(keep, dtype=bool)
        pick = np.flatnonzero(keep)
        return Questions([self.text[i] for i in pick], [self.types[i] for i in pick],
                         [self.answers[i] for i in pick], self.image_index[pick])


class Answers:
    """The answer set: answers <-> class ids."""

    def __init__(self, answers):
        self.words = sorted(set(answers))
        self.index = {a: i for i, a in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    def encode(self, answers):
        unknown = sorted(set(answers) - set(self.index))
        if unknown:
            raise ValueError(f"Answers never seen in training: {unknown}; the answer set is {self.words}.")
        return np.array([self.index[a] for a in answers], dtype=np.int64)


def unknown_words(vocab, question):
    """The words of `question` that `vocab` does not know, in order."""
    return [w for w in question.split() if w not in vocab.index]


def _image_batch(images, rows, dev):
    """Rows of `images` as a float tensor (B, 3, H, W) in [0, 1]: shape world's uint8 (N, H, W, 3) converted,
    floats (N, 3, H, W) taken as they are."""
    if images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3:
        return image_tensor(images[rows], dev)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images should be floats (N, 3, H, W) in [0, 1] or uint8 (N, H, W, 3); got "
                         f"{images.dtype} {tuple(images.shape)}.")
    return torch.as_tensor(np.asarray(images[rows]), dtype=torch.float32, device=dev)


def _by_image(image_index, n_images):
    """For each image, the rows of the questions about it (a list of arrays)."""
    order = np.argsort(image_index, kind="stable")
    bounds = np.searchsorted(image_index[order], np.arange(n_images + 1))
    return [order[bounds[i]:bounds[i + 1]] for i in range(n_images)]


def _check_table(images, ids, answers, image_index):
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"questions should be (M, T) integer ids; got {ids.dtype} {ids.shape}.")
    image_index = np.arange(len(ids)) if image_index is None else np.asarray(image_index, dtype=np.int64)
    if image_index.shape != (len(ids),) or (answers is not None and len(answers) != len(ids)):
        raise ValueError(f"{len(ids)} questions need as many answers and image indices; got "
                         f"{None if answers is None else len(answers)} answers and {image_index.shape} indices.")
    if len(ids) and (image_index.min() < 0 or image_index.max() >= len(images)):
        raise ValueError(f"image_index must lie in [0, {len(images)}); got {image_index.min()}..{image_index.max()}.")
    return ids, image_index


def train_vqa(model, images, questions, answers, steps, image_index=None, batch=16, lr=5e-3, clip=5.0, seed=0,
              desc=None):
    """Adam on the cross-entropy of the answers, for a fixed number of steps, the learning rate falling to 0.

    questions: (M, T) ids; answers: (M,) class ids; image_index: (M,) the image of each question (None: one
    question per image, in order). Each step draws `batch` images (from `seed`) and trains on every question
    about them. Returns a History: step, seconds (training only), loss and accuracy on the training batches.
    """
    ids, image_index = _check_table(images, questions, answers, image_index)
    dev = device()
    model.to(dev).train()
    ids, answers = torch.as_tensor(ids, device=dev), torch.as_tensor(np.asarray(answers), device=dev)
    by_image = _by_image(image_index, len(images))
    asked = np.array([i for i, rows in enumerate(by_image) if len(rows)])
    draw = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda done: 1 - done / steps)
    history = History(steps, 20)
    for step in progress(1, steps + 1, desc):
        with history.timed():
            picked = asked[draw.integers(0, len(asked), batch)]
            rows = np.concatenate([by_image[i] for i in picked])
            local = np.repeat(np.arange(batch), [len(by_image[i]) for i in picked])
            scores = model(_image_batch(images, picked, dev) if model.image else None, ids[rows],
                           torch.as_tensor(local, device=dev))
            loss = F.cross_entropy(scores, answers[rows])
            clipped_update(model, opt, loss, clip)
            schedule.step()
        history.add(loss=loss.item(), accuracy=(scores.argmax(1) == answers[rows]).float().mean().item())
        if history.due(step):
            history.record(step)
    return history


@torch.no_grad()
def answer_probabilities(model, images, questions, image_index=None, batch=256, attention=False):
    """softmax of the model's scores, (M, n_answers) float64, for questions (M, T) about rows of images.

    With attention=True also each hop's attention maps, a list of (M, gh, gw) arrays.
    """
    ids, image_index = _check_table(images, questions, None, image_index)
    model.eval()
    dev = device_of(model)
    probs = np.zeros((len(ids), model.head[-1].out_features))
    maps = [np.zeros((len(ids), *model.grid_size)) for _ in range(model.n_hops)] if attention else []
    by_image = _by_image(image_index, len(images))
    for lo in range(0, len(images), batch):
        picked = np.arange(lo, min(lo + batch, len(images)))
        rows = np.concatenate([by_image[i] for i in picked])
        if not len(rows):
            continue
        local = torch.as_tensor(image_index[rows] - lo, device=dev)
        scores, alphas = model(_image_batch(images, picked, dev) if model.image else None,
                               torch.as_tensor(ids[rows], device=dev), local, return_attention=True)
        probs[rows] = scores.double().softmax(dim=1).cpu().numpy()
        for m, a in zip(maps, alphas, strict=False):
            m[rows] = a.double().cpu().numpy()
    model.train()
    return (probs, maps) if attention else probs


def _by_type(values, types):
    """The mean of per-question values for every question type, for each group of types, and "overall"."""
    values, types = np.asarray(values, dtype=float), np.asarray(types)
    out = {t: float(values[types == t].mean()) for t in dict.fromkeys(types.tolist())}
    for group, members in QUESTION_GROUPS.items():
        mask = np.isin(types, members)
        if mask.any():
            out[group] = float(values[mask].mean())
    out["overall"] = float(values.mean())
    return out


def accuracy_by_type(predicted, answers, types):
    """{type: accuracy} for every question type, plus the two groups and "overall" (over all questions).

    predicted, answers: (M,) class ids (or strings); types: (M,) question types.
    """
    return _by_type(np.asarray(predicted) == np.asarray(answers), types)


def chance_by_type(answers, types):
    """The accuracy of always giving a type's commonest answer (chance on a balanced set), by type and group."""
    counts = defaultdict(lambda: defaultdict(int))
    for a, t in zip(answers, types, strict=True):
        counts[t][a] += 1
    best = {t: max(c.values()) / sum(c.values()) for t, c in counts.items()}
    return _by_type([best[t] for t in types], types)


def cells_inside(box, grid_size, image_size):
    """(gh, gw) booleans: the grid cells whose centre lies inside box (x0, y0, x1, y1), in image pixels."""
    (gh, gw), (H, W) = grid_size, image_size
    cy, cx = (np.arange(gh) + 0.5) * H / gh, (np.arange(gw) + 0.5) * W / gw
    x0, y0, x1, y1 = box
    return ((cy >= y0) & (cy < y1))[:, None] & ((cx >= x0) & (cx < x1))[None, :]


def where_it_looks(maps, scenes, table, referents, image_size=(64, 64)):
    """How often each hop's peak falls on the object it should find, against the chance of a random cell.

    maps: each hop's attention (M, gh, gw); referents(scene, type, question) -> (first, second) objects (None
    where there is none). Returns {(type, hop, which): (hit rate, chance, number of questions)}: which is
    "first" or "second", chance the mean share of cells inside that object's box.
    """
    found = defaultdict(list)
    for m, (text, qtype) in enumerate(zip(table.text, table.types, strict=True)):
        objects = referents(scenes[table.image_index[m]], qtype, text)
        for which, thing in zip(("first", "second"), objects, strict=True):
            if thing is None:
                continue
            for hop, alpha in enumerate(maps, start=1):
                inside = cells_inside(thing.box, alpha.shape[1:], image_size)
                peak = np.unravel_index(np.argmax(alpha[m]), inside.shape)
                found[qtype, hop, which].append((inside[peak], inside.mean()))
    return {key: (float(np.mean([h for h, _ in v])), float(np.mean([c for _, c in v])), len(v))
            for key, v in found.items()}


KNOCKOUTS = ("attention", "image vector")


@contextmanager
def knocked_out(model, part):
    """Inside the block the model answers without one of its parts: "attention" gives every cell the same weight
    (each glimpse becomes the average cell), "image vector" gives every image the batch's average vector v.
    What the accuracy loses on a question type says which part the model relies on for it."""
    if part not in KNOCKOUTS:
        raise ValueError(f"part must be one of {KNOCKOUTS}; got {part!r}.")
    model.knockout = part
    try:
        yield model
    finally:
        model.knockout = None


def ask(model, vocab, answers, image, question, k=5):
    """Answer a typed question about one image: ([(answer, probability)] for the k likeliest, attention maps).

    image: (3, H, W) floats in [0, 1] or (H, W, 3) uint8. Raises ValueError naming any word the model never saw
    in training (and the words it knows), or when the question is empty.
    """
    words = tokenize(question)
    if not words:
        raise ValueError("Type a question, e.g. 'is there a red circle ?'.")
    unknown = unknown_words(vocab, words)
    if unknown:
        known = ", ".join(w for w in vocab.words if w not in ("<NULL>", "<START>", "<END>", "<UNK>"))
        raise ValueError(f"The model has never seen the word{'s' * (len(unknown) > 1)} "
                         f"{', '.join(repr(w) for w in unknown)}. It knows only these {len(vocab) - 4} words: {known}.")
    probs, maps = answer_probabilities(model, np.asarray(image)[None], vocab.encode([words]), attention=True)
    top = np.argsort(-probs[0])[:k]
    return [(answers.words[i], float(probs[0, i])) for i in top], [m[0] for m in maps]

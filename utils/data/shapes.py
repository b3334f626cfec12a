"""Shape world: generated 64x64 scenes with captions and questions, the images of notebooks 04-06.

No captioning dataset can be downloaded when the notebooks run, and COCO is not a laptop dataset anyway,
so the course draws its own. A scene holds 1-4 coloured shapes that do not overlap; every (colour, shape)
pair appears at most once, so every phrase such as "the red circle" names exactly one object.

Every random choice comes from `random.Random(f"shapes/{split}/{index}")`, whose stream is specified by
Python and stable across versions; numpy only rasterises. The same split and index therefore give the
same scene, pixel for pixel, on any machine, and scene i can be drawn without drawing scenes 0..i-1.

Three compositions (HELD_OUT) never appear in the train, val or test splits; the "novel" split has at
least one of them in every scene. It measures whether a model composes "red" and "triangle" it has
seen apart, or only repeats pairs it has seen together.
"""

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .corpus import CACHE, _sha256

SIZE = 64
BACKGROUND = (24, 24, 32)
COLOURS = {
    "red": (220, 50, 47),
    "green": (60, 180, 75),
    "blue": (50, 100, 240),
    "yellow": (240, 210, 50),
    "purple": (160, 70, 210),
    "white": (235, 235, 235),
}
SHAPES = ("circle", "square", "triangle")
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles"}
#: Never in train/val/test; every "novel" scene has at least one. Each colour and shape still occurs
#: in training with other partners.
HELD_OUT = (("red", "triangle"), ("green", "circle"), ("blue", "square"))
MIN_SIDE, MAX_SIDE = 12, 20  # an object's bounding box is a square of this many pixels
GAP = 2                      # at least this many pixels between the boxes of two objects
MIN_DX = 4                   # object centres differ this much horizontally, so "left to right" is unambiguous
SPLITS = {"train": 30_000, "val": 1_000, "test": 1_000, "novel": 1_000}
QUESTION_TYPES = ("colour", "shape", "count", "exist", "spatial")
VERSION = 1  # bump when the generator's output changes: the cache is rebuilt when its manifest differs
SPECIALS = ("<NULL>", "<START>", "<END>", "<UNK>")


@dataclass(frozen=True)
class Thing:
    """One object: its colour, shape and bounding box (x0, y0, x1, y1), end-exclusive pixel indices."""

    colour: str
    shape: str
    box: tuple

    @property
    def name(self):
        return f"{self.colour} {self.shape}"

    @property
    def centre_x(self):
        return (self.box[0] + self.box[2]) / 2


@dataclass
class Scene:
    """A scene: its objects from left to right, its captions (the first is the canonical one) and questions.

    `questions` holds (type, question, answer) triples; see make_questions and balance_questions.
    """

    split: str
    index: int
    things: list
    captions: list
    questions: list = field(default_factory=list)


def _overlaps(a, b):
    return not (a[2] + GAP <= b[0] or b[2] + GAP <= a[0] or a[3] + GAP <= b[1] or b[3] + GAP <= a[1])


def _pick_classes(rng, n, split):
    """n distinct (colour, shape) pairs allowed in `split`: no held-out pair outside "novel", at least one in it."""
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    held = set(HELD_OUT)
    while True:
        chosen = rng.sample(pairs, n)
        has_held = any(p in held for p in chosen)
        if has_held == (split == "novel"):
            return chosen


def _place(rng, n):
    """n boxes that keep GAP pixels apart and have distinct enough centres; retries until they fit."""
    while True:
        boxes = []
        for _ in range(200):
            side = rng.randint(MIN_SIDE, MAX_SIDE)
            x0, y0 = rng.randint(1, SIZE - side - 1), rng.randint(1, SIZE - side - 1)
            box = (x0, y0, x0 + side, y0 + side)
            cx = x0 + side / 2
            if all(not _overlaps(box, b) and abs(cx - (b[0] + b[2]) / 2) >= MIN_DX for b in boxes):
                boxes.append(box)
                if len(boxes) == n:
                    return boxes
        # a crowded start can leave no room: begin again (rare, and deterministic for the seed)


def describe(things):
    """The captions of objects listed left to right; the first is the canonical one the models learn.

    One object: "a red circle". Two: "a red circle left of a blue square" (and "… right of …" the other
    way round). Three or four: "a red circle , a blue square and a green triangle".
    """
    names = [f"a {t.name}" for t in things]
    if len(names) == 1:
        return [names[0]]
    if len(names) == 2:
        return [f"{names[0]} left of {names[1]}", f"{names[1]} right of {names[0]}"]
    return [" , ".join(names[:-1]) + " and " + names[-1]]


def make_scene(split, index):
    """Scene `index` of `split`, the same on every machine."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {sorted(SPLITS)}.")
    rng = random.Random(f"shapes/{split}/{index}")
    n = rng.randint(1, 4)
    classes = _pick_classes(rng, n, split)
    things = sorted((Thing(c, s, b) for (c, s), b in zip(classes, _place(rng, n), strict=True)),
                    key=lambda t: t.centre_x)
    return Scene(split, index, things, describe(things))


def render(scene):
    """The scene's image: (SIZE, SIZE, 3) uint8. Pixel centres are sampled, so edges are hard."""
    img = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    for t in scene.things:
        x0, y0, x1, y1 = t.box
        ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
        side = x1 - x0
        if t.shape == "circle":
            mask = (xs - (x0 + x1) / 2) ** 2 + (ys - (y0 + y1) / 2) ** 2 <= (side / 2) ** 2
        elif t.shape == "square":
            mask = np.ones(xs.shape, dtype=bool)
        else:  # an upright triangle: the apex at the top centre, the base along the bottom of the box
            mask = np.abs(xs - (x0 + x1) / 2) <= (ys - y0) / 2  # half-width grows from 0 to side / 2
        img[y0:y1, x0:x1][mask] = COLOURS[t.colour]
    return img


# ---------------------------------------------------------------- questions (for notebook 06)

def candidate_questions(scene):
    """Every question of each type this scene can answer unambiguously: {type: [(question, answer), ...]}."""
    things = scene.things
    present = {(t.colour, t.shape) for t in things}
    shape_count = Counter(t.shape for t in things)
    colour_count = Counter(t.colour for t in things)
    out = {q: [] for q in QUESTION_TYPES}
    for s in SHAPES:
        if shape_count[s] == 1:
            (t,) = [t for t in things if t.shape == s]
            out["colour"].append((f"what colour is the {s} ?", t.colour))
        out["count"].append((f"how many {PLURAL[s]} are there ?", str(shape_count[s])))
    out["count"].append(("how many objects are there ?", str(len(things))))
    for c in COLOURS:
        if colour_count[c] == 1:
            (t,) = [t for t in things if t.colour == c]
            out["shape"].append((f"what shape is the {c} object ?", t.shape))
        for s in SHAPES:
            if (c, s) not in HELD_OUT or scene.split == "novel":
                out["exist"].append((f"is there a {c} {s} ?", "yes" if (c, s) in present else "no"))
    for a in things:
        for b in things:
            if a is not b:
                answer = "yes" if a.centre_x < b.centre_x else "no"
                out["spatial"].append((f"is the {a.name} left of the {b.name} ?", answer))
    return out


def balance_questions(scenes, seed):
    """Give each scene at most one question per type so that, per type, every answer is equally common.

    A model can then score no better than chance on a type by guessing from the question alone. Greedy
    first (each scene takes the candidate whose answer is rarest so far), then the surplus of the commoner
    answers is dropped, latest first, so the counts end exactly equal.
    """
    rng = random.Random(f"questions/{seed}")
    answers = {q: Counter() for q in QUESTION_TYPES}
    chosen = []
    for scene in scenes:
        picks = {}
        for qtype, cands in candidate_questions(scene).items():
            if not cands:
                continue
            lowest = min(answers[qtype][a] for _, a in cands)
            question, answer = rng.choice([(q, a) for q, a in cands if answers[qtype][a] == lowest])
            answers[qtype][answer] += 1
            picks[qtype] = (question, answer)
        chosen.append(picks)
    for qtype in QUESTION_TYPES:
        keep = min(answers[qtype].values())
        kept = Counter()
        for picks in chosen:
            if qtype in picks:
                answer = picks[qtype][1]
                kept[answer] += 1
                if kept[answer] > keep:
                    del picks[qtype]
    for scene, picks in zip(scenes, chosen, strict=True):
        scene.questions = [(q, *picks[q]) for q in QUESTION_TYPES if q in picks]
    return scenes


# ---------------------------------------------------------------- datasets, vocabulary, cache

@dataclass
class ShapeSet:
    """A split: images (N, 64, 64, 3) uint8 and the scenes, in the same order."""

    split: str
    images: np.ndarray
    scenes: list

    def __len__(self):
        return len(self.scenes)

    @property
    def captions(self):
        """The canonical caption of every scene."""
        return [s.captions[0] for s in self.scenes]


def generate(split, n=None):
    """Draw the first n scenes of a split (all of it by default), with images and balanced questions."""
    n = SPLITS[split] if n is None else n
    scenes = balance_questions([make_scene(split, i) for i in range(n)], seed=split)
    images = np.stack([render(s) for s in scenes]) if scenes else np.empty((0, SIZE, SIZE, 3), np.uint8)
    return ShapeSet(split, images, scenes)


def _scene_to_json(scene):
    d = asdict(scene)
    d["things"] = [[t["colour"], t["shape"], list(t["box"])] for t in d["things"]]
    d["questions"] = [list(q) for q in d["questions"]]
    return d


def _scene_from_json(d):
    things = [Thing(c, s, tuple(b)) for c, s, b in d["things"]]
    return Scene(d["split"], d["index"], things, d["captions"], [tuple(q) for q in d["questions"]])


def serialise(shapeset):
    """The split as two byte strings, images and scenes; their sha256s are what the manifest pins."""
    scenes = json.dumps([_scene_to_json(s) for s in shapeset.scenes], separators=(",", ":")).encode()
    return np.ascontiguousarray(shapeset.images).tobytes(), scenes


def fingerprint(shapeset):
    """One sha256 over a split's images and scenes: equal on every machine for the same generator."""
    images, scenes = serialise(shapeset)
    return _sha256(images + scenes)


def _manifest_expected(split):
    """What a cache must have been made with: any change to the generator's settings forces a rebuild."""
    settings = [VERSION, SIZE, BACKGROUND, COLOURS, SHAPES, HELD_OUT, MIN_SIDE, MAX_SIDE, GAP, MIN_DX]
    return {"version": VERSION, "split": split, "scenes": SPLITS[split],
            "settings": _sha256(json.dumps(settings).encode())}


def _write(split, root):
    data = generate(split)
    images, scenes = serialise(data)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{split}.images").write_bytes(images)
    (root / f"{split}.json").write_bytes(scenes)
    manifest = _manifest_expected(split) | {
        "files": {f"{split}.images": _sha256(images),
                  f"{split}.json": _sha256(scenes)}}
    (root / f"{split}.manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return data


class _Stale(Exception):
    """The cached split cannot be used; the message says why."""


def _read_cache(split, root):
    """The cached split's images (writable uint8, flat) and scene records, each file read once and checked
    against the manifest; raises _Stale saying why the cache cannot be used."""
    path = root / f"{split}.manifest.json"
    if not path.exists():
        raise _Stale("it is not there yet")
    try:
        manifest = json.loads(path.read_text())
    except ValueError:
        raise _Stale("its manifest is unreadable") from None
    if any(manifest.get(k) != v for k, v in _manifest_expected(split).items()):
        raise _Stale("it was made by another version or other settings of the generator")
    names = (f"{split}.images", f"{split}.json")
    if set(manifest.get("files", {})) != set(names):
        raise _Stale("its manifest lists the wrong files")
    for name in names:
        if not (root / name).exists():
            raise _Stale(f"{name} is missing")
    images = np.fromfile(root / names[0], dtype=np.uint8)  # writable, unlike a view of bytes
    scenes = (root / names[1]).read_bytes()
    for name, data in zip(names, (images, scenes), strict=True):
        if _sha256(data) != manifest["files"][name]:
            raise _Stale(f"{name} does not match its sha256 in the manifest (damaged or edited)")
    return images, scenes


def load_shapes(split, root=None, quiet=False):
    """A split of shape world from the cache under data/, (re)built first if missing or damaged.

    A damaged cache is never used: it is rebuilt, with a message saying why.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {sorted(SPLITS)}.")
    root = Path(root) if root is not None else CACHE / "shapes"
    try:
        images, scenes = _read_cache(split, root)
    except _Stale as why:
        if not quiet:
            print(f"Building shape world {split!r} ({SPLITS[split]:,} scenes) in {root}: {why}.")
        return _write(split, root)
    scenes = [_scene_from_json(d) for d in json.loads(scenes)]
    return ShapeSet(split, images.reshape(len(scenes), SIZE, SIZE, 3), scenes)


# ---------------------------------------------------------------- words

class Vocab:
    """Words <-> ids. Ids 0-3 are <NULL> (padding), <START>, <END> and <UNK> (a word never seen in training)."""

    NULL, START, END, UNK = range(4)

    def __init__(self, words):
        self.words = list(SPECIALS) + sorted(set(words) - set(SPECIALS))
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    @classmethod
    def from_captions(cls, captions):
        return cls(w for c in captions for w in c.split())

    def encode(self, captions, length=None):
        """Captions -> (N, length) int64 ids: <START> words <END>, then <NULL> padding."""
        rows = [[self.START] + [self.index.get(w, self.UNK) for w in c.split()] + [self.END] for c in captions]
        length = max(map(len, rows)) if length is None else length
        if any(len(r) > length for r in rows):
            need = max(map(len, rows))
            raise ValueError(f"A caption needs {need} tokens with <START> and <END>; length is {length}.")
        out = np.full((len(rows), length), self.NULL, dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out

    def decode(self, ids):
        """One row of ids -> the caption's words, stopping at <END> and skipping <START> and <NULL>."""
        words = []
        for i in np.asarray(ids).ravel():
            if i == self.END:
                break
            if i not in (self.NULL, self.START):
                words.append(self.words[int(i)])
        return " ".join(words)

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
from collections import Counter, defaultdict
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
DIST_MARGIN = 8              # "closest"/"furthest" are asked only when the runner-up is this much further (a grid cell)
#: Questions about one object or one kind of object, and questions about how two objects relate.
NON_RELATIONAL = ("colour", "shape", "count", "exist")
RELATIONAL = ("spatial", "closest", "furthest", "compare", "count_same")
QUESTION_GROUPS = {"non-relational": NON_RELATIONAL, "relational": RELATIONAL}
QUESTION_TYPES = NON_RELATIONAL + RELATIONAL
YES_NO = ("yes", "no")
#: Every answer each type can have; after balancing, each is exactly as common as the others.
ANSWERS = {"colour": tuple(COLOURS), "shape": SHAPES, "count": ("0", "1", "2", "3"), "exist": YES_NO,
           "spatial": YES_NO, "closest": SHAPES, "furthest": tuple(COLOURS), "compare": YES_NO,
           "count_same": ("0", "1", "2")}
PAIRED = tuple(q for q in QUESTION_TYPES if ANSWERS[q] == YES_NO)  # a "yes" and a "no" question per scene
VERSION = 2  # bump when the generator's output changes: the cache is rebuilt when its manifest differs
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

    @property
    def centre(self):
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


@dataclass
class Scene:
    """A scene: its objects from left to right, its captions (the first is the canonical one) and questions.

    `questions` holds (type, question, answer) triples; see candidate_questions and balance_questions.
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

def _distance(a, b):
    (ax, ay), (bx, by) = a.centre, b.centre
    return ((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5


def _extreme(things, ref, far):
    """The object closest to (far=False) or furthest from `ref`, or None when the runner-up is within
    DIST_MARGIN pixels of it, so that no one has to measure to tell."""
    others = sorted((t for t in things if t is not ref), key=lambda t: _distance(t, ref), reverse=far)
    if len(others) < 2 or abs(_distance(others[0], ref) - _distance(others[1], ref)) < DIST_MARGIN:
        return None
    return others[0]


def candidate_questions(scene):
    """Every question of each type this scene answers unambiguously: {type: [(question, answer), ...]}.

    Objects are named so that the name picks exactly one: "the red circle" always does (no pair repeats),
    "the red object" only when red occurs once in the scene, "the leftmost object" always.
    """
    things = scene.things
    present = {(t.colour, t.shape) for t in things}
    shape_count = Counter(t.shape for t in things)
    colour_count = Counter(t.colour for t in things)
    by_colour = {t.colour: t for t in things if colour_count[t.colour] == 1}
    out = {q: [] for q in QUESTION_TYPES}
    out["colour"] = [("what colour is the leftmost object ?", things[0].colour),
                     ("what colour is the rightmost object ?", things[-1].colour)]
    out["shape"] = [(f"what shape is the {c} object ?", t.shape) for c, t in by_colour.items()]
    out["count"] = [(f"how many {PLURAL[s]} are there ?", str(shape_count[s]))
                    for s in SHAPES if str(shape_count[s]) in ANSWERS["count"]]
    out["exist"] = [(f"is there a {c} {s} ?", "yes" if (c, s) in present else "no") for c in COLOURS for s in SHAPES]
    for a in things:
        for b in things:
            if a is not b:
                out["spatial"].append((f"is the {a.name} left of the {b.name} ?",
                                       "yes" if a.centre_x < b.centre_x else "no"))
        closest, furthest = _extreme(things, a, far=False), _extreme(things, a, far=True)
        if closest is not None:
            out["closest"].append((f"what shape is the object closest to the {a.name} ?", closest.shape))
        if furthest is not None:
            out["furthest"].append((f"what colour is the object furthest from the {a.name} ?", furthest.colour))
    if len(things) > 1:  # named by position: a name by colour or shape would hint at the other attribute
        for attribute in ("colour", "shape"):
            same = getattr(things[0], attribute) == getattr(things[-1], attribute)
            out["compare"].append((f"is the leftmost object the same {attribute} as the rightmost object ?",
                                   "yes" if same else "no"))
    for c, t in by_colour.items():
        others = str(shape_count[t.shape] - 1)
        if others in ANSWERS["count_same"]:
            out["count_same"].append((f"how many other objects have the same shape as the {c} object ?", others))
    return out


def balance_questions(scenes, seed):
    """Choose each scene's questions so that neither the question alone nor the picture alone gives the answer.

    Per question *string* (not just per type), every answer of its type ends up exactly equally common, so any
    model that reads only the question, however clever, scores exactly chance on each type. A string that these
    scenes can never answer with some answer of its type is not asked at all: outside the novel split a red
    object is never a triangle, so "what shape is the red object ?" would give its answer away.
    Yes/no types ask one "yes" and one "no" question of the same scene, so the picture alone cannot tell which
    is which; the other types ask one question per scene (a picture does limit what its answers can be).

    Greedy first (each scene takes, per type, the question whose answer its string needs most, ties broken by
    the type's rarest answer, then by the seeded stream; never more of a string's answer than scenes offer its
    rarest one), then the surplus of every string's commoner answers is dropped, latest scene first, so the
    counts end exactly equal (this breaks a few pairs).
    """
    rng = random.Random(f"questions/{seed}")
    candidates = [candidate_questions(s) for s in scenes]
    offered = defaultdict(Counter)           # (type, question) -> how many scenes offer it with each answer
    for cands in candidates:
        for qtype, pairs in cands.items():
            for question, answer in pairs:
                offered[qtype, question][answer] += 1
    # a string can be kept with each answer at most as often as scenes offer its rarest one; 0: never asked
    cap = {key: min(c[a] for a in ANSWERS[key[0]]) for key, c in offered.items()}
    counts = defaultdict(Counter)            # (type, question) -> answer counts so far
    totals = {q: Counter() for q in QUESTION_TYPES}
    chosen = []
    for cands in candidates:
        picks = []
        for qtype in QUESTION_TYPES:
            options = [(q, a) for q, a in cands[qtype] if counts[qtype, q][a] < cap[qtype, q]]
            groups = [[o for o in options if o[1] == a] for a in ANSWERS[qtype]] if qtype in PAIRED else [options]
            if not all(groups):
                continue
            for group in groups:
                def need(option, qtype=qtype):
                    seen = counts[qtype, option[0]]
                    return (max(seen.values(), default=0) - seen[option[1]], -totals[qtype][option[1]])
                best = max(map(need, group))
                question, answer = rng.choice([o for o in group if need(o) == best])
                counts[qtype, question][answer] += 1
                totals[qtype][answer] += 1
                picks.append((qtype, question, answer))
        chosen.append(picks)
    keep = {key: min(c[a] for a in ANSWERS[key[0]]) for key, c in counts.items()}
    kept = defaultdict(Counter)
    for picks in chosen:
        for pick in list(picks):
            qtype, question, answer = pick
            kept[qtype, question][answer] += 1
            if kept[qtype, question][answer] > keep[qtype, question]:
                picks.remove(pick)
    order = {q: i for i, q in enumerate(QUESTION_TYPES)}
    for scene, picks in zip(scenes, chosen, strict=True):
        scene.questions = sorted(picks, key=lambda p: order[p[0]])
    return scenes


def referents(scene, qtype, question):
    """(first, second): the object a question's first hop should find and the one its second should, or None.

    first is the object the question names (the leftmost/rightmost for colour questions, the first of two
    named objects); second is the other named object (spatial, compare) or, for closest/furthest, the object
    the answer is about. Counting questions, and exist-questions about an absent object, have no single object.
    """
    words, things = question.split(), scene.things
    named = []
    for i, w in enumerate(words[:-1]):
        nxt = words[i + 1]
        if w in ("leftmost", "rightmost"):
            named.append(things[0] if w == "leftmost" else things[-1])
        elif w in ("the", "a") and nxt in COLOURS and words[i + 2] in SHAPES:  # "is there a red circle ?"
            named += [t for t in things if t.name == f"{nxt} {words[i + 2]}"]
        elif w == "the" and nxt in COLOURS:
            named += [t for t in things if t.colour == nxt]
        elif w == "the" and nxt in SHAPES:
            named += [t for t in things if t.shape == nxt]
    if qtype in ("closest", "furthest"):
        named.append(_extreme(things, named[0], far=qtype == "furthest"))
    if qtype == "count" or len(named) > 2:
        return None, None
    return (named + [None, None])[0], (named + [None, None])[1]


def natural_questions(scenes, seed):
    """One question per type and scene, drawn uniformly from its candidates: answers at their natural frequencies.

    Most colour-shape pairs are absent from any one scene, so "is there a ... ?" is mostly "no", and "how many
    triangles" is mostly 0 or 1: the unbalanced questions that let a model answer from the question alone.
    Returns one list of (type, question, answer) per scene; the scenes are left as they are.
    """
    rng = random.Random(f"natural/{seed}")
    out = []
    for scene in scenes:
        cands = candidate_questions(scene)
        out.append([(q, *rng.choice(cands[q])) for q in QUESTION_TYPES if cands[q]])
    return out


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
    settings = [VERSION, SIZE, BACKGROUND, COLOURS, SHAPES, HELD_OUT, MIN_SIDE, MAX_SIDE, GAP, MIN_DX, DIST_MARGIN,
                QUESTION_GROUPS, ANSWERS]
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

"""Shape world: deterministic, well-formed scenes; captions and answers that match the pictures; a verified cache."""

import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from utils.data import shapes
from utils.data.shapes import HELD_OUT, Vocab, generate, load_shapes, make_scene, render

#: sha256 of the first 50 validation scenes (images and scene records). A change here means every learner's
#: data changes: bump shapes.VERSION so caches are rebuilt, then update this value.
VAL_50_SHA256 = "5464125ed392a61d0a23864e3d4a4a6ec0cdeb0e4b5272a6d7f9e883b0fbff72"


@pytest.fixture(scope="module")
def train():
    return generate("train", 2000)


def test_a_small_set_is_byte_identical_everywhere():
    assert shapes.fingerprint(generate("val", 50)) == VAL_50_SHA256


def test_scene_i_does_not_depend_on_the_scenes_before_it():
    assert make_scene("train", 123) == make_scene("train", 123)
    assert generate("train", 130).scenes[123].things == make_scene("train", 123).things
    assert make_scene("train", 1) != make_scene("val", 1)


def test_objects_are_distinct_separate_in_bounds_and_listed_left_to_right(train):
    counts = Counter(len(s.things) for s in train.scenes)
    assert set(counts) == {1, 2, 3, 4} and min(counts.values()) > 350
    for s in train.scenes:
        assert len({(t.colour, t.shape) for t in s.things}) == len(s.things)
        xs = [t.centre_x for t in s.things]
        assert xs == sorted(xs) and all(b - a >= shapes.MIN_DX for a, b in zip(xs, xs[1:], strict=False))
        for t in s.things:
            x0, y0, x1, y1 = t.box
            assert 0 <= x0 < x1 <= shapes.SIZE and 0 <= y0 < y1 <= shapes.SIZE
            assert shapes.MIN_SIDE <= x1 - x0 == y1 - y0 <= shapes.MAX_SIDE
        for i, a in enumerate(s.things):
            for b in s.things[i + 1:]:
                assert not shapes._overlaps(a.box, b.box)


def test_held_out_compositions_only_in_the_novel_split(train):
    seen = Counter((t.colour, t.shape) for s in train.scenes for t in s.things)
    assert not set(HELD_OUT) & set(seen)
    assert len(seen) == len(shapes.COLOURS) * len(shapes.SHAPES) - len(HELD_OUT)
    colours, kinds = {c for c, _ in seen}, {k for _, k in seen}
    assert colours == set(shapes.COLOURS) and kinds == set(shapes.SHAPES)  # each part is still seen
    for s in generate("novel", 300).scenes:
        assert any((t.colour, t.shape) in HELD_OUT for t in s.things)
    for split in ("val", "test"):
        assert all((t.colour, t.shape) not in HELD_OUT for s in generate(split, 300).scenes for t in s.things)


def test_pixels_show_the_objects_and_nothing_else(train):
    for s, img in zip(train.scenes[:300], train.images[:300], strict=True):
        assert (render(s) == img).all()
        drawn = np.zeros(img.shape[:2], dtype=bool)
        for t in s.things:
            x0, y0, x1, y1 = t.box
            patch = img[y0:y1, x0:x1]
            mine = (patch == shapes.COLOURS[t.colour]).all(axis=2)
            area = mine.sum() / (x1 - x0) ** 2
            expected = {"square": 1.0, "circle": np.pi / 4, "triangle": 0.5}[t.shape]
            assert abs(area - expected) < 0.12, (t, area)
            assert mine[(y1 - y0) * 3 // 4, (x1 - x0) // 2]  # the lower middle is inside every shape
            drawn[y0:y1, x0:x1] |= mine
        assert (img[~drawn] == shapes.BACKGROUND).all()


def test_captions_follow_the_grammar(train):
    scene = make_scene("train", 4)
    assert scene.captions == ["a yellow triangle , a white circle , a red circle and a purple square"]
    for s in train.scenes:
        names = [t.name for t in s.things]
        first = s.captions[0]
        if len(names) == 1:
            assert s.captions == [f"a {names[0]}"]
        elif len(names) == 2:
            assert s.captions == [f"a {names[0]} left of a {names[1]}", f"a {names[1]} right of a {names[0]}"]
        else:
            assert first == " , ".join(f"a {n}" for n in names[:-1]) + f" and a {names[-1]}"


def _one(things, keep):
    """The only object for which keep(thing) holds (the test fails if the name is ambiguous)."""
    (thing,) = [t for t in things if keep(t)]
    return thing


def _named(things, words):
    """The object a name picks: ["red", "circle"], ["red", "object"] or ["circle"]."""
    if len(words) == 1:
        return _one(things, lambda t: t.shape == words[0])
    if words[1] == "object":
        return _one(things, lambda t: t.colour == words[0])
    return _one(things, lambda t: t.name == " ".join(words))


def _far(a, b):
    return np.hypot(a.centre[0] - b.centre[0], a.centre[1] - b.centre[1])


def _nearest(things, ref, sign):
    """The closest (sign 1) or furthest (sign -1) other object, asserting the runner-up is DIST_MARGIN away."""
    ranked = sorted((t for t in things if t is not ref), key=lambda t: sign * _far(t, ref))
    assert len(ranked) >= 2 and abs(_far(ranked[1], ref) - _far(ranked[0], ref)) >= shapes.DIST_MARGIN
    return ranked[0]


def answer_of(scene, qtype, question):
    """Each question type answered from the objects alone, written apart from the generator's code."""
    w, things = question.split(), scene.things
    yes = {True: "yes", False: "no"}
    if qtype == "colour":
        xs = [t.centre_x for t in things]
        return things[int(np.argmin(xs) if w[4] == "leftmost" else np.argmax(xs))].colour
    if qtype == "shape":
        return _named(things, w[4:6]).shape
    if qtype == "count":
        return str(sum(shapes.PLURAL[t.shape] == w[2] for t in things))
    if qtype == "exist":
        return yes[any(t.name == f"{w[3]} {w[4]}" for t in things)]
    if qtype == "spatial":
        return yes[_named(things, w[2:4]).centre_x < _named(things, w[7:9]).centre_x]
    if qtype == "closest":
        return _nearest(things, _named(things, w[8:10]), 1).shape
    if qtype == "furthest":
        return _nearest(things, _named(things, w[8:10]), -1).colour
    if qtype == "compare":
        xs = [t.centre_x for t in things]
        left, right = things[int(np.argmin(xs))], things[int(np.argmax(xs))]
        assert left is not right
        return yes[getattr(left, w[6]) == getattr(right, w[6])]
    if qtype == "count_same":
        ref = _named(things, w[10:12])
        return str(sum(t.shape == ref.shape for t in things if t is not ref))
    raise AssertionError(f"unknown type {qtype}")


def test_every_answer_is_right_and_every_name_unambiguous(train):
    asked = Counter()
    for s in train.scenes:
        for qtype, question, answer in s.questions:
            assert answer == answer_of(s, qtype, question), (s.index, question, answer)
            assert answer in shapes.ANSWERS[qtype]
            asked[qtype] += 1
    assert set(asked) == set(shapes.QUESTION_TYPES)
    assert set(shapes.NON_RELATIONAL) | set(shapes.RELATIONAL) == set(shapes.QUESTION_TYPES)
    assert not set(shapes.NON_RELATIONAL) & set(shapes.RELATIONAL)


def test_every_question_string_is_exactly_balanced(train):
    """Per string, each answer of its type equally often: a model of the question alone scores exactly chance."""
    for data in (train, generate("test")):
        by_type, by_string = defaultdict(Counter), defaultdict(Counter)
        for s in data.scenes:
            for qtype, question, answer in s.questions:
                by_type[qtype][answer] += 1
                by_string[qtype, question][answer] += 1
        for qtype, counts in by_type.items():
            assert set(counts) == set(shapes.ANSWERS[qtype]) and len(set(counts.values())) == 1, (qtype, counts)
            assert sum(counts.values()) >= 0.2 * len(data) if qtype != "count_same" else 0.1 * len(data)
        for (qtype, question), counts in by_string.items():
            assert set(counts) == set(shapes.ANSWERS[qtype]) and len(set(counts.values())) == 1, (question, counts)


def test_yes_no_types_ask_one_yes_and_one_no_of_the_same_picture(train):
    """So a model that sees only the picture cannot tell the two apart: chance on every yes/no type."""
    paired = asked = 0
    for s in train.scenes:
        for qtype in shapes.PAIRED:
            answers = Counter(a for q, _, a in s.questions if q == qtype)
            asked += bool(answers)
            paired += answers == Counter({"yes": 1, "no": 1})
    assert paired > 0.95 * asked


def test_questions_leak_no_answer_through_held_out_pairs(train):
    """Outside the novel split a red object is never a triangle, so the question about it is never asked."""
    asked = {q for s in train.scenes for t, q, _ in s.questions if t in ("shape", "exist")}
    for colour, shape in HELD_OUT:
        assert f"what shape is the {colour} object ?" not in asked and f"is there a {colour} {shape} ?" not in asked
    novel = {q for s in generate("novel", 400).scenes for _, q, _ in s.questions}
    assert any(f"{c} {s}" in q for q in novel for c, s in HELD_OUT)


def test_questions_are_reproducible_and_natural_ones_unbalanced(train):
    again = generate("train", 2000)
    assert [s.questions for s in again.scenes] == [s.questions for s in train.scenes]
    natural = shapes.natural_questions(train.scenes, "train")
    assert natural == shapes.natural_questions(train.scenes, "train")
    exist = Counter(a for qs in natural for t, _, a in qs if t == "exist")
    assert exist["no"] > 4 * exist["yes"]  # most pairs are absent from any one scene
    for s, qs in zip(train.scenes, natural, strict=True):
        for qtype, question, answer in qs:
            assert answer == answer_of(s, qtype, question)


def test_the_cache_is_verified_and_rebuilt_with_a_message(tmp_path, capsys, monkeypatch):
    first = load_shapes("val", root=tmp_path)
    assert "Building shape world 'val'" in capsys.readouterr().out
    again = load_shapes("val", root=tmp_path)
    assert capsys.readouterr().out == ""
    assert shapes.fingerprint(again) == shapes.fingerprint(first) == shapes.fingerprint(generate("val"))
    images = tmp_path / "val.images"
    data = bytearray(images.read_bytes())
    data[1000] ^= 1
    images.write_bytes(bytes(data))
    repaired = load_shapes("val", root=tmp_path)
    assert "val.images does not match its sha256" in capsys.readouterr().out
    assert shapes.fingerprint(repaired) == shapes.fingerprint(first)
    (tmp_path / "val.json").unlink()
    load_shapes("val", root=tmp_path)
    assert "val.json is missing" in capsys.readouterr().out
    manifest = tmp_path / "val.manifest.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"version": 0}))
    load_shapes("val", root=tmp_path)
    assert "another version or other settings" in capsys.readouterr().out
    monkeypatch.setattr(shapes, "HELD_OUT", HELD_OUT[1:])  # a learner edits the generator's settings
    load_shapes("val", root=tmp_path)
    assert "another version or other settings" in capsys.readouterr().out


def test_unknown_split():
    with pytest.raises(ValueError, match="novel"):
        load_shapes("training")
    with pytest.raises(ValueError, match="Unknown split"):
        make_scene("dev", 0)


def test_vocab_encodes_pads_and_decodes():
    vocab = Vocab.from_captions(["a red circle", "a blue square left of a red circle"])
    assert vocab.words[:4] == ["<NULL>", "<START>", "<END>", "<UNK>"]
    ids = vocab.encode(["a red circle", "a green square"])
    assert ids.shape == (2, 5) and ids.dtype == np.int64
    assert list(ids[0]) == [Vocab.START, vocab.index["a"], vocab.index["red"], vocab.index["circle"], Vocab.END]
    assert ids[1, 2] == Vocab.UNK
    assert vocab.decode(ids[0]) == "a red circle"
    assert vocab.decode(np.array([Vocab.START, vocab.index["a"], Vocab.END, vocab.index["red"]])) == "a"
    assert vocab.encode(["a red circle"], length=8)[0, 5:].tolist() == [Vocab.NULL] * 3
    with pytest.raises(ValueError, match="needs 5 tokens"):
        vocab.encode(["a red circle"], length=4)


def test_loaded_images_are_ordinary_writable_arrays(tmp_path):
    load_shapes("val", root=tmp_path, quiet=True)
    cached = load_shapes("val", root=tmp_path)  # torch warns on read-only arrays
    assert cached.images.flags.writeable and cached.images.shape == (1000, 64, 64, 3)

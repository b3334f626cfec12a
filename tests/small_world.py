"""Small shape worlds for the captioning tests: drawn fresh (no cache needed) and quick to train on."""

from utils.data.shapes import Vocab, generate


def small_world(n):
    """n freshly drawn training scenes, their vocabulary and their caption ids."""
    data = generate("train", n)
    vocab = Vocab.from_captions(data.captions)
    return data, vocab, vocab.encode(data.captions)


def one_object(data, ids, words=5):
    """The scenes with one object: their images, the scenes, and their captions' first `words` tokens. A model
    that sees only these becomes confident within a hundred or so steps."""
    one = [i for i, s in enumerate(data.scenes) if len(s.things) == 1]
    return data.images[one], [data.scenes[i] for i in one], ids[one][:, :words]

"""The PyTorch captioner and its helpers: shapes, learning, decoding agreeing with beam search, diagnostics."""

import math

import numpy as np
import pytest
import torch

from utils import captioning
from utils.data.shapes import Vocab, generate
from utils.decoding import beam_search
from utils.models import Captioner

from .small_world import one_object, small_world


@pytest.fixture(scope="module")
def small():
    return small_world(256)


@pytest.fixture(scope="module")
def trained(small):
    """A captioner trained briefly on one-object scenes, where it quickly becomes confident."""
    data, vocab, ids = small
    images, scenes, short = one_object(data, ids)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = Captioner(len(vocab), image_input="every_step", hidden=64)
    history = captioning.train_captioner(model, images, short, 150, batch=32, lr=1e-2)
    return model, history, images, scenes


@pytest.mark.parametrize("image_input", ["h0", "every_step"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_captioner_shapes(small, image_input, cell):
    data, vocab, ids = small
    model = Captioner(len(vocab), image_input=image_input, cell=cell, hidden=16)
    scores, _ = model(captioning.image_tensor(data.images[:3]), torch.as_tensor(ids[:3, :-1]))
    assert scores.shape == (3, ids.shape[1] - 1, len(vocab))
    assert model.encoder(captioning.image_tensor(data.images[:3])).shape == (3, 128)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="h0"):
        Captioner(10, image_input="first")
    with pytest.raises(ValueError, match="cell"):
        Captioner(10, cell="transformer")


def test_training_learns_to_look(trained, small):
    model, history, images, scenes = trained
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    vocab = small[1]
    said = [vocab.decode(r) for r in captioning.greedy(model, images, 8)]
    assert captioning.exact_match(said, scenes) > 0.6


def test_greedy_stops_at_end_and_sampling_repeats_with_a_seed(trained, small):
    model, _, images, _ = trained
    out = captioning.greedy(model, images[:20], 8)
    for row in out:
        ends = np.flatnonzero(row == Vocab.END)
        assert len(ends) and (row[ends[0] + 1:] == Vocab.NULL).all()
    a = captioning.greedy(model, images[:20], 8, temperature=2.0, rng=np.random.default_rng(3))
    b = captioning.greedy(model, images[:20], 8, temperature=2.0, rng=np.random.default_rng(3))
    assert (a == b).all()


def test_beam_step_drives_beam_search_like_the_model(trained, small):
    model, _, images, _ = trained
    vocab = small[1]
    greedy = [vocab.decode(r) for r in captioning.greedy(model, images[:10], 8)]
    assert captioning.beam_captions(model, images[:10], vocab, beam_search, 1, 8) == greedy
    step, state = captioning.beam_step(model, images[0])
    (words, score), *_ = beam_search(step, state, Vocab.START, Vocab.END, 3, 8)
    ids = torch.as_tensor([[Vocab.START] + words])
    with torch.no_grad():
        log_probs = model(captioning.image_tensor(images[:1]), ids[:, :-1])[0].log_softmax(dim=2)[0]
    assert score == pytest.approx(sum(log_probs[t, w].item() for t, w in enumerate(words)), abs=1e-4)


def test_next_word_table(trained, small):
    model, _, images, scenes = trained
    rows = captioning.next_word_table(model, images[0], small[1], scenes[0].captions[0])
    assert [w for w, _ in rows] == scenes[0].captions[0].split() + ["<END>"]
    for _, top in rows:
        probs = [p for _, p in top]
        assert len(top) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6


def test_blind_loss_is_the_entropy_of_the_next_word():
    vocab = Vocab.from_captions(["a red circle", "a blue circle"])
    same = vocab.encode(["a red circle"] * 4)
    assert captioning.blind_loss(same) == pytest.approx(0.0)
    two = vocab.encode(["a red circle", "a blue circle"])
    assert captioning.blind_loss(two) == pytest.approx(math.log(2) / 4)  # one uncertain word of four


def test_image_gradient_by_position(trained, small):
    model, _, images, scenes = trained
    ids = small[1].encode([s.captions[0] for s in scenes[:16]])
    reach = captioning.image_gradient_by_position(model, images[:16], ids)
    assert reach.shape == (ids.shape[1] - 1,) and np.isfinite(reach).all() and (reach > 0).all()


def test_exact_match_accepts_any_reference():
    scenes = generate("train", 40).scenes
    two = [s for s in scenes if len(s.things) == 2][:2]
    assert captioning.exact_match([two[0].captions[1], "a red circle"], two) == 0.5


def test_objects_named_counts_held_out_and_seen_pairs():
    from utils.data.shapes import HELD_OUT, Scene, Thing

    scene = Scene("novel", 0, [Thing("red", "triangle", (0, 0, 12, 12)), Thing("blue", "circle", (20, 0, 32, 12))],
                  ["a red triangle left of a blue circle"])
    said = ["a red square left of a blue circle", "a red triangle left of a blue circle", "a blue circle"]
    assert captioning.objects_named(said, [scene] * 3, HELD_OUT) == {"held-out pair": (1, 2), "seen pair": (2, 2)}


def test_affine_h0_is_the_projection_without_tanh(small):
    data, vocab, ids = small
    images = captioning.image_tensor(data.images[:4])
    torch.manual_seed(0)
    tanh = Captioner(len(vocab), image_input="h0", hidden=16)
    torch.manual_seed(0)
    affine = Captioner(len(vocab), image_input="h0", hidden=16, h0="affine")
    with torch.no_grad():
        affine.init_h.weight.mul_(50.0)  # large enough that tanh would saturate
        tanh.init_h.weight.copy_(affine.init_h.weight)
        for model in (tanh, affine):
            model.eval()
        v = affine.encoder(images)
        (h_affine, c_affine), (h_tanh, _) = affine.start(images)[1], tanh.start(images)[1]
    assert torch.allclose(h_affine[0], affine.init_h(v)) and torch.equal(c_affine, torch.zeros_like(c_affine))
    assert torch.allclose(h_tanh[0], h_affine[0].tanh()) and h_affine.abs().max() > 1


def test_h0_setting_is_checked():
    with pytest.raises(ValueError, match="h0 must be one of"):
        Captioner(10, image_input="h0", h0="relu")
    with pytest.raises(ValueError, match='applies to image_input="h0" only'):
        Captioner(10, image_input="every_step", h0="affine")


def test_teacher_forced_hits_read_the_true_prefix(trained, small):
    model, _, images, scenes = trained
    vocab = small[1]
    ids = vocab.encode([s.captions[0] for s in scenes[:12]])
    hits, mask = captioning.teacher_forced_hits(model, images[:12], ids, batch=5)
    assert hits.shape == mask.shape == (12, ids.shape[1] - 1) and not (hits & ~mask).any()
    assert np.array_equal(mask, ids[:, 1:] != Vocab.NULL)
    model.eval()  # batch normalisation uses its running statistics, as in the helper
    with torch.no_grad():  # the same verdict, one caption at a time
        scores, _ = model(captioning.image_tensor(images[:1]), torch.as_tensor(ids[:1, :-1]))
    model.train()
    assert np.array_equal(hits[0], (scores[0].argmax(dim=1).numpy() == ids[0, 1:]) & mask[0])

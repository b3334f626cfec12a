"""The attention captioner of notebook 05: the grid encoder, the three kinds of attention, the objectives,
the grounding measurements and the gradient estimators."""

import numpy as np
import pytest
import torch

from utils import attend, captioning
from utils.data.shapes import Scene, Thing, Vocab, generate
from utils.decoding import beam_search
from utils.models import AttentionCaptioner, GridEncoder

from .small_world import one_object, small_world


@pytest.fixture(scope="module")
def small():
    return small_world(128)


@pytest.fixture(scope="module")
def trained(small):
    """A soft-attention captioner trained briefly on one-object scenes."""
    data, vocab, ids = small
    images, scenes, short = one_object(data, ids)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = AttentionCaptioner(len(vocab), hidden=64, attend=16, channels=(8, 16, 16))
    history = captioning.train_captioner(model, images, short, 120, batch=16, lr=1e-2,
                                         objective=attend.SoftObjective(lam=0.0))
    return model, history, images, scenes, short


def test_grid_encoder_keeps_a_grid_with_positions():
    enc = GridEncoder(channels=(4, 8, 8))
    grid = enc(torch.rand(2, 3, 64, 64))
    assert grid.shape == (2, 256, 10) and enc.features == 10
    coords = grid[0, :, -2:].detach()
    assert torch.allclose(coords, grid[1, :, -2:].detach())
    assert coords[0].tolist() == pytest.approx([-15 / 16, -15 / 16]) and coords[17].tolist() == pytest.approx(
        [-13 / 16, -13 / 16])  # row by row: cell 17 is row 1, column 1
    assert GridEncoder(channels=(4, 8, 8), positions=False)(torch.rand(1, 3, 64, 64)).shape == (1, 256, 8)


@pytest.mark.parametrize("depth", [0, 1, 2])
def test_receptive_field_is_what_the_encoder_says(depth):
    enc = GridEncoder(channels=(4, 8, 8), depth=depth)
    rf = attend.receptive_field(enc, torch.rand(2, 3, 64, 64), cell=8 * 16 + 8)  # row 8, column 8
    ys, xs = np.nonzero(rf)
    assert xs.max() - xs.min() + 1 == enc.receptive_field == ys.max() - ys.min() + 1
    assert (xs.min() + xs.max()) / 2 == pytest.approx(8 * 4 + 1.5)  # centred on the cell's own 4 x 4 pixels


@pytest.mark.parametrize("kind", AttentionCaptioner.ATTENTION)
def test_decode_shapes_and_attention(small, kind):
    data, vocab, ids = small
    model = AttentionCaptioner(len(vocab), attention=kind, hidden=32, attend=8, channels=(4, 8, 8))
    images, words = captioning.image_tensor(data.images[:3]), torch.as_tensor(ids[:3, :-1])
    scores, (h, c, covered, previous), record = model(images, words)
    T = ids.shape[1] - 1
    assert scores.shape == (3, T, len(vocab)) and h.shape == c.shape == (1, 3, 32) and covered.shape == (1, 3, 256)
    assert torch.allclose(covered[0].sum(dim=1), torch.full((3,), float(T)))  # one unit of attention per step
    assert torch.allclose(previous[0].sum(dim=1), torch.ones(3))
    assert record["alpha"].shape == (3, T, 256) and record["beta"].shape == (3, T)
    assert torch.allclose(record["alpha"].sum(dim=2), torch.ones(3, T))
    if kind == "hard":
        chosen = record["chosen"]
        assert torch.allclose(record["log_prob"], record["alpha"].gather(2, chosen[..., None])[..., 0].log())


def test_the_sampled_index_sends_no_gradient_to_the_attention(small):
    """Hard attention: the caption loss reaches the decoder and the encoder, but not the attention's scores."""
    data, vocab, ids = small
    model = AttentionCaptioner(len(vocab), attention="hard", hidden=32, attend=8, channels=(4, 8, 8))
    scores, _, _ = model(captioning.image_tensor(data.images[:4]), torch.as_tensor(ids[:4, :-1]))
    captioning.word_loss(scores, torch.as_tensor(ids[:4, 1:])).backward()
    assert all(p.grad is None or not p.grad.any() for p in attend.attention_parameters(model))
    assert model.head.weight.grad.abs().sum() > 0 and model.encoder.convs[0].weight.grad.abs().sum() > 0


def test_unknown_attention_is_named():
    with pytest.raises(ValueError, match="soft"):
        AttentionCaptioner(10, attention="spotlight")


def test_training_learns_and_greedy_and_beam_search_agree(trained, small):
    model, history, images, scenes, ids = trained
    vocab = small[1]
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    said = [vocab.decode(r) for r in captioning.greedy(model, images, 5)]
    assert captioning.exact_match(said, scenes) > 0.5
    beams = captioning.beam_captions(model, images[:6], vocab, beam_search, 1, 5)
    assert beams == said[:6]


@pytest.mark.parametrize("semi", [0.0, 1.0])
def test_hard_objective_runs_reinforce_or_soft(small, semi):
    data, vocab, ids = small
    torch.manual_seed(0)
    model = AttentionCaptioner(len(vocab), attention="hard", hidden=32, attend=8, channels=(4, 8, 8))
    objective = attend.HardObjective(semi=semi)
    loss, logged = objective(model, captioning.image_tensor(data.images[:8]), torch.as_tensor(ids[:8]))
    loss.backward()
    reached = [p.grad is not None and p.grad.abs().sum() > 0 for p in attend.attention_parameters(model)]
    assert all(reached)  # by REINFORCE (semi=0) or through the soft context (semi=1)
    if semi == 0.0:  # the baseline moved a tenth of the way from 0 to the batch's mean caption loss
        assert objective.baseline == logged["baseline"] > 0
    else:
        assert objective.baseline == 0.0 and "baseline" not in logged


def test_box_overlap_and_named_positions():
    scene = Scene("val", 0, [Thing("red", "circle", (4, 8, 16, 20)), Thing("blue", "square", (30, 30, 50, 50))],
                  ["a red circle left of a blue square"])
    overlap = attend.box_overlap([scene])
    assert overlap.shape == (1, 4, 256)
    assert overlap[0, 0].sum() * 16 == pytest.approx(12 * 12) and overlap[0, 1].sum() * 16 == pytest.approx(400)
    assert overlap[0, 0].reshape(16, 16)[2, 1] == 1.0 and overlap[0, 2:].sum() == 0
    vocab = Vocab.from_captions(scene.captions)
    obj, is_colour = attend.named_positions(vocab.encode(scene.captions), vocab)
    # targets: a red circle left of a blue square <END>
    assert obj[0].tolist() == [-1, 0, 0, -1, -1, -1, 1, 1, -1]
    assert is_colour[0].tolist() == [False, True, False, False, False, False, True, False, False]


def test_grounding_scores_an_oracle_and_uniform_attention():
    data = generate("val", 20)
    vocab = Vocab.from_captions(data.captions)
    ids = vocab.encode(data.captions)
    obj, _ = attend.named_positions(ids, vocab)
    overlap = attend.box_overlap(data.scenes)
    oracle = np.full(obj.shape + (256,), 1 / 256)
    for n, t in zip(*np.nonzero(obj >= 0), strict=True):
        inside = overlap[n, obj[n, t]] == 1
        oracle[n, t] = inside / inside.sum()
    g = attend.grounding(oracle, ids, data.scenes, vocab)
    assert g["correctness"] == pytest.approx(1) and g["pointing"] == 1
    u = attend.grounding(np.full(oracle.shape, 1 / 256), ids, data.scenes, vocab)
    assert u["correctness"] == pytest.approx(u["uniform"]) and u["moves"] == pytest.approx(0)
    areas = [(t.box[2] - t.box[0]) * (t.box[3] - t.box[1]) / 64**2 for s in data.scenes for t in s.things]
    assert u["uniform"] == pytest.approx(np.mean(areas), rel=1e-9)  # each object is named by two words


def test_gradient_estimators(trained, small):
    model, _, images, _, ids = trained
    soft = attend.gradient_samples(model, images[:8], ids[:8], "soft", 3)
    assert soft.shape[0] == 3 and np.allclose(soft, soft[0])
    hard = AttentionCaptioner(len(small[1]), attention="hard", hidden=64, attend=16, channels=(8, 16, 16))
    hard.load_state_dict(model.state_dict())
    plain = attend.gradient_samples(hard, images[:8], ids[:8], "reinforce", 40)
    with_baseline = attend.gradient_samples(hard, images[:8], ids[:8], "reinforce", 40, baseline=1.0)
    gumbel = attend.gradient_samples(hard, images[:8], ids[:8], "gumbel", 5)
    assert plain.var(axis=0).sum() > 0 and gumbel.var(axis=0).sum() > 0
    assert np.isfinite(with_baseline).all()


def test_explain_gives_one_map_per_word(trained, small):
    model, _, images, _, _ = trained
    words, alphas, chosen = attend.explain(model, images[0], small[1], 5)
    assert words[-1] == "<END>" and alphas.shape == (len(words), 256) and chosen is None


@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_decoding_word_by_word_carries_the_whole_state(small, kind):
    """One word at a time, carrying (h, c, the attention received so far and at the last word), gives the scores
    of one call over the whole caption: what greedy decoding and beam search rely on."""
    data, vocab, ids = small
    torch.manual_seed(0)
    model = AttentionCaptioner(len(vocab), attention=kind, hidden=32, attend=8, channels=(4, 8, 8)).eval()
    with torch.no_grad():
        model.att_c.fill_(3.0)  # make the attention received so far matter
        V, state = model.start(captioning.image_tensor(data.images[:3]))
        words = torch.as_tensor(ids[:3, :-1])
        whole, _ = model.step(V, words, state)
        parts = []
        for t in range(words.shape[1]):
            scores, state = model.step(V, words[:, t:t + 1], state)
            parts.append(scores)
    assert torch.allclose(torch.cat(parts, dim=1), whole, atol=1e-5)


def test_moves_within_and_between_objects():
    """A map that jumps to each named object at its colour word and stays for its shape word."""
    data = generate("val", 30)
    vocab = Vocab.from_captions(data.captions)
    ids = vocab.encode(data.captions)
    obj, _ = attend.named_positions(ids, vocab)
    alpha = np.zeros(obj.shape + (256,))
    for n in range(len(ids)):
        k = 0
        for t in range(obj.shape[1]):
            k = obj[n, t] if obj[n, t] >= 0 else k
            alpha[n, t, 10 * k] = 1.0  # object k gets its own cell, kept until the next object is named
    g = attend.grounding(alpha, ids, data.scenes, vocab)
    assert g["within"] == 0 and g["between"] == 1
    assert 0 < g["moves"] < 1

"""The VQA model and its helpers: the torch layers match the numpy ones, the encoder ignores padding, the model
learns a second, unrelated dataset, and bad input gets a clear message."""

from collections import Counter

import numpy as np
import pytest
import torch

from utils import vqa, vqa_layers
from utils.data.shapes import QUESTION_TYPES, Vocab, generate
from utils.models import AdditiveAttention, Fusion, QuestionEncoder, VQAModel, attention_hop


@pytest.mark.parametrize("mode", ["concat", "product"])
def test_torch_fusion_matches_the_numpy_layer(torch_float64, mode):
    rng = np.random.default_rng(0)
    q, v = rng.standard_normal((4, 5)), rng.standard_normal((4, 7))
    fusion = Fusion(5, 7, 6, mode)
    Wq, Wv = fusion.W_q.weight.detach().numpy().T, fusion.W_v.weight.detach().numpy().T
    with torch.no_grad():
        fusion.b.copy_(torch.as_tensor(rng.standard_normal(6)))
    want, _ = vqa_layers.fusion_forward(q, v, Wq, Wv, fusion.b.detach().numpy(), mode)
    got = fusion(torch.as_tensor(q), torch.as_tensor(v)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_numpy_fusion_backward_matches_autograd(torch_float64):
    rng = np.random.default_rng(1)
    args = [rng.standard_normal(s) for s in ((3, 4), (3, 5), (4, 6), (5, 6), (6,))]
    for mode in ("concat", "product"):
        z, cache = vqa_layers.fusion_forward(*args, mode)
        dz = rng.standard_normal(z.shape)
        tensors = [torch.tensor(a, requires_grad=True) for a in args]
        q, v, Wq, Wv, b = tensors
        out = (q @ Wq + v @ Wv if mode == "concat" else (q @ Wq) * (v @ Wv)) + b
        (out * torch.as_tensor(dz)).sum().backward()
        for mine, t in zip(vqa_layers.fusion_backward(dz, cache), tensors, strict=True):
            np.testing.assert_allclose(mine, t.grad.numpy(), rtol=1e-10)


def test_numpy_question_encoder_reads_the_last_real_token_and_padding_gets_no_gradient():
    rng = np.random.default_rng(2)
    N, T, D, H = 3, 6, 4, 5
    x, lengths = rng.standard_normal((N, T, D)), np.array([2, 6, 1])
    x[np.arange(T)[None] >= lengths[:, None]] = rng.standard_normal(D)
    h0, Wx, Wh, b = np.zeros((N, H)), rng.standard_normal((D, H)), rng.standard_normal((H, H)) / 3, np.zeros(H)
    q, cache = vqa_layers.question_encoder_forward(x, lengths, h0, Wx, Wh, b)
    longer = np.concatenate([x, np.repeat(x[:, -1:], 3, axis=1)], axis=1)  # more padding: same vectors
    longer[1, 6:] = x[0, -1]
    q2, _ = vqa_layers.question_encoder_forward(longer, lengths, h0, Wx, Wh, b)
    np.testing.assert_allclose(q, q2)
    dx, *_ = vqa_layers.question_encoder_backward(np.ones_like(q), cache)
    padded = np.arange(T)[None] >= lengths[:, None]
    assert np.all(dx[padded] == 0) and np.all(np.abs(dx[~padded]).sum(axis=1) > 0)


def test_torch_encoder_ignores_extra_padding_and_rejects_empty_questions():
    torch.manual_seed(0)
    enc = QuestionEncoder(10, embed=4, hidden=6)
    ids = torch.tensor([[1, 5, 6, 2, 0], [1, 7, 2, 0, 0]])
    padded = torch.cat([ids, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    torch.testing.assert_close(enc(ids), enc(padded))
    with pytest.raises(ValueError, match="no token besides padding"):
        enc(torch.tensor([[1, 2], [0, 0]]))


def test_the_model_runs_the_reference_hop():
    """VQAModel projects each image's keys once for all its questions; that must equal attention_hop per question."""
    torch.manual_seed(0)
    att = AdditiveAttention(6, 6, 4)
    u, keys = torch.randn(5, 6), torch.randn(2, 9, 6)
    idx = torch.tensor([0, 0, 1, 1, 1])
    shared, alpha = att.attend(u, keys[idx], att.project_keys(keys)[idx])
    want, want_alpha = attention_hop(u, keys[idx], att)
    torch.testing.assert_close(u + shared, want)
    torch.testing.assert_close(alpha, want_alpha)
    assert torch.allclose(alpha.sum(dim=1), torch.ones(5))


def bars(n, rng):
    """A second, unrelated dataset: 24x24 float images with one bar in one half, one question per image."""
    images = np.zeros((n, 3, 24, 24), dtype=np.float32)
    colours = {"orange": (1.0, 0.6, 0.0), "cyan": (0.0, 0.8, 0.9)}
    questions, answers = [], []
    for k in range(n):
        where, colour = rng.choice(["top", "bottom", "left", "right"]), rng.choice(list(colours))
        rows, cols = {"top": (slice(2, 8), slice(3, 21)), "bottom": (slice(16, 22), slice(3, 21)),
                      "left": (slice(3, 21), slice(2, 8)), "right": (slice(3, 21), slice(16, 22))}[where]
        images[k, :, rows, cols] = np.array(colours[colour])[:, None, None]
        kind = rng.integers(3)
        questions.append(["which half holds the bar ?", "what colour is the bar ?", "is the bar cyan ?"][kind])
        answers.append([where, colour, "yes" if colour == "cyan" else "no"][kind])
    return images, questions, answers


@pytest.mark.parametrize("hops,fusion", [(0, "concat"), (1, "product")])
def test_the_model_learns_another_dataset_with_its_own_words_and_answers(hops, fusion, one_torch_thread):
    rng = np.random.default_rng(3)
    images, questions, answers = bars(600, rng)
    vocab, answer_set = Vocab.from_captions(questions), vqa.Answers(answers)
    assert "bar" in vocab.index and "orange" in answer_set.words and len(answer_set) == 8
    ids = vocab.encode(questions)
    torch.manual_seed(0)
    model = VQAModel(len(vocab), len(answer_set), fusion=fusion, hops=hops, image_size=24, hidden=32)
    history = vqa.train_vqa(model, images[:400], ids[:400], answer_set.encode(answers[:400]), 150, batch=32)
    assert history["step"][-1] == 150 and history["loss"][-1] < history["loss"][0]
    probs = vqa.answer_probabilities(model, images[400:], ids[400:])
    assert probs.shape == (200, 8) and np.allclose(probs.sum(axis=1), 1)
    right = answer_set.encode(answers[400:])
    assert (probs.argmax(axis=1) == right).mean() > 0.9


def test_shape_world_questions_train_and_score_by_type_and_group():
    data = generate("val")  # balanced over the whole split; its first 60 scenes ask every type
    data.images, data.scenes = data.images[:60], data.scenes[:60]
    table = vqa.Questions.of(data.scenes)
    vocab, answers = Vocab.from_captions(table.text), vqa.Answers(table.answers)
    torch.manual_seed(0)
    model = VQAModel(len(vocab), len(answers), hops=2, hidden=16, attention_hidden=8)
    ids = vocab.encode(table.text)
    history = vqa.train_vqa(model, data.images, ids, answers.encode(table.answers), 3, table.image_index, batch=4)
    assert len(history["loss"]) == 3
    probs, maps = vqa.answer_probabilities(model, data.images, ids, table.image_index, attention=True)
    assert probs.shape == (len(table), len(answers)) and [m.shape for m in maps] == [(len(table), 8, 8)] * 2
    acc = vqa.accuracy_by_type(probs.argmax(1), answers.encode(table.answers), table.types)
    assert set(acc) == set(QUESTION_TYPES) | {"non-relational", "relational", "overall"}
    chance = vqa.chance_by_type(table.answers, table.types)
    for qtype in QUESTION_TYPES:
        counts = Counter(a for a, t in zip(table.answers, table.types, strict=True) if t == qtype)
        assert chance[qtype] == pytest.approx(max(counts.values()) / sum(counts.values()))
    full = generate("test")  # balanced: chance is one over the number of answers
    full_table = vqa.Questions.of(full.scenes)
    chance = vqa.chance_by_type(full_table.answers, full_table.types)
    assert chance["exist"] == 0.5 and chance["colour"] == pytest.approx(1 / 6) and chance["count"] == 0.25


def test_bad_input_is_named():
    images = np.zeros((3, 3, 24, 24), dtype=np.float32)
    model = VQAModel(10, 4, image_size=24, hidden=8)
    ids = np.array([[1, 4, 2], [1, 5, 2]])
    with pytest.raises(ValueError, match="as many answers"):
        vqa.train_vqa(model, images, ids, np.array([0]), 1)
    with pytest.raises(ValueError, match=r"image_index must lie in \[0, 3\)"):
        vqa.train_vqa(model, images, ids, np.array([0, 1]), 1, image_index=np.array([0, 7]))
    with pytest.raises(ValueError, match=r"images should be \(N, 3, 24, 24\)"):
        vqa.answer_probabilities(model, np.zeros((2, 3, 32, 32), np.float32), ids)
    with pytest.raises(ValueError, match="fusion must be one of"):
        VQAModel(10, 4, fusion="sum")
    with pytest.raises(ValueError, match="never seen in training"):
        vqa.Answers(["yes", "no"]).encode(["maybe"])


def test_ask_names_unknown_words_and_the_vocabulary():
    data = generate("val", 60)
    table = vqa.Questions.of(data.scenes)
    vocab, answers = Vocab.from_captions(table.text), vqa.Answers(table.answers)
    model = VQAModel(len(vocab), len(answers), hops=1, hidden=8, attention_hidden=4)
    top, maps = vqa.ask(model, vocab, answers, data.images[0], "Is there a RED circle?", k=3)
    assert len(top) == 3 and all(a in answers.words for a, _ in top) and maps[0].shape == (8, 8)
    with pytest.raises(ValueError, match="never seen the word 'zebra'") as err:
        vqa.ask(model, vocab, answers, data.images[0], "is there a zebra ?")
    assert "circle" in str(err.value) and "<NULL>" not in str(err.value)
    with pytest.raises(ValueError, match="Type a question"):
        vqa.ask(model, vocab, answers, data.images[0], "   ")

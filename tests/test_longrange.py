"""The synthetic tasks, the small models and their training loop of notebook 03."""

import numpy as np
import pytest
import torch

from utils import gates, longrange

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tasks_have_the_stated_answers():
    x, y = longrange.remember_first(50, 7, 4, 8, np.random.default_rng(0))
    assert x.shape == (50, 8) and np.array_equal(x[:, 0], y)
    assert x[:, 1:].min() >= 4 and x[:, 1:].max() < 12
    x, y = longrange.look_ahead(10, 6, 4, 2, np.random.default_rng(0))
    assert np.array_equal(y[:, :4], x[:, 2:]) and (y[:, 4:] == -1).all()


def test_every_core_gives_scores_per_step():
    for cell in longrange.CORES:
        m = longrange.Tagger(12, 4, hidden=6, cell=cell)
        assert m(torch.zeros(3, 5, dtype=torch.long)).shape == (3, 5, 4)
    assert longrange.Tagger(4, 4, hidden=6, cell="lstm", bidirectional=True, layers=2)(
        torch.zeros(2, 3, dtype=torch.long)).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="one layer"):
        longrange.Tagger(4, 4, cell="gru (lecture)", layers=2)
    with pytest.raises(ValueError, match="cell must be"):
        longrange.Tagger(4, 4, cell="transformer")


def test_keep_bias_lands_on_the_keeping_gate():
    lstm = longrange.Tagger(4, 4, hidden=3, cell="lstm", keep_bias=3.0).core
    assert torch.allclose(lstm.bias_ih_l0[3:6], torch.full((3,), 3.0))  # torch: i, f, g, o
    gru = longrange.Tagger(4, 4, hidden=3, cell="gru", keep_bias=3.0).core
    assert torch.allclose(gru.bias_ih_l0[3:6], torch.full((3,), 3.0))  # torch: r, z, n


def test_lecture_gru_matches_the_numpy_step():
    torch.manual_seed(0)
    core = longrange.LectureGRU(3, 4).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    out, _ = core(x)
    Wx = core.x2h.weight.detach().numpy().T
    Wh = np.concatenate([core.h2zr.weight.detach().numpy().T, core.h2n.weight.detach().numpy().T], axis=1)
    b = core.x2h.bias.detach().numpy()
    h = np.zeros((2, 4))
    for t in range(5):
        h, _ = gates.gru_step_forward(x[:, t].numpy(), h, Wx, Wh, b)
        assert np.allclose(h, out[:, t].detach().numpy(), atol=1e-12)


def test_layer_norm_rnn_normalises_each_example():
    core = longrange.LayerNormRNN(3, 5)
    with torch.no_grad():
        core.norm.weight.fill_(1.0)
        core.norm.bias.zero_()
        out, _ = core(torch.randn(4, 2, 3))
        a = torch.atanh(out.clamp(-0.999999, 0.999999))
    assert torch.allclose(a.mean(-1), torch.zeros(4, 2), atol=1e-4)


def test_training_solves_a_short_dependency():
    torch.manual_seed(0)
    model = longrange.Tagger(12, 4, hidden=16, cell="lstm")
    losses = longrange.train_tagger(model, lambda s: longrange.remember_first(32, 3, 4, 8, np.random.default_rng(s)),
                                    150, lr=1e-2)
    assert losses[-1] < losses[0]
    assert longrange.accuracy(model, *longrange.remember_first(200, 3, 4, 8, np.random.default_rng(99))) > 0.95


def test_recurrent_init_sets_every_recurrent_matrix():
    for layers, bidirectional in ((1, False), (2, True)):
        core = longrange.Tagger(4, 4, hidden=5, cell="rnn", layers=layers, bidirectional=bidirectional,
                                recurrent_init="orthogonal", recurrent_gain=2.0).core
        matrices = [p for name, p in core.named_parameters() if name.startswith("weight_hh")]
        assert len(matrices) == layers * (2 if bidirectional else 1)
        for W in matrices:  # orthogonal times 2: every singular value is 2
            assert torch.allclose(torch.linalg.svdvals(W.detach()), torch.full((5,), 2.0), atol=1e-5)
    identity = longrange.Tagger(4, 4, hidden=5, cell="rnn", recurrent_init="identity").core.weight_hh_l0
    assert torch.equal(identity.detach(), torch.eye(5))


def test_default_recurrent_init_leaves_torchs_initialisation():
    torch.manual_seed(3)
    plain = longrange.Tagger(12, 4, hidden=6, cell="rnn")
    torch.manual_seed(3)
    default = longrange.Tagger(12, 4, hidden=6, cell="rnn", recurrent_init="default")
    for (name, a), (_, b) in zip(plain.named_parameters(), default.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    radius = torch.linalg.eigvals(plain.core.weight_hh_l0.detach()).abs().max().item()
    assert radius < 1.0  # torch's uniform(+-1/sqrt(H)) start shrinks a signal at every step


def test_bad_recurrent_init_is_named():
    with pytest.raises(ValueError, match="recurrent_init must be one of"):
        longrange.Tagger(4, 4, cell="rnn", recurrent_init="zeros")
    with pytest.raises(ValueError, match="for the vanilla RNN"):
        longrange.Tagger(4, 4, cell="lstm", recurrent_init="orthogonal")


def test_sgd_step_is_capped_by_clipping_and_norms_are_recorded():
    def one_step(clip):
        torch.manual_seed(0)
        model = longrange.Tagger(12, 4, hidden=8, cell="rnn", recurrent_init="orthogonal", recurrent_gain=3.0)
        before = [p.detach().clone() for p in model.parameters()]
        norms = []
        longrange.train_tagger(model, lambda s: longrange.remember_first(16, 20, 4, 8, np.random.default_rng(s)), 1,
                               lr=0.5, clip=clip, optimizer="sgd", norms=norms)
        moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=True)))
        return moved.item(), norms

    moved, norms = one_step(None)
    assert len(norms) == 1 and moved == pytest.approx(0.5 * norms[0], rel=1e-4)  # SGD: the step is lr * g
    assert norms[0] > 0.1  # so that the clipped run below is really clipped
    moved, norms_clipped = one_step(0.1)
    assert norms_clipped == pytest.approx(norms) and moved == pytest.approx(0.5 * 0.1, rel=1e-4)


def test_bad_optimizer_is_named():
    with pytest.raises(ValueError, match="optimizer must be"):
        longrange.train_tagger(longrange.Tagger(12, 4, hidden=4), lambda s: None, 1, optimizer="rmsprop")

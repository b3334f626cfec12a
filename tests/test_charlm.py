"""The PyTorch char LM: cells, truncation, training, sampling, and the activations read for unit analysis."""

import numpy as np
import pytest
import torch

from utils import charlm, layers
from utils.data import text_corpus
from utils.models import CharLM, detach

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cells_and_shapes():
    for cell in ("rnn", "gru", "lstm"):
        m = CharLM(7, embed=4, hidden=5, cell=cell)
        scores, state, hidden = m(torch.zeros(2, 3, dtype=torch.long))
        assert scores.shape == (2, 3, 7) and hidden.shape == (2, 3, 5)
        d = detach(state)
        assert all(not s.requires_grad for s in (d if isinstance(d, tuple) else (d,)))
    with pytest.raises(ValueError, match="cell must be one of"):
        CharLM(7, cell="transformer")


def test_training_learns_a_periodic_text_and_history_is_complete():
    torch.manual_seed(0)
    c = text_corpus("abc", "abcd" * 2000)
    m = CharLM(c.vocab_size, embed=8, hidden=16, cell="gru")
    hist = charlm.train(m, c, 60, N=8, T=10, lr=1e-2, evals=3, val_chars=400)
    assert hist["step"] == [20, 40, 60] and len(hist["val_bpc"]) == 3
    assert hist["val_bpc"][-1] < 0.1 < hist["train_bpc"][0]


def test_hidden_states_give_h_and_c_of_an_lstm():
    torch.manual_seed(0)
    m = CharLM(6, embed=3, hidden=4, cell="lstm")
    ids = np.array([0, 3, 5, 1, 2])
    acts = charlm.hidden_states(m, ids)
    _, (h, c), hidden = m(torch.as_tensor(ids)[None])
    assert acts.shape == (5, 8)
    assert np.allclose(acts[:, :4], hidden[0].detach().numpy(), atol=1e-6)
    assert np.allclose(acts[-1, 4:], c[0, 0].detach().numpy(), atol=1e-6)
    gru = CharLM(6, embed=3, hidden=4, cell="gru")
    assert charlm.hidden_states(gru, ids).shape == (5, 4)


def test_generate_uses_the_sampler_and_the_prime():
    torch.manual_seed(0)
    c = text_corpus("t", "hello world " * 50)
    m = CharLM(c.vocab_size, embed=4, hidden=8, cell="lstm")
    calls = []

    def sampler(scores, temperature, rng):
        calls.append((scores.shape, temperature))
        return layers.temperature_sample(scores, temperature, rng)

    text = charlm.generate(m, c, "he", 10, 0.7, np.random.default_rng(0), sampler)
    assert text.startswith("he") and len(text) == 12
    assert calls == [((1, c.vocab_size), 0.7)] * 10
    with pytest.raises(ValueError, match="prime"):
        charlm.generate(m, c, "", 3, 1.0, np.random.default_rng(0), sampler)
    with pytest.raises(ValueError, match="vocabulary"):
        charlm.generate(m, c, "HELLO", 3, 1.0, np.random.default_rng(0), sampler)


def test_bits_per_char_of_a_uniform_model():
    c = text_corpus("t", "abcdefgh" * 100)
    m = CharLM(c.vocab_size, embed=2, hidden=2, cell="rnn")
    with torch.no_grad():
        for p in m.head.parameters():
            p.zero_()
    assert abs(charlm.bits_per_char(m, c.val, N=2, T=7) - 3.0) < 1e-6

"""Training, evaluation and sampling for the PyTorch character language models of `utils.models`."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from .charrnn import streams
from .models import detach
from .train import History, clipped_update, device, device_of, progress


def _chunks(data, T):
    """Start columns of the full chunks of T steps in data: (N, L)."""
    return range(0, data.shape[1] - T, T)


@torch.no_grad()
def bits_per_char(model, ids, N=32, T=200):
    """Average bits per character of `model` on the 1-D ids, read as N streams with the state carried."""
    was_training = model.training
    model.eval()
    data = torch.as_tensor(streams(ids, N)).to(device_of(model))
    total, count, state = 0.0, 0, None
    for s in range(0, data.shape[1] - 1, T):
        x, y = data[:, s:s + T], data[:, s + 1:s + T + 1]
        scores, state, _ = model(x[:, : y.shape[1]], state)
        total += F.cross_entropy(scores.reshape(-1, scores.shape[-1]), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    model.train(was_training)
    return total / count / math.log(2)


def train(model, corpus, steps, N=64, T=50, lr=1e-2, clip=1.0, evals=10, val_chars=100_000, desc=None):
    """Truncated BPTT with Adam and gradient-norm clipping for a fixed number of steps.

    The learning rate falls linearly from `lr` to 0 over the steps: large steps early, fine ones at
    the end, which on a fixed budget beats any constant rate we tried.

    The training text is read as N parallel streams in chunks of T characters; the state is carried
    from chunk to chunk and detached at each boundary (that is the truncation). Every steps/evals
    steps the model is scored on the first `val_chars` of the validation text. Returns a history
    dict of lists: step, seconds (training time only), train_bpc (mean since the last evaluation),
    val_bpc. The model is moved to the GPU if there is one.
    """
    model.to(device())
    data = torch.as_tensor(streams(corpus.train, N)).to(device())
    starts = _chunks(data, T)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda done: 1 - done / steps)
    history = History(steps, evals)
    state = None
    model.train()
    for step in progress(1, steps + 1, desc or model.cell):
        with history.timed():
            s = starts[(step - 1) % len(starts)]
            if s == 0:
                state = None  # a new pass over the text starts from scratch
            x, y = data[:, s:s + T], data[:, s + 1:s + T + 1]
            scores, state, _ = model(x, detach(state))
            loss = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), y.reshape(-1))
            clipped_update(model, opt, loss, clip)
            schedule.step()
        history.add(train_bpc=loss.item() / math.log(2))
        if history.due(step):
            history.record(step, val_bpc=bits_per_char(model, corpus.val[:val_chars]))
    return history


@torch.no_grad()
def generate(model, corpus, prime, n, temperature, rng, sampler):
    """Continue the text `prime` by n characters, drawn one at a time by sampler(scores, temperature, rng).

    sampler is the learner's temperature_sample (numpy): it gets (1, V) scores and returns one index.
    """
    if not prime:
        raise ValueError("The prime text must hold at least one character.")
    model.eval()
    dev = device_of(model)
    scores, state, _ = model(torch.as_tensor(corpus.encode(prime), device=dev)[None], None)
    out = []
    for _ in range(n):
        nxt = int(np.asarray(sampler(scores[:, -1].double().cpu().numpy(), temperature, rng))[0])
        out.append(nxt)
        scores, state, _ = model(torch.tensor([[nxt]], device=dev), state)
    return prime + corpus.decode(out)


@torch.no_grad()
def hidden_states(model, ids):
    """Activations after every character of the 1-D ids, as a numpy array (len(ids), units).

    For a one-layer LSTM the units are the hidden state h (columns 0..H-1) and the cell state c
    (columns H..2H-1): nn.LSTM returns c for the last step only, so the text is fed one character at
    a time. For the other cells, the hidden state h.
    """
    model.eval()
    x = torch.as_tensor(np.asarray(ids), device=device_of(model))[None]
    if model.cell != "lstm" or model.rnn.num_layers != 1:
        return model(x, None)[2][0].cpu().numpy()
    rows, state = [], None
    for t in range(x.shape[1]):
        _, state, _ = model(x[:, t:t + 1], state)
        rows.append(torch.cat([state[0][0, 0], state[1][0, 0]]))
    return torch.stack(rows).cpu().numpy()

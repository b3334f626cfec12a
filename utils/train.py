"""What every trainer of the course shares: fast mode and step counts, a numpy Adam, the device,
the clipped optimiser step, the progress bar and the training history.

Training always runs a fixed number of steps (never a wall-clock budget) so a notebook gives the
same numbers on the same machine whatever else the machine is doing. torch is imported inside the
functions that need it: notebook 01 is numpy only and should not pay for importing it.
"""

import os
import time
from contextlib import contextmanager

import numpy as np
from tqdm.auto import trange

#: Set COURSE_FAST=1 to shrink step counts (the lectures run this way in `make test`).
FAST = os.environ.get("COURSE_FAST", "") not in ("", "0")

#: Seconds between progress-bar redraws. Each redraw is a message from the kernel; a test runner that reads
#: them only after a long cell ends can find the kernel's outgoing queue (1,000 messages) overflowed and
#: the end-of-cell message dropped, so long training cells redraw once a second, not ten times.
PROGRESS_INTERVAL = 1.0


def steps(full, fast):
    """The number of training steps: `full` normally, `fast` in fast mode."""
    return fast if FAST else full


def progress(start, stop, desc=None):
    """range(start, stop) with a progress bar that redraws at most once a second and vanishes when done."""
    return trange(start, stop, desc=desc, leave=False, mininterval=PROGRESS_INTERVAL)


def device():
    """The GPU when there is one, else the CPU: the notebooks use the same step counts on both."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_of(model):
    """The device a model's parameters live on, where its inputs must go."""
    return next(model.parameters()).device


def clipped_update(model, opt, loss, clip):
    """One optimiser step on `loss`, with the gradients first scaled to a global L2 norm of at most `clip`
    (None: not clipped). Returns the gradient's global norm before clipping, as a float."""
    import torch

    opt.zero_grad()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf") if clip is None else clip)
    opt.step()
    return norm.item()


class History(dict):
    """The record of a training run, a dict of lists: step, seconds (training time only), and for every value
    passed to `add`, its mean since the previous entry; `record` may add values measured at that moment (a
    validation score). An entry is due every `steps // entries` steps and at the last step.
    """

    def __init__(self, steps, entries):
        super().__init__(step=[], seconds=[])
        self.steps, self.every = steps, max(1, steps // entries)
        self.elapsed, self.running = 0.0, {}

    @contextmanager
    def timed(self):
        """Count the time spent inside the block as training time (evaluations stay outside it)."""
        tick = time.perf_counter()
        try:
            yield
        finally:
            self.elapsed += time.perf_counter() - tick

    def add(self, **values):
        for name, value in values.items():
            self.running.setdefault(name, []).append(float(value))

    def due(self, step):
        return step % self.every == 0 or step == self.steps

    def record(self, step, **measured):
        self["step"].append(step)
        self["seconds"].append(self.elapsed)
        for name, values in {**{k: np.mean(v) for k, v in self.running.items()}, **measured}.items():
            self.setdefault(name, []).append(float(values))
        self.running = {}


class Adam:
    """Adam for a dict of numpy parameter arrays (updated in place).

    Adam rescales each parameter's step by a running estimate of its gradient's size, which makes
    one learning rate work for weights whose gradients differ by orders of magnitude.
    """

    def __init__(self, params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads):
        b1, b2 = self.betas
        self.t += 1
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g**2
            m_hat = self.m[k] / (1 - b1**self.t)
            v_hat = self.v[k] / (1 - b2**self.t)
            self.params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

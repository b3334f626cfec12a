"""Training helpers shared by the notebooks: fast mode, seeding, a numpy Adam.

Training always runs a fixed number of steps (never a wall-clock budget) so a notebook gives the
same numbers on the same machine whatever else the machine is doing.
"""

import os

import numpy as np

#: Set COURSE_FAST=1 to shrink step counts (the lectures run this way in `make test`).
FAST = os.environ.get("COURSE_FAST", "") not in ("", "0")


def steps(full, fast):
    """The number of training steps: `full` normally, `fast` in fast mode."""
    return fast if FAST else full


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

"""Auto-checks for the course's exercises.

In a notebook::

    from utils import check
    rnn_step_forward = check("rnn_step_forward", rnn_step_forward)   # shows a pass/fail box

`check(name, fn)` returns `fn` once it passes and the reference implementation until then. A backward
pass is checked with the forward whose cache it reads, and the pair comes back:
`forward, backward = check("name", backward, forward=forward)`.
`check.run(name, fn, seed=None, forward=None)` returns a Result (`.passed`, `.message`) and shows nothing;
the seed a failure prints replays exactly that case.
`check.EXERCISES` names every exercise. From the shell: `python -m utils.check NOTEBOOK...`.
"""

import sys
import types

from . import attention, bptt, captioning, gated, rnn_basics, vqa  # noqa: F401  (register the exercises of notebooks 01 to 06)
from .core import Result, exercises, get, run
from .core import check as _check

EXERCISES = tuple(ex.name for ex in exercises())

__all__ = ["EXERCISES", "Result", "exercises", "get", "run"]


class _CallableModule(types.ModuleType):
    """Lets the module itself be called, so notebooks write `check("name", fn)`."""

    def __call__(self, name, fn, forward=None):
        return _check(name, fn, forward=forward)


sys.modules[__name__].__class__ = _CallableModule

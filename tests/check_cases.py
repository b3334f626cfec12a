"""The two assertions every check must satisfy, shared by the per-notebook check tests.

Each runs the check 20 times, each time on fresh random inputs (and the deterministic edge cases), so
that a verdict which depends on the draw shows up here rather than in a learner's notebook.
"""

from utils import check

REPEATS = 20


def assert_check_passes(name, fn, repeats=REPEATS, forward=None):
    """A correct implementation passes on fresh random inputs, every time."""
    for _ in range(repeats):
        result = check.run(name, fn, forward=forward)
        assert result.passed, result.message


def assert_check_fails(name, fn, label, repeats=REPEATS, forward=None):
    """A wrong implementation fails (or errors) every time, with a message."""
    for _ in range(repeats):
        result = check.run(name, fn, forward=forward)
        assert not result.passed, f"{label} passed (seed {result.seed})"
        assert result.status in ("failed", "error"), result.message
        assert result.message.strip()

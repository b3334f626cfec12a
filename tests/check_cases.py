"""The two assertions every check must satisfy, shared by the per-notebook check tests."""

from utils import check


def assert_check_passes(name, fn, repeats=3):
    """A correct implementation passes on fresh random inputs, every time."""
    for _ in range(repeats):
        result = check.run(name, fn)
        assert result.passed, result.message


def assert_check_fails(name, fn, label, repeats=3):
    """A wrong implementation fails (or errors) every time, with a message."""
    for _ in range(repeats):
        result = check.run(name, fn)
        assert not result.passed, f"{label} passed"
        assert result.status in ("failed", "error")
        assert result.message.strip()

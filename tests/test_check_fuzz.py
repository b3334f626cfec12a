"""Whatever a learner's function returns or raises, every check returns a failed result with a message:
it never raises, never passes such a function, and notices when an input was changed in place."""

import copy

import numpy as np
import pytest

from utils import check


def _nan_like(value):
    """The reference's output with every number replaced by NaN (same types and shapes)."""
    if isinstance(value, np.ndarray):
        return np.full(value.shape, np.nan)
    if hasattr(value, "detach"):
        return value * float("nan")
    if isinstance(value, tuple | list):
        return type(value)(_nan_like(v) for v in value)
    if isinstance(value, dict):
        return {k: _nan_like(v) for k, v in value.items()}
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float("nan")
    return value


def _scramble(value):
    """Change every array, tensor, list and dict inside `value` in place; True if anything was changed."""
    if isinstance(value, np.ndarray) and value.size and value.flags.writeable:
        if value.dtype.kind == "f":
            value *= 0.5
            value += 1.0
        else:
            value[...] = value[::-1] if value.ndim else value
            value.flat[0] = value.flat[0] + 1 if value.dtype.kind in "iu" else value.flat[0]
        return True
    if hasattr(value, "detach") and hasattr(value, "mul_"):
        value.mul_(0.5).add_(1.0)
        return True
    if isinstance(value, list):
        changed = [_scramble(v) for v in value]
        if not any(changed):
            value.append(value[-1] if value else 0)
        return True
    if isinstance(value, tuple):
        return any([_scramble(v) for v in value])
    if isinstance(value, dict):
        return any([_scramble(v) for v in value.values()])
    return False


def _raises(exc):
    def fn(*args):
        raise exc

    return fn


def _fuzzers(ex):
    ref = ex.reference

    def nan(*args):
        return _nan_like(ref(*copy.deepcopy(args)))

    def generator(*args):
        return (v for v in ref(*copy.deepcopy(args)))

    def mutating(*args):
        out = ref(*copy.deepcopy(args))
        # scramble what the check compares: every argument but callbacks and the parameters a step updates
        assert any(_scramble(a) for a in args if not callable(a))
        return out

    return {
        "returns None": lambda *a: None,
        "returns a string": lambda *a: "a string",
        "returns a number": lambda *a: 3.0,
        "returns a dict": lambda *a: {"x": 1},
        "returns an empty list": lambda *a: [],
        "returns a generator": generator,
        "returns NaN of the right shapes": nan,
        "raises ValueError": _raises(ValueError("boom")),
        "raises ZeroDivisionError": _raises(ZeroDivisionError("division by zero")),
        "calls sys.exit": _raises(SystemExit(3)),
        "takes no arguments": lambda: None,
        "takes one argument": lambda a: None,
        "changes its inputs in place": mutating,
    }


CASES = [(ex.name, label) for ex in check.exercises() for label in _fuzzers(ex)]


@pytest.mark.parametrize("name,label", CASES)
def test_the_check_never_raises_and_never_passes(name, label):
    fn = _fuzzers(check.get(name))[label]
    result = check.run(name, fn)
    assert result.status in ("failed", "error"), f"{name}: '{label}' gave {result.status}"
    assert result.message.strip()
    if label == "changes its inputs in place" and name != "truncated_bptt":  # see below
        assert "in place" in result.message or result.status == "error", result.message


@pytest.mark.parametrize("name", [ex.name for ex in check.exercises()])
def test_an_input_changed_in_place_is_named(name):
    """The mutating function returns the reference's (right) answer, so only the change can fail it."""
    if name == "truncated_bptt":  # its loop hands `params` to step(), which updates them; data and h0 are checked
        pytest.skip("covered by test_check_bptt")
    result = check.run(name, _fuzzers(check.get(name))["changes its inputs in place"])
    assert "modified its input" in result.message, result.message


def test_the_mutating_fuzzer_does_change_something():
    args = [np.zeros(3), {"a": np.ones(2)}, [["a", "b"]]]
    before = copy.deepcopy(args)
    assert all(_scramble(a) for a in args)
    assert not np.array_equal(args[0], before[0]) and args[2] != before[2]

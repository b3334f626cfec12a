"""Reusable tests: run the learner's function and the reference on the same fresh random inputs.

Inputs are drawn from an unseeded generator on every run, so a function that returns memorised
numbers cannot pass; the learner always gets private copies, so modifying an input in place is
caught instead of silently corrupting the comparison.
"""

import copy

import numpy as np

from .compare import Failure, as_array, assert_close
from .core import LearnerError, call_learner


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    if isinstance(value, tuple | list):
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, dict):
        return "dict of " + ", ".join(f"{k} {_describe(v)}" for k, v in value.items())
    if callable(value):
        return "a function"
    return repr(value)


def describe_inputs(args):
    return ", ".join(
        f"{k}: {_describe(v)}" if not isinstance(v, int | float | str) else f"{k}={v!r}"
        for k, v in args.items()
        if not isinstance(v, np.random.Generator)
    )


def call_checked(fn, args):
    """Call `fn(*copies of args)` and fail if it changed any of its inputs.

    Arguments go by position, so the learner may name the parameters as they like.
    """
    mine = copy.deepcopy(args)
    try:
        out = call_learner(fn, *mine.values())
    except LearnerError as err:
        err.inputs = describe_inputs(args)
        raise
    for k, v in args.items():
        if isinstance(v, np.ndarray) and not np.array_equal(v, mine[k], equal_nan=True):
            raise Failure(
                f"Your function modified its input `{k}` in place.",
                "Use `x = x + 1` rather than `x += 1` on an input, or work on a copy.",
            )
    return out


def returns(*names):
    """Output spec for a function returning the tuple `names`; entries named "cache" are not compared."""
    listed = ", ".join(names)

    def select(result):
        if not isinstance(result, tuple | list) or len(result) != len(names):
            got = f"a tuple of length {len(result)}" if isinstance(result, tuple | list) else type(result).__name__
            raise Failure(
                f"Expected the function to return a tuple ({listed}); got {got}.",
                f"End your function with `return {listed}`.",
            )
        return {n: v for n, v in zip(names, result, strict=True) if n != "cache"}

    return select


def value_test(make_args, select, rtol, atol=0.0, locate=None, hint=None):
    """A test comparing every selected output with the reference's.

    make_args(rng) -> dict of keyword arguments; select(result) -> {output name: value};
    locate(index) -> a hint from where the first wrong value sits (e.g. "step 0 is right");
    hint: what to look at when this test fails for no recognised reason.
    """

    def test(fn, ex):
        args = make_args(np.random.default_rng())
        expected = select(ex.reference(*copy.deepcopy(args).values()))
        got = select(call_checked(fn, args))
        try:
            for name, value in expected.items():
                assert_close(name, got[name], value, rtol, atol)
        except Failure as f:
            known = _known_mistake(ex, args, got, select)
            if known:
                f.hint = known
            elif locate is not None and f.index is not None:
                f.hint = locate(f.index) or f.hint
            elif hint:
                f.hint = hint
            f.message += f"\nInputs: {describe_inputs(args)}"
            raise

    return test


def _known_mistake(ex, args, got, select):
    """The hint of the registered mistake whose output equals the learner's, if any."""
    for wrong, hint in ex.mistakes:
        try:
            theirs = select(wrong(*copy.deepcopy(args).values()))
            for name, value in theirs.items():
                assert_close(name, got[name], value, 1e-6, 1e-9)
        except Exception:
            continue
        return hint
    return None


def _gradient_gap(mine, num, scale, threshold):
    """None if mine matches num within threshold * scale; else a sentence on the worst entry.

    The error is relative to the largest gradient entry (`scale`): tiny entries carry finite-difference
    noise that an element-wise relative error would blow up.
    """
    diff = np.abs(mine - num)
    err = np.max(diff) / max(1e-12, scale)
    if err < threshold:
        return None
    idx = tuple(int(i) for i in np.unravel_index(np.argmax(diff), num.shape))
    return (f"max difference {err:.2e} of the largest entry (allowed {threshold:.0e}); worst at index {idx}: "
            f"numerical {num[idx]:.6g}, yours {mine[idx]:.6g}.")


def numeric_gradient_test(make_args, loss_and_grad, wrt, threshold=1e-6):
    """Compare the learner's analytic gradient with centred differences of the learner's own loss.

    loss_and_grad(result) -> (scalar loss, gradient with respect to args[wrt]).
    The error is measured relative to the largest gradient entry, since tiny entries carry
    finite-difference noise that an element-wise relative error would blow up.
    """
    from ..gradcheck import numerical_gradient

    def test(fn, ex):
        args = make_args(np.random.default_rng())
        _, grad = loss_and_grad(call_checked(fn, args))

        def f(x):
            return loss_and_grad(call_learner(fn, *{**args, wrt: x}.values()))[0]

        num = numerical_gradient(f, args[wrt].copy())
        analytic = np.asarray(grad, dtype=np.float64)
        if analytic.shape != num.shape:
            raise Failure(f"The gradient has shape {analytic.shape}; expected {num.shape}.")
        gap = _gradient_gap(analytic, num, max(np.max(np.abs(num)), np.max(np.abs(analytic))), threshold)
        if gap:
            raise Failure(
                f"Your gradient disagrees with the numerical gradient of your own loss: {gap}"
                f"\nInputs: {describe_inputs(args)}",
                "If the loss is right (it passed above), the gradient formula is off: softmax minus "
                "one-hot, masked, divided by N.",
            )

    return test


def backward_gradient_test(forward, make_inputs, grads, threshold=1e-6):
    """Compare the learner's backward pass with centred differences of the reference forward pass.

    make_inputs(rng) -> dict of the forward's inputs. The test draws an upstream gradient dout, runs
    the reference forward for its cache, calls the learner's backward(dout, cache) and checks each
    returned gradient against the numerical gradient of sum(forward(...)[0] * dout). `grads` names the
    returned tuple (or the one array, for a single gradient), each entry "d" + the name of an input.
    Float64 throughout, so 1e-6 is generous.
    """
    from ..gradcheck import numerical_gradient

    def test(fn, ex):
        rng = np.random.default_rng()
        inputs = make_inputs(rng)
        out, cache = forward(*copy.deepcopy(inputs).values())
        dout = rng.standard_normal(out.shape)
        result = call_checked(fn, {"dout": dout, "cache": cache})
        got = returns(*grads)(result if len(grads) > 1 or isinstance(result, tuple | list) else (result,))
        for name in grads:
            wrt = name[1:]

            def f(value, wrt=wrt):
                return float(np.sum(forward(*{**inputs, wrt: value}.values())[0] * dout))

            num = numerical_gradient(f, inputs[wrt].copy())
            mine = as_array(name, got[name], num)
            gap = _gradient_gap(mine, num, np.max(np.abs(num)), threshold)
            if gap:
                raise Failure(
                    f"`{name}` disagrees with the numerical gradient: {gap}\nInputs: {describe_inputs(inputs)}",
                    f"Derive {name} with the chain rule through the forward pass, one operation at a time.",
                )

    return test

"""Reusable tests: run the learner's function and the reference on the same seeded random inputs.

Inputs come from the trial's generator, seeded afresh on every run (so a function that returns
memorised numbers cannot pass) and printed with a failure (so the case can be replayed). The learner
always gets private copies of the inputs, and every input -- arrays, tensors, and the lists, tuples and
dicts holding them -- is compared afterwards, so modifying an input in place is reported instead of
silently corrupting the comparison.
"""

import copy
import inspect

import numpy as np

from .compare import Failure, as_array, compare_outputs, kind
from .core import LearnerError, call_learner, qualname
from .vjp import backpropagate, leaf_inputs


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    if isinstance(value, tuple | list) and _only_words(value):  # a corpus: short enough to show
        text = repr(value)
        return text if len(text) <= 400 else text[:400] + " ..."
    if isinstance(value, tuple | list):
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, dict):
        return "dict of " + ", ".join(f"{k} {_describe(v)}" for k, v in value.items())
    if callable(value):
        return "a function"
    return repr(value)


def _only_words(value):
    return all(isinstance(v, str) or isinstance(v, list | tuple) and _only_words(v) for v in value)


def describe_inputs(args):
    def one(k, v):
        if isinstance(v, float | np.floating):
            return f"{k}={float(v):.4g}"
        if isinstance(v, int | str | np.integer):
            return f"{k}={v!r}" if not isinstance(v, np.integer) else f"{k}={int(v)}"
        return f"{k}: {_describe(v)}" if not (isinstance(v, list) and _only_words(v)) else f"{k}={_describe(v)}"

    return ", ".join(one(k, v) for k, v in args.items() if not isinstance(v, np.random.Generator))


def _is_tensor(value):
    return type(value).__module__.startswith("torch") and hasattr(value, "clone")


def _is_module(value):
    return any(c.__module__ == "torch.nn.modules.module" and c.__name__ == "Module" for c in type(value).__mro__)


def snapshot(value):
    """A deep copy of an input, tensors included (a copy the learner never sees)."""
    return copy.deepcopy(value)


def changed(before, after, path):
    """Where `after` differs from its snapshot `before` (a path such as "grads['Wx']"), or None."""
    if isinstance(before, np.ndarray):
        same = (isinstance(after, np.ndarray) and after.shape == before.shape
                and np.array_equal(after, before, equal_nan=before.dtype.kind in "fc"))
        return None if same else path
    if _is_module(before):
        if not _is_module(after):
            return path
        mine = after.state_dict()
        return next((f"{path}.{k}" for k, v in before.state_dict().items() if changed(v, mine.get(k), k)), None)
    if _is_tensor(before):
        import torch

        same = _is_tensor(after) and after.shape == before.shape and bool(torch.equal(
            torch.nan_to_num(after.detach()), torch.nan_to_num(before.detach())))
        return None if same else path
    if isinstance(before, list | tuple):
        if not isinstance(after, list | tuple) or len(after) != len(before):
            return path
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            where = changed(b, a, f"{path}[{i}]")
            if where:
                return where
        return None
    if isinstance(before, dict):
        if not isinstance(after, dict) or set(after) != set(before):
            return path
        for k in before:
            where = changed(before[k], after[k], f"{path}[{k!r}]")
            if where:
                return where
    if isinstance(before, str | bytes | int | float | bool) and (type(after) is not type(before) or after != before):
        return path
    return None


def call(fn, args, keep=(), hint=None, copies=None):
    """Call `fn(*copies of args)` and fail if it changed any of its inputs.

    Arguments go by position, so the learner may name the parameters as they like. Names in `keep` are
    passed as they are (callbacks, and objects the learner is meant to update, such as parameters an
    optimiser step changes). hint: what to say if the function raises. copies: the copies to pass, where the
    caller has made them (call_vjp's leaf tensors).
    """
    if getattr(fn, "passes_handles", False):  # a graded submission's function: kept values travel as handles
        from .wire import ByHandle

        mine = {k: (ByHandle(v) if k in keep else copies[k] if copies else snapshot(v)) for k, v in args.items()}
    else:
        mine = {k: (v if k in keep else copies[k] if copies else snapshot(v)) for k, v in args.items()}
    return _checked_call(fn, args, mine, keep, hint)


def _checked_call(fn, args, mine, keep, hint, invoke=None):
    try:
        out = (invoke or (lambda: call_learner(fn, *mine.values(), hint=hint)))()
    except LearnerError as err:
        err.inputs = describe_inputs(args) + (f"\n{hint.note}" if hasattr(hint, "note") else "")
        raise
    if inspect.isgenerator(out):
        raise Failure("Your function returned a generator: it uses `yield`, so none of its code has run yet.",
                      "Collect the results in a list (or an array) and `return` them, as the docstring says.")
    for k, v in args.items():
        if k in keep:
            continue
        where = changed(v, mine[k], k)
        if where:
            raise Failure(f"Your function modified its input `{where}` in place.",
                          "Use `x = x * 2` rather than `x *= 2` on an input (or on an array inside a list or "
                          "dict you were given), or work on a copy: callers still need their values.")
    return out


def call_vjp(fn, args, wrt, cotangents, hint=None):
    """Call a PyTorch function of the learner and backpropagate through it: (outputs, gradients).

    wrt names the inputs to differentiate with respect to: an argument ("u"), or a parameter of a module
    argument ("attention.W_k.weight"); cotangents, one per output (None for an output that sends no
    gradient), weight the outputs as in torch.autograd.grad's grad_outputs. The gradients come back in
    wrt's order, None where no gradient reached an input; None altogether when an output that should send one
    carries no graph. Inputs are the learner's own leaf copies, compared with the originals afterwards as
    `call` does. A graded submission's function does the same in its worker, where the graph lives.
    """
    if getattr(fn, "passes_handles", False):
        mine = {k: snapshot(v) for k, v in args.items()}
        holder = {}

        def remote(*values):
            out, holder["grads"] = fn.vjp(list(values), [_path(args, w) for w in wrt], list(cotangents))
            return out

        def invoke():
            return call_learner(remote, *mine.values(), hint=hint)

        out = _checked_call(fn, args, mine, (), hint, invoke)
        return out, holder["grads"]
    mine = {k: snapshot(v) for k, v in args.items()}
    leaves = leaf_inputs(mine, [_path(args, w) for w in wrt])
    out = _checked_call(fn, args, mine, (), hint)
    return out, backpropagate(out, leaves, cotangents)


def _path(args, name):
    """(position of the argument, parameter name or "") for a wrt entry."""
    arg, _, param = name.partition(".")
    return list(args).index(arg), param


def returns(*names):
    """Output spec for a function returning the tuple `names`; entries named "cache" are not compared.

    With a single name the function returns that one value, not a tuple.
    """
    listed = ", ".join(names)

    def select(result):
        if len(names) == 1:
            if isinstance(result, tuple | list) and not isinstance(result, np.ndarray):
                raise Failure(f"Expected the function to return `{names[0]}` alone; got {kind(result)}.",
                              f"End your function with `return {names[0]}`, not a tuple.")
            return {names[0]: result}
        if not isinstance(result, tuple | list) or len(result) != len(names):
            raise Failure(f"Expected the function to return a tuple ({listed}); got {kind(result)}.",
                          f"End your function with `return {listed}`.")
        return {n: v for n, v in zip(names, result, strict=True) if n != "cache"}

    return select


def _safe_select(select, result):
    """select(result), with anything but a Failure (an odd object from the learner) turned into one."""
    try:
        return select(result)
    except Failure:
        raise
    except Exception as exc:
        raise Failure(f"The check could not read what your function returned ({kind(result)}): "
                      f"{type(exc).__name__}: {exc}") from None


def known_mistake(mistakes, compute, got):
    """The hint of the first mistake whose outputs equal `got`; compute(wrong) -> that mistake's outputs."""
    for wrong, hint in mistakes:
        try:
            theirs = compute(wrong)
            if all(np.shape(got[name]) == np.shape(value) for name, value in theirs.items()):
                compare_outputs(theirs, got, 1e-6, 1e-9)
                return hint
        except Exception:
            continue
    return None


def value_test(make_args, select, rtol, atol=0.0, locate=None, hint=None, keep=()):
    """A test comparing every selected output with the reference's.

    make_args(rng) -> dict of arguments; select(result) -> {output name: value};
    locate(index) -> a hint from where the first wrong value sits (e.g. "step 0 is right");
    hint: what to look at when this test fails for no recognised reason.
    """

    def test(trial):
        ex = trial.exercise
        args = make_args(trial.rng)
        expected = select(ex.reference(*snapshot(args).values()))
        got = _safe_select(select, call(trial.fn, args, keep=keep))
        try:
            compare_outputs(expected, got, rtol, atol)
        except Failure as f:
            known = known_mistake(ex.mistakes, lambda wrong: select(wrong(*snapshot(args).values())), got)
            if known:
                f.hint = known
            elif locate is not None and f.index is not None:
                f.hint = locate(f.index) or f.hint
            elif hint:
                f.hint = hint
            f.message += f"\nInputs: {describe_inputs(args)}"
            raise

    return test


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
    return (f"the largest difference, at index {idx}, is {err:.2e} of the largest entry (allowed {threshold:.0e}): "
            f"numerical {num[idx]:.6g}, yours {mine[idx]:.6g}.")


def numeric_gradient_test(make_args, loss_and_grad, wrt, threshold=1e-6):
    """Compare the learner's analytic gradient with centred differences of the learner's own loss.

    loss_and_grad(result) -> (scalar loss, gradient with respect to args[wrt]).
    """
    from ..gradcheck import numerical_gradient

    def test(trial):
        args = make_args(trial.rng)
        _, grad = _safe_select(loss_and_grad, call(trial.fn, args))

        def f(x):
            return float(loss_and_grad(call_learner(trial.fn, *{**args, wrt: x}.values()))[0])

        num = numerical_gradient(f, args[wrt].copy())
        analytic = as_array(f"d{wrt}", grad, num).astype(np.float64)
        gap = _gradient_gap(analytic, num, max(np.max(np.abs(num)), np.max(np.abs(analytic))), threshold)
        if gap:
            raise Failure(
                f"Your gradient disagrees with the numerical gradient of your own loss: {gap}"
                f"\nInputs: {describe_inputs(args)}",
                "If the loss is right (it passed above), the gradient formula is off: softmax minus "
                "one-hot, masked, divided by N.")

    return test


# --- backward passes, judged with the cache of the forward they are paired with -----------------------

def _paired_cache(trial, inputs, outputs, ref_outs):
    """The cache the learner's backward gets: the paired forward's, after checking that forward's outputs.

    outputs: the forward's output names without the cache; ref_outs: the reference forward's outputs.
    """
    ex, forward = trial.exercise, trial.forward
    if forward is ex.forward:
        return snapshot(ref_outs[-1])
    raw = call(forward, inputs, hint=f"The forward pass you paired this backward with raised. Is it the forward of "
                                     f"this exercise ({ex.forward_name}, with the arguments "
                                     f"{', '.join(inputs)})?")
    theirs = _safe_select(returns(*outputs, "cache"), raw)
    try:
        compare_outputs(dict(zip(outputs, ref_outs[:-1], strict=True)), theirs, 1e-7)
    except Failure as f:
        raise Failure(
            f"The forward pass `{getattr(forward, '__name__', 'forward')}` that this backward is paired with is "
            f"wrong, so its cache cannot be trusted:\n{f.message}",
            "Make the forward pass its own check first; the backward is judged on the cache your forward makes."
        ) from None
    return raw[-1]


def _layout(cache, depth=0):
    """The layout of a cache, e.g. "a tuple (int64 (4, 6), a tuple (7, 3))", to set beside an error reading it."""
    if isinstance(cache, np.ndarray):
        return f"{cache.dtype} {cache.shape}"
    if isinstance(cache, tuple | list) and depth < 2:
        items = ", ".join(_layout(v, depth + 1) for v in cache[:7]) + (", ..." if len(cache) > 7 else "")
        return f"a {type(cache).__name__} of {len(cache)} ({items})"
    if isinstance(cache, dict) and depth < 2:
        return "a dict {" + ", ".join(f"{k!r}: {_layout(v, depth + 1)}" for k, v in list(cache.items())[:10]) + "}"
    return kind(cache) if not isinstance(cache, int | float) else repr(cache)


def _cache_hint(trial, cache):
    """How to read an error of a backward pass: the layout of the cache it was given, and a hint on that cache
    when the error looks like a misreading of it (else the usual hint for the error)."""
    forward = trial.forward
    who = "the course's" if forward is trial.exercise.forward else "your"
    text = (f"Your backward raised while reading the cache that {who} forward `{qualname(forward)}` returned. Read "
            "the cache exactly as that forward built it, or pair the backward with the forward whose cache it "
            "expects: check(..., forward=your_forward).")

    def hint(err):
        line = (err.where[2] or "") if err.where else ""
        reads = "cache" in line or "unpack" in err.text or err.kind == "KeyError" or "indices must be" in err.text
        return text if reads else None

    hint.note = f"The cache it was given, from {who} forward `{qualname(forward)}`: {_layout(cache)}."
    return hint


def backward_test(make_inputs, outputs, upstream, grads, numeric=False, threshold=1e-6, rtol=1e-7):
    """The learner's backward pass, fed the cache of the forward it is paired with.

    make_inputs(rng) -> the forward's inputs (a dict); outputs: the forward's outputs before its cache,
    e.g. ("h",); upstream: the names of their upstream gradients in the backward's signature, e.g. ("dh",);
    grads: the names of the returned gradients, each "d" + an input's name (one name: a lone array).

    Compared with the reference pair's gradients (numeric=False), or with centred differences of the
    reference forward (numeric=True, relative to the largest entry; float64 throughout, so 1e-6 is
    generous). Each mistake is `(wrong(inputs, upstream) -> gradients, hint)`, written from the inputs,
    so it is recognised whatever the learner's cache holds.
    """
    from ..gradcheck import numerical_gradient

    def test(trial):
        ex = trial.exercise
        inputs = make_inputs(trial.rng)
        ref_outs = ex.forward(*snapshot(inputs).values())
        ups = tuple(trial.rng.standard_normal(np.shape(o)) for o in ref_outs[:-1])
        cache = _paired_cache(trial, inputs, outputs, ref_outs)
        args = {**dict(zip(upstream, ups, strict=True)), "cache": cache}
        got = _safe_select(returns(*grads), call(trial.fn, args, hint=_cache_hint(trial, cache)))
        if numeric:
            _numeric_compare(ex, inputs, ups, got, grads, threshold, numerical_gradient)
            return
        expected = returns(*grads)(ex.reference(*snapshot(ups), snapshot(ref_outs[-1])))
        try:
            compare_outputs(expected, got, rtol)
        except Failure as f:
            f.hint = known_mistake(ex.mistakes, lambda wrong: returns(*grads)(wrong(snapshot(inputs), snapshot(ups))),
                                   got) or f.hint or (
                "Derive each wrong gradient with the chain rule through the forward pass, one operation at a "
                "time; the right ones tell you which part of the backward already works.")
            f.message += f"\nInputs of the forward pass: {describe_inputs(inputs)}"
            raise

    return test


def _numeric_compare(ex, inputs, ups, got, grads, threshold, numerical_gradient):
    for name in grads:
        wrt = name[1:]

        def f(value, wrt=wrt):
            outs = ex.forward(*{**inputs, wrt: value}.values())[:-1]
            return float(sum(np.sum(o * u) for o, u in zip(outs, ups, strict=True)))

        num = numerical_gradient(f, np.array(inputs[wrt], dtype=np.float64))
        mine = as_array(name, got[name], num).astype(np.float64)
        gap = _gradient_gap(mine, num, np.max(np.abs(num)), threshold)
        if gap:
            raise Failure(
                f"`{name}` disagrees with the numerical gradient: {gap}\n"
                f"Inputs of the forward pass: {describe_inputs(inputs)}",
                f"Derive {name} with the chain rule through the forward pass, one operation at a time.")

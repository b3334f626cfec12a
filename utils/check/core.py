"""The exercise registry, the test runner and the check result a learner sees.

`check(name, fn)` runs the exercise's battery on `fn`, shows the result, and returns the function the
rest of the notebook should use: the learner's own once it passes, the reference until then. So an
unfinished notebook still runs top to bottom, and says which reference it is leaning on.

A backward pass is judged together with the forward pass whose cache it reads, `check(name, backward,
forward=...)`, and the pair is returned: both the learner's once the backward passes, both the
reference's otherwise, so a cache never travels between two implementations.

Every run draws one seed; each test's inputs come from a generator seeded by it, so the seed printed
with a failure replays exactly that case: `check.run(name, fn, seed=...)`.
"""

import html
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import grading
from .channel import RemoteError
from .compare import Failure

_REGISTRY = {}
_UTILS_DIR = str(Path(__file__).resolve().parents[1])
_LIBRARY_DIRS = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})

PASSED, FAILED, NOT_IMPLEMENTED, ERROR = "passed", "failed", "not implemented", "error"
GREEN, AMBER, RED, GREY = "#1a7f37", "#9a6700", "#cf222e", "#57606a"


@dataclass
class Exercise:
    """One exercise: the reference solution, the notebook it lives in, and its battery of tests.

    Each test is `(title, run)` where `run(trial)` raises compare.Failure when the learner's function is
    wrong. `mistakes` are `(wrong_fn, hint)` pairs: when a learner's output equals a known mistake's
    output, the check names the mistake instead of giving a generic hint. A backward exercise names its
    reference `forward` (whose cache the reference backward reads) and `forward_name`, the name the
    notebook gives the learner's forward, so that the progress summary can pair them as the notebook does.
    `uses` names the exercises this one is built on (rnn_forward calls rnn_step_forward): while a submission
    is graded, their references stay available to it, and no other.
    """

    name: str
    notebook: str
    reference: object
    tests: list
    mistakes: list = field(default_factory=list)
    forward: object = None
    forward_name: str = None
    uses: tuple = ()

    @property
    def is_backward(self):
        return self.forward is not None


@dataclass
class Trial:
    """What one test works with: the learner's function, the exercise, this test's seeded generator,
    and for a backward exercise the forward pass whose cache the learner's backward is given."""

    fn: object
    exercise: Exercise
    rng: np.random.Generator
    forward: object = None


def register(exercise):
    if exercise.name in _REGISTRY:
        raise ValueError(f"exercise {exercise.name!r} is registered twice")
    _REGISTRY[exercise.name] = exercise
    return exercise


def exercises():
    """Every registered exercise, in course order: by notebook, then in the order each notebook checks them."""
    return sorted(_REGISTRY.values(), key=lambda ex: ex.notebook)


def get(name):
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        names = ", ".join(ex.name for ex in exercises())
        raise ValueError(f"unknown exercise {name!r}; the exercises are: {names}") from None


def qualname(fn):
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', getattr(fn, '__name__', '?'))}"


class LearnerError(Exception):
    """The learner's function raised; `where` is the learner's own line that raised."""

    def __init__(self, exc, hint=None):
        super().__init__(str(exc))
        self.exc = exc
        if isinstance(exc, RemoteError):  # raised in a graded submission's worker, which sends its own lines only
            self.kind, self.text = exc.type_name, exc.message
            self.where = exc.frames[-1] if exc.frames else None
        else:
            self.kind, self.text = type(exc).__name__, str(exc)
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_learner_code(f.filename)]
            self.where = (frames[-1].filename, frames[-1].lineno, frames[-1].line) if frames else None
        self.inputs = ""
        self._hint = hint

    def describe(self):
        text = f"{self.kind}: {self.text}"
        if self.where is not None:
            _, lineno, line = self.where
            line = (line or "").strip()
            text += f"\nRaised at line {lineno} of your code" + (f": {line}" if line else ".")
        if self.inputs:
            text += f"\nInputs: {self.inputs}"
        return text

    @property
    def hint(self):
        special = self._hint(self) if callable(self._hint) else self._hint
        if special:
            return special
        msg, kind = self.text, self.kind
        if kind == "ValueError" and any(w in msg for w in ("mismatch", "broadcast", "shapes", "aligned")):
            return "A shape mismatch: write the shape of every operand of that line next to it; batch comes first."
        if kind == "TypeError" and "argument" in msg:
            return "Keep the function's signature as given: the check passes the arguments in that order."
        if kind == "IndexError":
            return "An index out of range: check the loop bounds against the shapes of the inputs."
        if kind == "KeyError":
            return "A key that is not there: print the dict's keys (`list(d)`) where that line reads it."
        if kind == "Refused":
            return "Compute the result in your own code; the course's implementation is the fallback, not a helper."
        return ""


def _is_learner_code(filename):
    """Frames of the learner's own code: not the course's utils, not an installed or standard library, and not
    a compiled extension's source (numpy's Cython frames carry relative names such as `_generator.pyx`)."""
    if filename.startswith(_UTILS_DIR) or "site-packages" in filename or filename.startswith(_LIBRARY_DIRS):
        return False
    return os.path.isabs(filename) or filename.startswith("<")


def call_learner(fn, *args, hint=None):
    """Call the learner's function; their exceptions become LearnerError (NotImplementedError passes)."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except (Exception, SystemExit) as exc:
        raise LearnerError(exc, hint) from exc


def _plural(n, word):
    return f"{n} {word}{'s' if n != 1 else ''}"


@dataclass(repr=False)
class Result:
    """What one check found. `passed` and `message` are the programmatic interface."""

    exercise: str
    status: str
    tests: list  # (title, "passed" | "failed" | "not run")
    detail: str = ""
    hint: str = ""
    reference: str = ""
    seconds: float = 0.0
    seed: int = 0
    replay: str = ""
    pair: bool = False

    @property
    def passed(self):
        return self.status == PASSED

    @property
    def headline(self):
        n, n_ok = len(self.tests), sum(s == PASSED for _, s in self.tests)
        if self.status == PASSED:
            done = "its one test passed" if n == 1 else f"all {n} tests passed"
            return f"{self.exercise}: {done}. Your implementation is used from here on."
        if self.status == NOT_IMPLEMENTED:
            return f"{self.exercise}: not implemented yet (it raises NotImplementedError)."
        failed = next((t for t, s in self.tests if s == FAILED), "?")
        verb = "raised an exception" if self.status == ERROR else "failed"
        return f"{self.exercise}: {verb} in test '{failed}' ({n_ok} of {_plural(n, 'test')} passed)."

    @property
    def fallback_note(self):
        if self.passed:
            return ""
        if self.pair:
            return (f"Until it passes, the rest of this notebook uses the reference pair {self.reference}: forward "
                    "and backward together, so that a cache never passes between two implementations.")
        return f"Until it passes, the rest of this notebook uses the reference implementation {self.reference}."

    @property
    def message(self):
        parts = [self.headline]
        if self.detail:
            parts.append(self.detail)
        if self.hint:
            parts.append(f"Hint: {self.hint}")
        if self.status in (FAILED, ERROR):
            parts.append("Tests: " + "; ".join(f"{t} [{s}]" for t, s in self.tests))
            if self.replay:
                parts.append(f"To replay exactly this case: {self.replay}")
        if self.fallback_note:
            parts.append(self.fallback_note)
        return "\n".join(parts)

    def __str__(self):
        mark = {PASSED: "PASS", NOT_IMPLEMENTED: "TODO"}.get(self.status, "FAIL")
        return f"[{mark}] {self.message}"

    __repr__ = __str__  # the text/plain form a front end without HTML shows

    def _repr_html_(self):
        colour = {PASSED: GREEN, NOT_IMPLEMENTED: AMBER}.get(self.status, RED)
        mark = {PASSED: "&#10004;", NOT_IMPLEMENTED: "&#9998;"}.get(self.status, "&#10008;")
        test_colour = {PASSED: GREEN, FAILED: RED}
        rows = "".join(
            f"<li style='color:{test_colour.get(s, GREY)}'>{html.escape(t)} &mdash; {s}</li>" for t, s in self.tests
        )
        body = f"<pre style='white-space:pre-wrap;margin:4px 0'>{html.escape(self.detail)}</pre>" if self.detail else ""
        hint = f"<div><b>Hint:</b> {html.escape(self.hint)}</div>" if self.hint else ""
        failing = self.status in (FAILED, ERROR)
        tests = f"<ul style='margin:4px 0'>{rows}</ul>" if failing else ""
        replay = (f"<div style='color:{GREY}'>To replay exactly this case: <code>{html.escape(self.replay)}</code>"
                  "</div>") if failing and self.replay else ""
        note = f"<div style='color:{GREY}'>{html.escape(self.fallback_note)}</div>" if self.fallback_note else ""
        return (
            f"<div class='course-check course-check-{self.status.replace(' ', '-')}' "
            f"style='border-left:6px solid {colour};padding:6px 10px;margin:4px 0;background:#f6f8fa'>"
            f"<b style='color:{colour}'>{mark} {html.escape(self.headline)}</b>{body}{hint}{tests}{replay}{note}</div>"
        )

    def to_dict(self):
        return {"exercise": self.exercise, "status": self.status, "message": self.message}


#: Seconds one check may take in a learner's session before the function under test is stopped (an endless loop).
TIME_LIMIT = 120


class CheckTimeout(Exception):
    """Raised inside a function under test that runs past TIME_LIMIT."""


@contextmanager
def _time_limit(seconds):
    """Interrupt the block after `seconds` with CheckTimeout, where a timer signal can (the main thread of a Unix
    process, as in a notebook's kernel); elsewhere (a grading judge's threads) the caller keeps time itself."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum, frame):
        raise CheckTimeout(f"stopped after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fresh_seed():
    return int.from_bytes(os.urandom(4), "little") >> 1


def _forward_for(ex, forward):
    if forward is not None and not ex.is_backward:
        raise ValueError(f"{ex.name!r} is not a backward pass: check it without `forward=`.")
    if forward is not None and not callable(forward):
        raise TypeError(f"`forward` must be the forward function whose cache the backward reads; got "
                        f"{type(forward).__name__}.")
    return forward if forward is not None else ex.forward


def run(name, fn, seed=None, forward=None):
    """Run exercise `name`'s tests on `fn` and return a Result; displays nothing.

    seed: replays a failure's exact inputs (every failure message prints its seed). forward: for a
    backward exercise, the forward pass whose cache `fn` reads (default: the reference's).
    """
    ex = get(name)
    forward = _forward_for(ex, forward)
    if seed is not None and (not isinstance(seed, int | np.integer) or seed < 0):
        raise TypeError(f"seed must be the non-negative integer a failure message prints; got {seed!r}.")
    seed = fresh_seed() if seed is None else int(seed)
    start = time.perf_counter()
    statuses = [[title, "not run"] for title, _ in ex.tests]
    reference = qualname(ex.reference)
    if ex.is_backward:
        reference = f"{qualname(ex.forward)} and {reference}"
    result = Result(name, PASSED, [], reference=reference, seed=seed, pair=ex.is_backward)
    if not callable(fn):
        result.status, result.detail = FAILED, f"Expected a function, got {type(fn).__name__}."
        statuses[0][1] = FAILED
    else:
        for i, (_, test) in enumerate(ex.tests):
            trial = Trial(fn, ex, np.random.default_rng([seed, i]), forward)
            try:
                with np.errstate(all="ignore"), _time_limit(TIME_LIMIT):
                    test(trial)
            except NotImplementedError:
                result.status, statuses = NOT_IMPLEMENTED, [[t, "not run"] for t, _ in ex.tests]
                break
            except LearnerError as err:
                result.status, result.detail, result.hint = ERROR, err.describe(), err.hint
                if isinstance(err.exc, CheckTimeout):
                    result.hint = (f"Your function ran for more than {TIME_LIMIT} s on inputs this small: an endless "
                                   "loop (a `while` whose counter never changes?) or a loop over far too many items.")
                statuses[i][1] = FAILED
                break
            except Failure as f:
                result.status, result.detail, result.hint = FAILED, f.message, f.hint or ""
                statuses[i][1] = FAILED
                break
            except CheckTimeout:
                result.status, result.detail = ERROR, f"The check itself ran past {TIME_LIMIT} s and was stopped."
                statuses[i][1] = FAILED
                break
            except TimeoutError:  # only a graded submission's worker can keep the judge waiting
                result.status, result.detail = ERROR, "Your function did not return within the time left for grading."
                statuses[i][1] = FAILED
                break
            except Exception as exc:  # whatever the learner returned, the check itself must not raise
                if getattr(exc, "ends_grading", False):  # a graded submission's broken connection
                    raise
                result.status = ERROR
                result.detail = (f"The check could not go on with what your function returned: "
                                 f"{type(exc).__name__}: {exc}")
                result.hint = "Return exactly the types and shapes the exercise's docstring describes."
                statuses[i][1] = FAILED
                break
            statuses[i][1] = PASSED
    result.tests = [tuple(s) for s in statuses]
    result.seconds = time.perf_counter() - start
    if result.status in (FAILED, ERROR):
        pair = f", forward={getattr(forward, '__name__', 'forward')}" if forward is not ex.forward else ""
        result.replay = f'check.run("{name}", {getattr(fn, "__name__", "fn")}, seed={seed}{pair})'
    return result


def check(name, fn, forward=None):
    """Check `fn`, show the result, and return what the notebook should use from here on.

    For a backward exercise, `forward` is required and the pair (forward, backward) is returned: the
    learner's two functions once the backward passes, the reference's two otherwise.
    """
    ex = get(name)
    if ex.is_backward and forward is None:
        raise TypeError(f'{name} reads the cache of a forward pass: write `{ex.forward_name}, {name} = '
                        f'check("{name}", {name}, forward={ex.forward_name})`, passing the forward whose cache '
                        "it reads.")
    result = run(name, fn, forward=forward)
    _show(result)
    if result.passed:
        return (forward, fn) if ex.is_backward else fn
    swaps = [(name, fn, ex.reference)] + ([(ex.forward_name, forward, ex.forward)] if ex.is_backward else [])
    grading.fail(result, swaps)  # raises when an autograder runs the notebook
    return (ex.forward, ex.reference) if ex.is_backward else ex.reference


def _show(result):
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        display(result)
    else:
        print(result)

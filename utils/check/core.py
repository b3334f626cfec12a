"""The exercise registry, the test runner and the check result a learner sees.

`check(name, fn)` runs the exercise's battery on `fn`, shows the result, and returns the function the
rest of the notebook should use: the learner's own once it passes, the reference until then. So an
unfinished notebook still runs top to bottom, and says which reference it is leaning on.
"""

import html
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import grading
from .compare import Failure

_REGISTRY = {}
_UTILS_DIR = str(Path(__file__).resolve().parents[1])

PASSED, FAILED, NOT_IMPLEMENTED, ERROR = "passed", "failed", "not implemented", "error"
GREEN, AMBER, RED, GREY = "#1a7f37", "#9a6700", "#cf222e", "#57606a"


@dataclass
class Exercise:
    """One exercise: the reference solution, the notebook it lives in, and its battery of tests.

    Each test is `(title, run)` where `run(fn, exercise)` raises compare.Failure when `fn` is wrong.
    `mistakes` are `(wrong_fn, hint)` pairs: when a learner's output equals a known mistake's output,
    the check names the mistake instead of giving a generic hint.
    """

    name: str
    notebook: str
    reference: object
    tests: list
    mistakes: list = field(default_factory=list)


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
    except KeyError:
        raise ValueError(f"unknown exercise {name!r}; the exercises are: {', '.join(_REGISTRY)}") from None


class LearnerError(Exception):
    """The learner's function raised; `where` is the learner's own line that raised."""

    def __init__(self, exc):
        super().__init__(str(exc))
        self.exc = exc
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_library(f.filename)]
        self.where = frames[-1] if frames else None
        self.inputs = ""

    def describe(self):
        text = f"{type(self.exc).__name__}: {self.exc}"
        if self.where is not None:
            line = (self.where.line or "").strip()
            text += f"\nRaised at line {self.where.lineno} of your code" + (f": {line}" if line else ".")
        if self.inputs:
            text += f"\nInputs: {self.inputs}"
        return text

    @property
    def hint(self):
        msg = str(self.exc)
        if isinstance(self.exc, ValueError) and any(w in msg for w in ("mismatch", "broadcast", "shapes", "aligned")):
            return "A shape mismatch: write the shape of every operand of that line next to it; batch comes first."
        if isinstance(self.exc, TypeError) and "argument" in msg:
            return "Keep the function's signature as given: the check passes the arguments in that order."
        if isinstance(self.exc, (IndexError, KeyError)):
            return "An index out of range: check the loop bounds against the shapes of the inputs."
        return ""


def _is_library(filename):
    return filename.startswith(_UTILS_DIR) or "site-packages" in filename or filename.startswith(sys.prefix)


def call_learner(fn, *args):
    """Call the learner's function; their exceptions become LearnerError (NotImplementedError passes)."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Exception as exc:
        raise LearnerError(exc) from exc


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

    @property
    def passed(self):
        return self.status == PASSED

    @property
    def headline(self):
        n_ok = sum(s == PASSED for _, s in self.tests)
        if self.status == PASSED:
            return f"{self.exercise}: all {len(self.tests)} tests passed. Your implementation is used from here on."
        if self.status == NOT_IMPLEMENTED:
            return f"{self.exercise}: not implemented yet (it raises NotImplementedError)."
        failed = next((t for t, s in self.tests if s == FAILED), "?")
        verb = "raised an exception" if self.status == ERROR else "failed"
        return f"{self.exercise}: {verb} in test '{failed}' ({n_ok} of {len(self.tests)} tests passed)."

    @property
    def fallback_note(self):
        if self.passed:
            return ""
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
        tests = f"<ul style='margin:4px 0'>{rows}</ul>" if self.status in (FAILED, ERROR) else ""
        note = f"<div style='color:{GREY}'>{html.escape(self.fallback_note)}</div>" if self.fallback_note else ""
        return (
            f"<div class='course-check course-check-{self.status.replace(' ', '-')}' "
            f"style='border-left:6px solid {colour};padding:6px 10px;margin:4px 0;background:#f6f8fa'>"
            f"<b style='color:{colour}'>{mark} {html.escape(self.headline)}</b>{body}{hint}{tests}{note}</div>"
        )

    def to_dict(self):
        return {"exercise": self.exercise, "status": self.status, "message": self.message}


def run(name, fn):
    """Run exercise `name`'s tests on `fn` and return a Result; displays nothing."""
    ex = get(name)
    start = time.perf_counter()
    statuses = [[title, "not run"] for title, _ in ex.tests]
    result = Result(name, PASSED, [], reference=f"{ex.reference.__module__}.{ex.reference.__qualname__}")
    if not callable(fn):
        result.status, result.detail = FAILED, f"Expected a function, got {type(fn).__name__}."
        statuses[0][1] = FAILED
    else:
        for i, (_, test) in enumerate(ex.tests):
            try:
                with np.errstate(all="ignore"):
                    test(fn, ex)
            except NotImplementedError:
                result.status, statuses = NOT_IMPLEMENTED, [[t, "not run"] for t, _ in ex.tests]
                break
            except LearnerError as err:
                result.status, result.detail, result.hint = ERROR, err.describe(), err.hint
                statuses[i][1] = FAILED
                break
            except Failure as f:
                result.status, result.detail, result.hint = FAILED, f.message, f.hint or ""
                statuses[i][1] = FAILED
                break
            statuses[i][1] = PASSED
    result.tests = [tuple(s) for s in statuses]
    result.seconds = time.perf_counter() - start
    return result


def check(name, fn):
    """Check `fn`, show the result, and return what the notebook should use from here on."""
    result = run(name, fn)
    _show(result)
    _log(result)
    if result.passed:
        return fn
    grading.fail(result, fn, get(name).reference)  # raises when an autograder runs the notebook
    return get(name).reference


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


def _log(result):
    """Append the result to $COURSE_CHECK_LOG: how `python -m utils.check` learns what a notebook did."""
    path = os.environ.get("COURSE_CHECK_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(result.to_dict()) + "\n")

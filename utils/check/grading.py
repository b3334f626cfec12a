"""Grading mode: a check that does not pass raises, so that an autograder scores its cell as failed.

A learner's session and a grader's run differ in one thing. In a learner's session `check(name, fn)`
shows the result and, until `fn` passes, hands back the reference, so the notebook always runs to the
end. A grader (nbgrader scores a test cell by whether it raises) needs the failure to be an error. In
grading mode the check therefore raises `CheckFailed` with the check's own message, after rebinding the
learner's name for the function to the reference (for a backward pass, the names of both functions of the
pair), so the cells below still run on the reference, as they would in the learner's session, and only the
failed exercise loses its points.

Which mode, decided from the environment every time a check runs:

- `COURSE_GRADING=1` turns grading mode on, `COURSE_GRADING=0` turns it off, whatever else is set;
- otherwise grading mode is on exactly when nbgrader is executing the notebook: `nbgrader autograde` and
  `nbgrader validate` set `NBGRADER_EXECUTION` to `autograde` or `validate` in the kernel's environment.

So a learner never meets grading mode unless they ask nbgrader to validate their notebook, which is
when they want to see what the grader will see.
"""

import os

NBGRADER_RUNS = ("autograde", "validate")


class CheckFailed(AssertionError):
    """Raised by a check that did not pass, in grading mode; its text is the check's message."""


def active():
    """True when a check that does not pass must raise (see the module's docstring)."""
    switch = os.environ.get("COURSE_GRADING", "").strip()
    if switch in ("0", "1"):
        return switch == "1"
    if switch:
        raise ValueError(f"COURSE_GRADING must be 0 or 1 (or unset), got {switch!r}")
    return os.environ.get("NBGRADER_EXECUTION", "") in NBGRADER_RUNS


def fail(result, swaps):
    """In grading mode: point the learner's names at the references, then raise CheckFailed.

    swaps: (name, fn, reference) triples: `name` (the notebooks write `name = check("name", name)`, or for a
    backward pass `forward_name, name = check(...)`) and every other name in the notebook's namespace bound to
    `fn` are rebound to `reference`. Outside grading mode: nothing.
    """
    if not active():
        return
    namespace = _user_namespace()
    if namespace is not None:
        for name, fn, reference in swaps:
            names = {name} | ({k for k, v in namespace.items() if v is fn} if callable(fn) else set())
            for key in names:
                namespace[key] = reference
    raise CheckFailed(result.message)


def _user_namespace():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell.user_ns if shell is not None else None

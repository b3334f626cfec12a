"""Course progress: for every exercise, does the learner's current code pass?

Answered from the saved notebooks themselves, without running them: for each notebook a fresh child
process runs its first code cell (the imports, IPython magics dropped) and the cells that define the
notebook's exercise functions, then checks those functions in course order, rebinding each to the
reference when it fails, as the notebook's own check cells do (a backward pass is paired with the
notebook's function of its forward's name when the notebook defines one, else with the reference's).
No other progress file is kept, so there is none to lose or corrupt: the notebooks are the record. A
notebook that is missing, not valid JSON, or that hangs is reported as such and the others are still
summarised.

    python -m utils.check --summary lectures/
"""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat

from .core import PASSED, exercises, run
from .notebooks import notebook_number, notebook_paths

_DEF = re.compile(r"^def (\w+)\(", re.M)


def exercise_cells(nb, number):
    """The setup source and the sources of the cells defining this notebook's exercises (and the forwards its
    check cells pair backward passes with)."""
    names = {ex.name for ex in exercises() if ex.notebook == number}
    for expression in forward_expressions(nb).values():
        names |= {n.id for n in ast.walk(ast.parse(expression)) if isinstance(n, ast.Name)}
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    setup = "\n".join(
        line for line in (code[0] if code else "").splitlines() if not line.lstrip().startswith(("%", "!"))
    )
    return setup, [src for src in code[1:] if names & set(_DEF.findall(src))]


def forward_expressions(nb):
    """{exercise: the source of the `forward=` its check cell passes}, for the backward passes a notebook checks."""
    found = {}
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                for keyword in node.keywords:
                    if keyword.arg == "forward":
                        found[node.args[0].value] = ast.unparse(keyword.value)
    return found


def _child(path):
    """Run in a child process: define the exercises from the notebook and print their results as JSON."""
    nb = nbformat.read(path, as_version=4)
    number = notebook_number(nb, path)
    setup, cells = exercise_cells(nb, number)
    forwards = forward_expressions(nb)
    namespace = {"__name__": "__course_progress__"}
    broken = {}
    for src in [setup, *cells]:
        try:
            exec(compile(src, str(path), "exec"), namespace)
        except Exception as exc:  # a cell that does not even define its function
            for name in _DEF.findall(src):
                broken[name] = f"the cell defining it raised {type(exc).__name__}: {exc}"
    results = []
    for ex in (e for e in exercises() if e.notebook == number):
        if ex.name in broken or ex.name not in namespace:
            message = broken.get(ex.name, "the notebook has no cell defining this function")
            results.append({"exercise": ex.name, "status": "error", "message": message})
            namespace[ex.name] = ex.reference
            continue
        forward = None
        if ex.is_backward:  # the forward its check cell passes, as the notebook would evaluate it there
            try:
                forward = eval(forwards.get(ex.name, ex.forward_name), namespace)  # the learner's own expression
            except Exception:
                forward = None
        result = run(ex.name, namespace[ex.name], forward=forward if callable(forward) else None)
        if ex.is_backward:  # as the check cell binds them: the learner's pair once it passes, else the reference's
            namespace[ex.forward_name] = forward if result.passed and callable(forward) else ex.forward
        if not result.passed:
            namespace[ex.name] = ex.reference
        results.append({"exercise": ex.name, "status": result.status, "message": result.message})
    print(json.dumps({"notebook": number, "exercises": results}))


def summarize(paths, timeout=120):
    """One row per exercise of the course: exercise, notebook file, status, first line of the message."""
    found, problems = {}, []
    for path in notebook_paths(paths):
        env = {**os.environ, "MPLBACKEND": "Agg"}
        try:
            proc = subprocess.run([sys.executable, "-m", "utils.check.progress", str(path)], env=env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            problems.append((str(path), f"still running after {timeout} s; stopped"))
            continue
        if proc.returncode != 0:
            problems.append((str(path), (proc.stderr.strip().splitlines() or ["could not be read"])[-1][:200]))
            continue
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        for e in report["exercises"]:
            found.setdefault(e["exercise"], {**e, "path": str(path)})
    rows = []
    for ex in exercises():
        entry = found.get(ex.name, {"exercise": ex.name, "status": "missing", "path": "-",
                                    "message": f"no notebook {ex.notebook} among the paths given"})
        rows.append(entry)
    return rows, problems


def format_summary(rows, problems):
    lines = [f"{'exercise':<28} {'status':<16} {'notebook'}"]
    for r in rows:
        lines.append(f"{r['exercise']:<28} {r['status']:<16} {r['path']}")
        detail = r["message"].splitlines()
        if r["status"] not in (PASSED, "not implemented", "missing") and len(detail) > 1:
            lines.append(f"{'':<29}{detail[1][:110]}")
    for path, why in problems:
        lines.append(f"could not read {path}: {why}")
    done = sum(r["status"] == PASSED for r in rows)
    lines.append(f"{done} of {len(rows)} exercises pass")
    return "\n".join(lines)


if __name__ == "__main__":
    _child(Path(sys.argv[1]))

"""Generate the student notebooks in lectures/ from the complete ones in solutions/.

solutions/ is the single source of truth. Code between nbgrader's `### BEGIN SOLUTION` and
`### END SOLUTION` markers becomes a stub, `# YOUR CODE HERE` + `raise NotImplementedError()`, at the
marker's indentation; outputs are cleared and the kernelspec set to python3, so the lecture opens
without a kernel dialog and its stubs make the checks fall back to the reference.

The generator also gives the cells nbgrader's metadata, so that nbgrader can release and grade the
notebooks as they are: a cell with a solution region is a solution cell, and a code cell that calls
`check("name", ...)` is an autograded test cell worth 1 point (or the `points` already in its metadata).
It writes that metadata into solutions/ too, so a new notebook needs nothing but the markers and its
checks. nbgrader's own `generate_assignment` makes the same student notebooks as `lectures/` (a test
compares them cell by cell).

    python -m utils.lectures          # normalise solutions/ (outputs, nbgrader metadata), rewrite lectures/
"""

import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
_CHECK = re.compile(r"""\bcheck\(\s*["'](\w+)["']""")
_DEF = re.compile(r"^def (\w+)\(", re.M)
_REGION = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[^\n]*\n.*?^[ \t]*{re.escape(END)}[^\n]*(\n|$)", re.M | re.S)


def _stub(source, cell_type):
    def replace(match):
        indent, newline = match.group(1), match.group(2)
        if cell_type == "markdown":
            return f"{indent}YOUR ANSWER HERE{newline}"
        return f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError(){newline}"

    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers in a cell starting {source[:60]!r}")
    return _REGION.sub(replace, source)


def strip(nb):
    """A copy with no outputs, execution counts or stored widget state; kernelspec python3."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def grade_cells(nb):
    """Give every solution cell and every check cell nbgrader's metadata (schema 3); other cells lose it.

    Grade ids are stable and readable: `check_<exercise>` for a test cell, `solution_<first function it
    defines>` (or `solution_<cell id>`) for a solution cell. Points already set on a test cell are kept.
    """
    for cell in nb.cells:
        previous = cell.metadata.pop("nbgrader", {})
        checks = _CHECK.findall(cell.source) if cell.cell_type == "code" else []
        if BEGIN in cell.source:
            if checks:
                raise ValueError(f"a cell both holds a solution and checks {checks[0]!r}: give the check a cell "
                                 "of its own, so that nbgrader can grade it")
            names = _DEF.findall(cell.source)
            grade_id = f"solution_{names[0] if names else cell.get('id', '')}"
            # nbgrader grades a markdown answer by hand, so it must carry points; code is graded by the checks
            graded = cell.cell_type == "markdown"
            cell.metadata["nbgrader"] = _metadata(grade_id, solution=True, grade=graded, locked=False,
                                                  points=previous.get("points", 1) if graded else None)
        elif checks:
            if len(checks) > 1:
                raise ValueError(f"one cell checks {', '.join(checks)}: give each check(...) a cell of its own, "
                                 "so that nbgrader scores each exercise on its own")
            cell.metadata["nbgrader"] = _metadata(f"check_{checks[0]}", solution=False, grade=True, locked=True,
                                                  points=previous.get("points", 1))
    return nb


def _metadata(grade_id, solution, grade, locked, points):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def normalise(solution):
    """The solutions notebook as committed: stripped, with nbgrader's metadata."""
    return grade_cells(strip(solution))


def make_lecture(solution):
    lecture = normalise(solution)
    for cell in lecture.cells:
        if cell.cell_type in ("code", "markdown"):
            cell.source = _stub(cell.source, cell.cell_type)
    return lecture


def render(nb):
    return nbformat.writes(nb) + "\n"


def expected_lectures(root=ROOT):
    """{lecture path: text the generator writes} for every solutions notebook."""
    return {
        root / "lectures" / path.name: render(make_lecture(nbformat.read(path, as_version=4)))
        for path in sorted((root / "solutions").glob("*.ipynb"))
    }


def main(root=ROOT):
    for path in sorted((root / "solutions").glob("*.ipynb")):
        text = render(normalise(nbformat.read(path, as_version=4)))
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"normalised {path.relative_to(root)} (outputs cleared, nbgrader metadata set)")
    wanted = expected_lectures(root)
    for path in sorted((root / "lectures").glob("*.ipynb")):
        if path not in wanted:
            path.unlink()
            print(f"removed {path.relative_to(root)} (no solutions notebook)")
    for path, text in wanted.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(root)}")


if __name__ == "__main__":
    sys.exit(main())

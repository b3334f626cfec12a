"""Generate the student notebooks in lectures/ from the complete ones in solutions/.

solutions/ is the single source of truth. Code between nbgrader's `### BEGIN SOLUTION` and
`### END SOLUTION` markers becomes a stub, `# YOUR CODE HERE` + `raise NotImplementedError()`, at the
marker's indentation; outputs are cleared and the kernelspec set to python3, so the lecture opens
without a kernel dialog and its stubs make the checks fall back to the reference.

    python -m utils.lectures          # normalise solutions/ (clear outputs) and rewrite lectures/
"""

import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
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


def make_lecture(solution):
    lecture = strip(solution)
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
        text = render(strip(nbformat.read(path, as_version=4)))
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"cleared outputs in {path.relative_to(root)}")
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

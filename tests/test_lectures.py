"""lectures/ is generated from solutions/: in sync, stripped, and every exercise checked where it belongs."""

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from utils import check
from utils.lectures import ROOT, _stub, expected_lectures, grade_cells, make_lecture, normalise, render

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_committed_lectures_match_the_generator():
    wanted = expected_lectures()
    assert sorted(wanted) == sorted((ROOT / "lectures").glob("*.ipynb")), "run `make lectures`"
    for path, text in wanted.items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is out of date: run `make lectures`"


@pytest.mark.parametrize("path", SOLUTIONS + sorted((ROOT / "lectures").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_clean(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb["metadata"]
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_exercise_of_a_notebook_is_checked_in_it(path):
    nb = nbformat.read(path, as_version=4)
    number = nb.metadata["course"]["notebook"]
    assert path.name.startswith(number + "_")
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    checked = re.findall(r'check\("(\w+)"', source)
    assert checked == [ex.name for ex in check.exercises() if ex.notebook == number]
    first = next(c.source for c in nb.cells if c.cell_type == "code")
    assert first.startswith("%matplotlib inline")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_lectures_keep_everything_but_the_solutions(path):
    solution = nbformat.read(path, as_version=4)
    lecture = make_lecture(solution)
    assert len(lecture.cells) == len(solution.cells)
    stubs = sum(c.source.count("raise NotImplementedError()") for c in lecture.cells)
    assert stubs == sum(c.source.count("### BEGIN SOLUTION") for c in solution.cells) > 0
    assert not any("### BEGIN SOLUTION" in c.source for c in lecture.cells)


def test_stub_keeps_indentation_and_the_code_around_it():
    source = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    y = x + 1\n    ### END SOLUTION\n    return y"
    assert _stub(source, "code") == "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n" \
                                   "    return y"
    assert _stub("Answer:\n### BEGIN SOLUTION\nbecause\n### END SOLUTION", "markdown") == "Answer:\nYOUR ANSWER HERE"


def test_unbalanced_markers_are_refused():
    with pytest.raises(ValueError, match="unbalanced"):
        _stub("### BEGIN SOLUTION\nx = 1\n", "code")


def test_generator_writes_and_prunes(tmp_path):
    from utils.lectures import main

    (tmp_path / "solutions").mkdir()
    (tmp_path / "lectures").mkdir()
    source = Path(SOLUTIONS[0])
    (tmp_path / "solutions" / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "lectures" / "99_stale.ipynb").write_text("{}", encoding="utf-8")
    main(tmp_path)
    assert [p.name for p in (tmp_path / "lectures").iterdir()] == [source.name]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_carry_nbgrader_metadata(path):
    assert path.read_text(encoding="utf-8") == render(normalise(nbformat.read(path, as_version=4))), \
        f"{path.name} lacks its nbgrader metadata: run `make lectures`"


def test_solution_and_check_cells_get_nbgrader_metadata_and_other_cells_lose_it():
    nb = new_notebook(cells=[
        new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"),
        new_code_cell('f = check("f", f)'),
        new_code_cell("check.run('f', f)\nx = 1"),
        new_markdown_cell("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
        new_code_cell('g = check("g", g)'),
    ])
    nb.cells[2].metadata["nbgrader"] = {"grade": True, "grade_id": "stale", "points": 1}
    nb.cells[4].metadata["nbgrader"] = {"points": 3}  # an instructor's weight is kept
    meta = [c.metadata.get("nbgrader") for c in grade_cells(nb).cells]
    assert meta[0] == {"grade": False, "grade_id": "solution_f", "locked": False, "schema_version": 3,
                       "solution": True, "task": False}
    assert meta[1] == {"grade": True, "grade_id": "check_f", "locked": True, "points": 1, "schema_version": 3,
                       "solution": False, "task": False}
    assert meta[2] is None  # check.run is not a check cell
    assert meta[3]["solution"] and meta[3]["grade"] and meta[3]["points"] == 1  # nbgrader grades answers by hand
    assert meta[3]["grade_id"] == f"solution_{nb.cells[3].id}"
    assert meta[4]["points"] == 3


@pytest.mark.parametrize("source, message", [
    ('a = check("a", a)\nb = check("b", b)', "each check"),
    ('def a():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\na = check("a", a)', "a cell of its own"),
])
def test_cells_nbgrader_could_not_score_one_exercise_at_a_time_are_refused(source, message):
    with pytest.raises(ValueError, match=message):
        grade_cells(new_notebook(cells=[new_code_cell(source)]))

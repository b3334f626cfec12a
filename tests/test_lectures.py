"""lectures/ is generated from solutions/: in sync, stripped, and every exercise checked where it belongs."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from utils import check
from utils.lectures import ROOT, _stub, expected_lectures, make_lecture

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

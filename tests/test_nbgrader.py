"""nbgrader, as an instructor runs it: release, validate, autograde and feedback on a real course folder.

The course folder is made in a temporary directory with the course's own nbgrader configuration
(instructors/nbgrader_config.py) and driven through instructors/nbgrader, exactly as the README says.
Graded: notebook 01 (numpy) and notebook 03 (torch), in fast mode. Released: every notebook, so that a
new one is compared with its lecture without edits here.
"""

import csv
import html
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pytest

from utils import check
from utils.lectures import ROOT

pytestmark = pytest.mark.runs_for(seconds=135)  # see conftest.py: started first

NBGRADER = ROOT / "instructors" / "nbgrader"
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
GRADED = {"01": "01_rnn_recurrence_and_hello.ipynb", "03": "03_gradient_flow_lstm_gru.ipynb"}
# The one wrong exercise of the third submission: notebook 01's RNN step without its bias.
RIGHT_STEP = "next_h = np.tanh(x @ Wx + prev_h @ Wh + b)"
WRONG_STEP = "next_h = np.tanh(x @ Wx + prev_h @ Wh)"


def nbgrader(course, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("NBGRADER_EXECUTION", "COURSE_GRADING")}
    env["COURSE_FAST"] = "1"
    return subprocess.run([str(NBGRADER), *args], cwd=course, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def _submit(course, student, assignment, notebook, edit=None):
    """The released notebook with every solution cell filled in from the source, as a learner would submit it."""
    release = nbformat.read(course / "release" / assignment / notebook, as_version=4)
    source = {c.metadata["nbgrader"]["grade_id"]: c.source
              for c in nbformat.read(course / "source" / assignment / notebook, as_version=4).cells
              if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in release.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = source[grade_id]
            if edit:
                cell.source = edit(cell.source)
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(release, folder / notebook)


def _without_bias(source):
    if source.startswith("def rnn_step_forward("):
        assert RIGHT_STEP in source, "notebook 01's RNN step changed: update RIGHT_STEP"
        return source.replace(RIGHT_STEP, WRONG_STEP)
    return source


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder taken through generate_assignment, validate, autograde and generate_feedback."""
    course = tmp_path_factory.mktemp("course")
    shutil.copyfile(ROOT / "instructors" / "nbgrader_config.py", course / "nbgrader_config.py")
    (course / "source" / "all").mkdir(parents=True)
    for path in SOLUTIONS:
        shutil.copyfile(path, course / "source" / "all" / path.name)
    for assignment, notebook in GRADED.items():
        (course / "source" / assignment).mkdir()
        shutil.copyfile(ROOT / "solutions" / notebook, course / "source" / assignment / notebook)
    out = {"release": _ok(nbgrader(course, "generate_assignment", "*"))}  # every folder of source/

    for assignment, notebook in GRADED.items():
        _submit(course, "solutions", assignment, notebook)
        lecture = course / "submitted" / "lecture" / assignment
        lecture.mkdir(parents=True)
        shutil.copyfile(ROOT / "lectures" / notebook, lecture / notebook)  # the shipped lecture, as it is
    _submit(course, "one_wrong", "01", GRADED["01"], edit=_without_bias)

    validated = [course / "source" / "01" / GRADED["01"], ROOT / "lectures" / GRADED["01"],
                 course / "source" / "03" / GRADED["03"]]
    proc = nbgrader(course, "validate", *map(str, validated))
    reports = proc.stdout.split("Validating '")[1:]
    out["validate"] = {Path(r.split("'", 1)[0]): r for r in reports}
    out["autograde"] = _ok(nbgrader(course, "autograde", "*"))  # every student, every assignment submitted
    out["feedback"] = _ok(nbgrader(course, "generate_feedback", "01"))
    out["export"] = _ok(nbgrader(course, "export", "--to", str(course / "grades.csv")))
    return course, out


def test_released_notebooks_are_the_lectures_cell_by_cell(course):
    course, _ = course
    for path in SOLUTIONS:
        released = nbformat.read(course / "release" / "all" / path.name, as_version=4)
        lecture = nbformat.read(ROOT / "lectures" / path.name, as_version=4)
        assert len(released.cells) == len(lecture.cells), path.name
        for i, (a, b) in enumerate(zip(released.cells, lecture.cells, strict=True)):
            assert (a.cell_type, a.source) == (b.cell_type, b.source), f"{path.name}, cell {i}"
            keys = ("grade", "solution", "locked", "grade_id", "points")
            grading = [{k: c.metadata.get("nbgrader", {}).get(k) for k in keys} for c in (a, b)]
            assert grading[0] == grading[1], f"{path.name}, cell {i}"


def test_every_exercise_is_a_test_cell_worth_a_point(course):
    course, _ = course
    for path in SOLUTIONS:
        nb = nbformat.read(course / "release" / "all" / path.name, as_version=4)
        graded = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        number = nb.metadata["course"]["notebook"]
        assert graded == [f"check_{ex.name}" for ex in check.exercises() if ex.notebook == number]


def test_validate_passes_the_solutions_and_not_the_lectures(course):
    course, out = course
    reports = out["validate"]
    assert len(reports) == 3, reports
    for assignment, notebook in GRADED.items():
        report = reports[course / "source" / assignment / notebook]
        assert "Success! Your notebook passes all the tests." in report, report[-3000:]
    lecture = reports[ROOT / "lectures" / GRADED["01"]]
    count = sum(ex.notebook == "01" for ex in check.exercises())
    assert f"VALIDATION FAILED ON {count} CELL(S)!" in lecture and "Success!" not in lecture, lecture[-3000:]


def _scores(course):
    """{(assignment, student): (score, max_score)} from `nbgrader export`'s CSV."""
    with open(course / "grades.csv", newline="") as f:
        return {(r["assignment"], r["student_id"]): (float(r["score"]), float(r["max_score"]))
                for r in csv.DictReader(f)}


def test_autograde_scores_solutions_full_lectures_zero_and_one_wrong_exercise_one_point_less(course):
    course, _ = course
    scores = _scores(course)
    points = {n: sum(ex.notebook == n for ex in check.exercises()) for n in GRADED}
    for assignment, total in points.items():
        assert scores[assignment, "solutions"] == (total, total)
        assert scores[assignment, "lecture"] == (0, total)
    assert scores["01", "one_wrong"] == (points["01"] - 1, points["01"])


def test_the_shipped_lecture_still_runs_every_other_cell(course):
    course, _ = course
    for assignment, notebook in GRADED.items():
        nb = nbformat.read(course / "autograded" / "lecture" / assignment / notebook, as_version=4)
        raised = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.cell_type == "code"
                  and any(o.output_type == "error" for o in c.outputs)]
        assert raised == [f"check_{ex.name}" for ex in check.exercises() if ex.notebook == assignment]
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert {o.ename for o in errors} == {"CheckFailed"}


def test_feedback_shows_the_checks_own_message(course):
    course, _ = course
    page = (course / "feedback" / "one_wrong" / "01" / GRADED["01"].replace(".ipynb", ".html")).read_text()

    def without_bias(x, prev_h, Wx, Wh, b):
        return np.tanh(x @ Wx + prev_h @ Wh), None

    expected = check.run("rnn_step_forward", without_bias)
    assert not expected.passed and expected.hint
    assert html.escape(expected.hint, quote=False) in page
    assert "CheckFailed" in page and "rnn_step_forward: failed in test" in page
    passed = (course / "feedback" / "solutions" / "01" / GRADED["01"].replace(".ipynb", ".html")).read_text()
    assert "CheckFailed" not in passed


def test_missing_instructor_tools_are_named(tmp_path):
    fake = tmp_path / "repo"
    (fake / "instructors").mkdir(parents=True)
    shutil.copyfile(NBGRADER, fake / "instructors" / "nbgrader")
    (fake / "instructors" / "nbgrader").chmod(0o755)
    proc = subprocess.run([str(fake / "instructors" / "nbgrader"), "--version"], capture_output=True, text=True)
    assert proc.returncode == 1 and "run 'make instructor'" in proc.stderr

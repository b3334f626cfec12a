"""The CSV gradebook of `python -m utils.check ... --csv`: one row per submission, one column per exercise."""

import csv

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from utils import check
from utils.check.gradebook import rows

from .test_cli import SOLUTION, _submission, run_cli

pytestmark = pytest.mark.runs_for(seconds=60)  # see conftest.py: started first

NOTEBOOK_01 = [ex.name for ex in check.exercises() if ex.notebook == "01"]


def _report(path, status, exercises, seconds=2.5):
    return {"path": path, "status": status, "detail": "", "seconds": seconds,
            "exercises": [{"exercise": n, "status": s, "message": ""} for n, s in exercises]}


def test_columns_follow_the_course_whatever_order_the_reports_come_in():
    later = [ex.name for ex in check.exercises() if ex.notebook == "02"][:2]
    reports = [
        _report("b.ipynb", "ok", [(later[1], "passed"), (later[0], "failed")]),
        _report("a.ipynb", "raised", [(NOTEBOOK_01[1], "error"), (NOTEBOOK_01[0], "passed"), ("renamed", "passed")]),
        _report("c.ipynb", "invalid", []),
    ]
    header, *body = rows(reports)
    assert header == ["submission", "notebook", "status", "seconds", NOTEBOOK_01[0], NOTEBOOK_01[1], *later,
                      "renamed", "total", "out_of"]
    assert body[0] == ["b.ipynb", "02", "ok", "2.5", "", "", "failed", "passed", "", "1", "2"]
    assert body[1] == ["a.ipynb", "01", "raised", "2.5", "passed", "error", "", "", "passed", "2", "3"]
    assert body[2] == ["c.ipynb", "", "invalid", "2.5", "", "", "", "", "", "0", "0"]


def test_cli_writes_a_gradebook_for_a_class_folder(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "a_good.ipynb").write_bytes(SOLUTION.read_bytes())
    no_bias = "next_h = np.tanh(x @ Wx + prev_h @ Wh)\n    cache = None"
    _submission(folder, "b_partial.ipynb", {"rnn_step_forward": no_bias})
    (folder / "c_broken.ipynb").write_text('{"cells": [', encoding="utf-8")
    hangs = nbformat.read(SOLUTION, as_version=4)  # complete, but never gets past its second check
    second = [i for i, c in enumerate(hangs.cells) if c.metadata.get("nbgrader", {}).get("grade")][1]
    hangs.cells.insert(second + 1, new_code_cell("while True:\n    pass"))
    nbformat.write(hangs, folder / "d_hangs.ipynb")
    grades = tmp_path / "grades.csv"

    proc = run_cli(folder, "--csv", grades, "--timeout", "45")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    with open(grades, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["submission", "notebook", "status", "seconds", *NOTEBOOK_01, "total", "out_of"]
    got = {row[0].rsplit("/", 1)[-1]: dict(zip(table[0], row, strict=True)) for row in table[1:]}
    assert [row[0].rsplit("/", 1)[-1] for row in table[1:]] == ["a_good.ipynb", "b_partial.ipynb", "c_broken.ipynb",
                                                                "d_hangs.ipynb"]
    statuses = {name: [row[n] for n in NOTEBOOK_01] for name, row in got.items()}
    assert statuses == {
        "a_good.ipynb": ["passed"] * 4,
        "b_partial.ipynb": ["failed", "not implemented", "not implemented", "not implemented"],
        "c_broken.ipynb": [""] * 4,
        "d_hangs.ipynb": ["passed", "passed", "not run", "not run"],
    }
    assert {name: (row["status"], row["total"], row["out_of"]) for name, row in got.items()} == {
        "a_good.ipynb": ("ok", "4", "4"), "b_partial.ipynb": ("ok", "0", "4"), "c_broken.ipynb": ("invalid", "0", "0"),
        "d_hangs.ipynb": ("timeout", "2", "4")}
    assert float(got["d_hangs.ipynb"]["seconds"]) >= 45 > float(got["a_good.ipynb"]["seconds"])
    assert {row["notebook"] for row in got.values()} == {"01", ""}

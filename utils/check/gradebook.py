"""A class's results as one CSV table, for a spreadsheet or a learning platform's gradebook.

    python -m utils.check submissions/ --csv grades.csv

One row per submission file, in the order the files were run; the columns, always in this order:

    submission, notebook, status, seconds, <one per exercise, in course order>, total, out_of

`status` is the notebook's (`ok`, `raised`, `timeout`, `invalid`, `crashed`, `missing`); each exercise's cell
is `passed`, `failed`, `error`, `not implemented` or `not run`, and empty for an exercise of another
notebook. The exercise columns are those of every notebook met in the run, so a folder of notebook-01
submissions gets notebook 01's four. `total` counts the exercises passed, `out_of` the exercises the
notebook has (0 for a file that could not be read). Built from the report dicts of `cli.check_notebook`.
"""

import csv

from .core import PASSED, exercises, get

FIRST, LAST = ["submission", "notebook", "status", "seconds"], ["total", "out_of"]


def exercise_columns(reports):
    """The exercises met in `reports`, in course order; any the course does not know go last, as met."""
    met = list(dict.fromkeys(e["exercise"] for r in reports for e in r["exercises"]))
    known = [ex.name for ex in exercises() if ex.name in met]
    return known + [name for name in met if name not in known]


def rows(reports):
    """The table as lists of strings, header first."""
    names = exercise_columns(reports)
    table = [FIRST + names + LAST]
    for report in reports:
        status = {e["exercise"]: e["status"] for e in report["exercises"]}
        table.append([report["path"], _notebook(status), report["status"], f"{report['seconds']:.1f}",
                      *(status.get(name, "") for name in names),
                      str(sum(s == PASSED for s in status.values())), str(len(status))])
    return table


def write(reports, path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows(reports))


def _notebook(status):
    """The course notebook the exercises belong to ("" when none was reported)."""
    numbers = []
    for name in status:
        try:
            numbers.append(get(name).notebook)
        except ValueError:  # an exercise this version of the course does not know
            continue
    return ",".join(dict.fromkeys(numbers))

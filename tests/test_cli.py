"""`python -m utils.check` as an instructor uses it, on real notebooks and on broken submissions."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from utils import check
from utils.lectures import ROOT

pytestmark = pytest.mark.runs_for(seconds=150)  # see conftest.py: started first

LECTURE = ROOT / "lectures" / "01_rnn_recurrence_and_hello.ipynb"
SOLUTION = ROOT / "solutions" / "01_rnn_recurrence_and_hello.ipynb"


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "utils.check", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    return proc


def _submission(tmp_path, name, replacements):
    """A copy of lecture 01 with some stubs filled in, as a learner would."""
    nb = nbformat.read(LECTURE, as_version=4)
    for cell in nb.cells:
        for function, body in replacements.items():
            if cell.cell_type == "code" and cell.source.startswith(f"def {function}("):
                cell.source = cell.source.replace("# YOUR CODE HERE\n    raise NotImplementedError()", body)
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_reports_every_notebook_and_exercise(tmp_path):
    partial = _submission(tmp_path, "alice_01.ipynb", {
        "rnn_step_forward": "next_h = np.tanh(x @ Wx + prev_h @ Wh + b)\n    cache = None",
        "rnn_forward": "h = np.tanh(x @ Wx + (h0 @ Wh)[:, None, :] + b)\n    cache = None",  # h not carried
    })
    broken = tmp_path / "bob_01.ipynb"
    broken.write_text('{"cells": [', encoding="utf-8")
    before = {p: _digest(p) for p in (partial, broken, SOLUTION, LECTURE)}

    proc = run_cli(SOLUTION, LECTURE, tmp_path, "--json", "--timeout", "150")
    assert proc.returncode == 1, proc.stderr
    reports = {r["path"]: r for r in json.loads(proc.stdout)["notebooks"]}
    assert all(r["status"] != "timeout" for r in reports.values()), {
        Path(p).name: (r["status"], r["seconds"], r["detail"]) for p, r in reports.items()}
    status = {p: {e["exercise"]: e["status"] for e in r["exercises"]} for p, r in reports.items()}
    names = ["rnn_step_forward", "rnn_forward", "temporal_softmax_loss", "rnn_sample"]

    assert reports[str(SOLUTION)]["status"] == "ok"
    assert status[str(SOLUTION)] == dict.fromkeys(names, "passed")
    assert reports[str(LECTURE)]["status"] == "ok"  # a shipped lecture runs to the end on the fallbacks
    assert status[str(LECTURE)] == dict.fromkeys(names, "not implemented")
    assert status[str(partial)] == {"rnn_step_forward": "passed", "rnn_forward": "failed",
                                    "temporal_softmax_loss": "not implemented", "rnn_sample": "not implemented"}
    failed = next(e for e in reports[str(partial)]["exercises"] if e["exercise"] == "rnn_forward")
    assert "hidden state must be carried" in failed["message"]
    assert reports[str(broken)]["status"] == "invalid"
    assert {p: _digest(p) for p in before} == before  # submissions are never modified
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice_01.ipynb", "bob_01.ipynb"]


def test_a_raising_or_hanging_notebook_is_reported_and_the_run_goes_on(tmp_path):
    raising, hanging = tmp_path / "01_raises.ipynb", tmp_path / "01_hangs.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("1 / 0"), new_code_cell(
        "import numpy as np\nfrom utils import check\n\ndef step(x, h, Wx, Wh, b):\n"
        "    return np.tanh(x @ Wx + h @ Wh + b), None\n\ncheck('rnn_step_forward', step)")]), raising)
    nbformat.write(new_notebook(cells=[new_code_cell("import time\ntime.sleep(600)")]), hanging)

    proc = run_cli(hanging, raising, "--timeout", "15")
    assert proc.returncode == 1
    out = proc.stdout
    assert "01_hangs.ipynb: timeout" in out and "still running after 15 s" in out
    assert "01_raises.ipynb: raised" in out and "ZeroDivisionError" in out
    assert "rnn_step_forward             passed" in out  # cells after the error still ran
    assert "rnn_sample                   not run" in out


def test_exit_status_zero_when_everything_passes():
    proc = run_cli(SOLUTION)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout.splitlines()[-1]


def test_summary_shows_every_exercise_from_the_saved_code(tmp_path):
    _submission(tmp_path, "01_mine.ipynb", {
        "rnn_step_forward": "next_h = np.tanh(x @ Wx + prev_h @ Wh + b)\n    cache = None",
        "temporal_softmax_loss": "loss, dx = 0.0, np.zeros_like(x)",
    })
    proc = run_cli("--summary", tmp_path, "--json")
    assert proc.returncode == 1, proc.stderr
    rows = {r["exercise"]: r["status"] for r in json.loads(proc.stdout)["exercises"]}
    later = {ex.name: "missing" for ex in check.exercises() if ex.notebook != "01"}  # no notebook given for them
    assert rows == {"rnn_step_forward": "passed", "rnn_forward": "not implemented",
                    "temporal_softmax_loss": "failed", "rnn_sample": "not implemented", **later}

    every = run_cli("--summary", *sorted((ROOT / "solutions").glob("*.ipynb")))
    assert every.returncode == 0, every.stdout + every.stderr
    assert f"{len(check.EXERCISES)} of {len(check.EXERCISES)} exercises pass" in every.stdout


def test_summary_survives_missing_corrupt_and_hanging_notebooks(tmp_path):
    from utils.check.progress import summarize

    (tmp_path / "01_corrupt.ipynb").write_text("{not json", encoding="utf-8")
    hanging = tmp_path / "01_hangs.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("import numpy as np"), new_code_cell(
        "def rnn_step_forward(x, prev_h, Wx, Wh, b):\n    pass\nwhile True:\n    pass")]), hanging)
    rows, problems = summarize([tmp_path / "01_corrupt.ipynb", hanging, tmp_path / "gone.ipynb"], timeout=10)
    assert [r["status"] for r in rows] == ["missing"] * len(check.EXERCISES)
    why = dict(problems)
    assert "01_corrupt.ipynb" in "".join(why) and "still running after 10 s" in why[str(hanging)]
    assert str(tmp_path / "gone.ipynb") in why

"""The instructors' command line: run the checks of whole notebooks and report per exercise.

    python -m utils.check lectures/01_*.ipynb submissions/ [--json] [--timeout S] [--full] [--csv FILE]
    python -m utils.check --summary lectures/      # every exercise of the course, without running notebooks

Each notebook runs top to bottom in a fresh kernel, on a temporary copy in a temporary folder (the
submission is never written to), in fast mode unless --full. Every `check(...)` the notebook makes is
recorded; exercises it never reached are "not run". A notebook that is not valid JSON, raises in a
cell, or runs past --timeout is reported as such, and the run goes on with the next one.
Exit status 0 only when every notebook ran cleanly and every exercise passed.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from . import gradebook, progress
from .core import PASSED, exercises
from .notebooks import notebook_number, notebook_paths

ROOT = Path(__file__).resolve().parents[2]


def check_notebook(path, timeout=600, fast=True):
    """Run one notebook; return a report dict (path, status, detail, seconds, exercises)."""
    report = {"path": str(path), "status": "ok", "detail": "", "seconds": 0.0, "exercises": []}
    if not path.is_file():
        report.update(status="missing", detail="no such file")
        return report
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:
        report.update(status="invalid", detail=f"not a valid notebook: {str(exc).splitlines()[0][:200]}")
        return report
    expected = [ex.name for ex in exercises() if ex.notebook == notebook_number(nb, path)]

    with tempfile.TemporaryDirectory(prefix="course-check-") as tmp:
        copy, log = Path(tmp) / path.name, Path(tmp) / "checks.jsonl"
        shutil.copyfile(path, copy)
        env = {**os.environ, "COURSE_CHECK_LOG": str(log), "COURSE_FAST": "1" if fast else "0",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               "MPLBACKEND": "Agg"}
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "utils.check.execute", str(copy), str(timeout)], cwd=tmp,
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the kernel is in the same session: it goes too
            _, err = proc.communicate()
            last = (err.strip().splitlines() or [""])[-1][:300]
            report.update(status="timeout", detail=f"still running after {timeout} s; stopped"
                          + (f" (last message: {last})" if last else ""))
        else:
            if proc.returncode != 0:
                last = (err.strip().splitlines() or ["no output"])[-1]
                report.update(status="crashed", detail=f"the notebook could not be run: {last[:300]}")
            else:
                errors = json.loads(out.strip().splitlines()[-1])["errors"]
                if errors:
                    e = errors[0]
                    report.update(status="raised", detail=f"{len(errors)} cell(s) raised; first: code cell "
                                  f"{e['cell']}: {e['ename']}: {e['evalue'][:200]}")
        report["seconds"] = round(time.perf_counter() - start, 1)
        seen = {}
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                seen[entry["exercise"]] = entry
    for name in expected + [n for n in seen if n not in expected]:
        entry = seen.get(name, {"exercise": name, "status": "not run",
                                "message": "the notebook never reached this exercise's check"})
        report["exercises"].append(entry)
    return report


def format_report(report):
    """One notebook's lines of the table: its status, then one row per exercise."""
    lines = [f"{report['path']}: {report['status']} ({report['seconds']} s)"
             + (f" - {report['detail']}" if report["detail"] else "")]
    for e in report["exercises"]:
        message = e["message"].splitlines()
        first = message[1] if e["status"] in ("failed", "error") and len(message) > 1 else ""
        lines.append(f"    {e['exercise']:<28} {e['status']:<16} {first[:110]}".rstrip())
    return "\n".join(lines)


def format_summary(reports):
    statuses = [e["status"] for r in reports for e in r["exercises"]]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    return f"{len(reports)} notebook(s), {len(statuses)} exercise result(s): {counts or 'none'}"


def all_passed(reports):
    return all(r["status"] == "ok" and all(e["status"] == PASSED for e in r["exercises"]) for r in reports)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m utils.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="notebooks, or folders of notebooks")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per notebook (default 600)")
    parser.add_argument("--full", action="store_true", help="run training at full length, not in fast mode")
    parser.add_argument("--csv", metavar="FILE", help="also write a gradebook: one row per notebook, one column "
                        "per exercise (see utils/check/gradebook.py)")
    parser.add_argument("--summary", action="store_true",
                        help="check only the exercise functions of the saved notebooks, every exercise of the course")
    args = parser.parse_args(argv)
    if args.summary and args.csv:
        parser.error("--csv writes the results of running notebooks; --summary runs none")
    if args.summary:
        rows, problems = progress.summarize(args.paths)
        print(json.dumps({"exercises": rows, "problems": problems}, indent=2) if args.json
              else progress.format_summary(rows, problems))
        return 0 if all(r["status"] == PASSED for r in rows) and not problems else 1
    reports = []
    for path in notebook_paths(args.paths):
        reports.append(check_notebook(path, args.timeout, fast=not args.full))
        if not args.json:
            print(format_report(reports[-1]), flush=True)  # as it goes: a class set takes a while
    ok = all_passed(reports)
    if args.csv:
        gradebook.write(reports, args.csv)
    if args.json:
        print(json.dumps({"passed": ok, "notebooks": reports}, indent=2))
    else:
        print(format_summary(reports))
    return 0 if ok else 1

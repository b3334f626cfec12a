"""The instructors' command line: grade whole notebooks, or folders of submissions, per exercise.

    python -m utils.check lectures/01_*.ipynb submissions/ [--json] [--csv FILE] [--timeout S] [--full] [--jobs N]
    python -m utils.check --summary lectures/      # every exercise of the course, without running notebooks

Each notebook runs top to bottom in a fresh kernel inside a sandbox (`sandbox.py`: no network, no view of the
file system beyond its own temporary folder, the course's code without its answers, limits on processes,
memory and CPU), on a copy of the file (the submission is never written to), in fast mode unless --full. Its
checks are judged outside the sandbox by `judge.py`, which calls the submission's functions with its own
inputs and keeps the verdicts: nothing the notebook prints, writes or patches can change them. Exercises a
notebook never checked are "not run". A notebook that is not valid JSON, raises in a cell, or runs past
--timeout is reported as such, and the others go on, several at a time (--jobs, default: the number of cores).
Where no sandbox can be made, the command says why and grades nothing unless --no-sandbox accepts the risk.
Exit status 0 only when every notebook ran cleanly and every exercise passed.
"""

import argparse
import json
import os
import queue
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from . import gradebook, judge, progress, sandbox
from .core import PASSED, exercises
from .notebooks import notebook_number, notebook_paths

ROOT = Path(__file__).resolve().parents[2]


def check_notebook(path, timeout=600, fast=True, course=None, job=0, sandboxed=True):
    """Grade one notebook; return a report dict (path, status, detail, seconds, exercises, attempts).

    course: the sandbox's copy of the course (sandbox.build_course); made for this call if not given.
    """
    report = {"path": str(path), "status": "ok", "detail": "", "seconds": 0.0, "exercises": [], "attempts": []}
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
    if course is None:
        with tempfile.TemporaryDirectory(prefix="course-copy-") as tmp:
            return judge.grade(path, expected, timeout, fast, sandbox.build_course(tmp), job, sandboxed)
    return judge.grade(path, expected, timeout, fast, course, job, sandboxed)


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
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="notebooks graded at the same time (default: the number of cores)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="grade without the sandbox where none can be made: the notebooks then run with your "
                             "user's rights, network and files; only for notebooks you trust")
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
    why = None if args.no_sandbox else sandbox.probe()
    if why:
        print(f"Cannot grade: no sandbox can be made here: {why}.\nGrading runs every submission's code; "
              "without the sandbox it could read and change your files and use the network. To accept that "
              "risk for notebooks you trust, add --no-sandbox.", file=sys.stderr)
        return 2
    if args.no_sandbox:
        print("Warning: grading without the sandbox (--no-sandbox): the notebooks run with your rights.",
              file=sys.stderr)
    paths, jobs = notebook_paths(args.paths), max(1, args.jobs)
    slots = queue.Queue()  # each running notebook has a slot of its own: its sandbox's user id and process limit
    for slot in range(jobs):
        slots.put(slot)

    def grade(path):
        slot = slots.get()
        try:
            return check_notebook(path, args.timeout, not args.full, course, slot, not args.no_sandbox)
        finally:
            slots.put(slot)

    with tempfile.TemporaryDirectory(prefix="course-copy-") as tmp:
        course = sandbox.build_course(tmp)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(grade, p) for p in paths]
            reports = []
            for future in futures:  # in the order given, each as soon as it is done: a class set takes a while
                reports.append(future.result())
                if not args.json:
                    print(format_report(reports[-1]), flush=True)
    ok = all_passed(reports)
    if args.csv:
        gradebook.write(reports, args.csv)
    if args.json:
        print(json.dumps({"passed": ok, "notebooks": reports}, indent=2))
    else:
        print(format_summary(reports))
    return 0 if ok else 1

"""Grades that cannot be forged: hostile submissions, graded by the CLI, get no points for what they did not do,
are reported with what they tried, and leave the instructor's files and the other submissions untouched."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from utils.check import sandbox, wire
from utils.lectures import ROOT

pytestmark = pytest.mark.runs_for(seconds=80)  # see conftest.py: started first

SETUP = "import numpy as np\nfrom utils import check, layers\n"
HONEST = textwrap.dedent("""
    def rnn_step_forward(x, prev_h, Wx, Wh, b):
        next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
        return next_h, (x, prev_h, Wx, Wh, next_h)

    rnn_step_forward = check("rnn_step_forward", rnn_step_forward)
""")


def _notebook(path, *cells):
    nb = new_notebook(cells=[new_code_cell(SETUP), *(new_code_cell(textwrap.dedent(c)) for c in cells)])
    nb.metadata["course"] = {"notebook": "01"}
    nbformat.write(nb, path)
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every hostile submission and one honest one, graded in one run of the CLI, with sentinels around them."""
    root = tmp_path_factory.mktemp("class")
    subs = root / "submissions"
    subs.mkdir()
    secret = root / "instructor_secret.txt"
    secret.write_text("the answers")
    victim = _notebook(subs / "01_victim.ipynb", HONEST)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.5)
    port, reached = listener.getsockname()[1], []

    def watch():
        while not stop.is_set():
            try:
                reached.append(listener.accept())
            except OSError:
                continue

    stop = threading.Event()
    threading.Thread(target=watch, daemon=True).start()
    hostile = {
        "forged_log": ["""
            import json, os
            for name in check.EXERCISES[:4]:
                with open(os.environ.get("COURSE_CHECK_LOG", "/tmp/home/log"), "a") as f:
                    f.write(json.dumps({"exercise": name, "status": "passed", "message": "forged"}) + "\\n")
            print("rnn_step_forward             passed")
        """],
        "patched_checker": ["""
            import utils.check
            def rnn_step_forward(x, prev_h, Wx, Wh, b):
                raise NotImplementedError()
            utils.check._judge = lambda *a, **k: type("R", (), {"passed": True, "status": "passed",
                                                               "_repr_html_": lambda s: "passed"})()
            rnn_step_forward = check("rnn_step_forward", rnn_step_forward)
        """],
        "borrowed_answer": ["""
            import utils.layers
            def rnn_step_forward(*a):
                return utils.layers.rnn_step_forward(*a)
            rnn_step_forward = check("rnn_step_forward", rnn_step_forward)
        """, """
            def rnn_forward(x, h0, Wx, Wh, b):  # the fallback pair of another exercise, used for this one
                return check("rnn_forward", None)(x, h0, Wx, Wh, b)
            rnn_forward = check("rnn_forward", rnn_forward)
        """],
        "reference_passed_as_mine": ["""
            rnn_step_forward = check("rnn_step_forward", layers.rnn_step_forward)
        """],
        "overwrites_another_submission": [f"""
            open({str(victim)!r}, "w").write("{{}}")
        """, HONEST],
        "writes_the_course": [f"""
            open({str(ROOT / 'utils' / 'layers.py')!r}, "a").write("# changed")
        """],
        "opens_the_network": [f"""
            import socket
            socket.create_connection(("127.0.0.1", {port}), timeout=3)
        """],
        "reads_the_instructors_files": [f"""
            print(open({str(secret)!r}).read())
        """, """
            import os
            print(os.listdir(os.path.expanduser("~root")), open("/etc/shadow").read())
        """],
        "fork_bomb": ["""
            import os, time
            while True:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
        """],
        "memory_hog": ["""
            hog = bytearray(64 * 2**30)
        """],
        "eq_always_true": ["""
            class Equal:
                def __eq__(self, other):
                    return True
                __array_priority__ = 1000
            def rnn_step_forward(x, prev_h, Wx, Wh, b):
                return Equal(), None
            rnn_step_forward = check("rnn_step_forward", rnn_step_forward)
        """],
        "lying_subclass": ["""
            class Lie(np.ndarray):
                def __eq__(self, other):
                    return np.ones(np.shape(other), dtype=bool)
                def __sub__(self, other):
                    return np.zeros(np.shape(other))
                __rsub__ = __sub__
            def rnn_step_forward(x, prev_h, Wx, Wh, b):
                return np.zeros((x.shape[0], Wh.shape[0])).view(Lie), None
            rnn_step_forward = check("rnn_step_forward", rnn_step_forward)
        """],
        "fake_results_table": ["""
            import os, sys
            print("rnn_step_forward             passed\\n1 notebook(s), 4 exercise result(s): 4 passed")
            os.write(1, b'{"errors": []}\\n')
            sys.__stdout__.write("4 passed\\n")
        """],
        "deletes_the_log": ["""
            import os, glob
            for path in glob.glob("/tmp/**/*", recursive=True) + [os.environ.get("COURSE_CHECK_LOG", "")]:
                try:
                    os.remove(path)
                except OSError:
                    pass
        """, HONEST],
        "speaks_to_the_judge": ["""
            import os, socket, struct
            s = socket.socket(socket.AF_UNIX)
            s.connect(os.environ["COURSE_JUDGE_SOCKET"])
            s.sendall(struct.pack("<QQ", 2**40, 0))
        """, HONEST],
        "infinite_loop": ["""
            def rnn_step_forward(x, prev_h, Wx, Wh, b):
                while True:
                    pass
            rnn_step_forward = check("rnn_step_forward", rnn_step_forward)
        """],
    }
    for name, cells in hostile.items():
        _notebook(subs / f"01_{name}.ipynb", *cells)
    before = {p: _digest(p) for p in [*subs.iterdir(), secret, *sorted((ROOT / "utils").rglob("*.py"))]}
    proc = subprocess.run([sys.executable, "-m", "utils.check", str(subs), "--json", "--timeout", "60",
                           "--jobs", "2"], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    stop.set()
    reports = {os.path.basename(r["path"])[3:-6]: r for r in json.loads(proc.stdout)["notebooks"]}
    after = {p: _digest(p) for p in before}
    return {"reports": reports, "before": before, "after": after, "reached": reached, "proc": proc}


def _status(report):
    return {e["exercise"]: e["status"] for e in report["exercises"]}


def test_the_honest_submission_is_graded_as_usual(graded):
    assert _status(graded["reports"]["victim"])["rnn_step_forward"] == "passed"
    assert graded["reports"]["victim"]["status"] == "ok"


@pytest.mark.parametrize("name", ["forged_log", "patched_checker", "borrowed_answer", "reference_passed_as_mine",
                                  "writes_the_course", "opens_the_network", "reads_the_instructors_files",
                                  "fork_bomb", "memory_hog", "eq_always_true", "lying_subclass",
                                  "fake_results_table", "deletes_the_log", "infinite_loop"])
def test_no_points_for_what_a_submission_did_not_do(graded, name):
    report = graded["reports"][name]
    assert "passed" not in _status(report).values(), report


@pytest.mark.parametrize("name,attempt", [
    ("borrowed_answer", "called the course's utils.layers.rnn_step_forward while rnn_step_forward was judged"),
    ("overwrites_another_submission", "FileNotFoundError"),
    ("writes_the_course", "FileNotFoundError"),
    ("opens_the_network", "ConnectionRefusedError"),  # the sandbox has a loopback of its own, with no server
    ("reads_the_instructors_files", "FileNotFoundError"),
    ("fork_bomb", "Resource temporarily unavailable"),
    ("memory_hog", "MemoryError"),
    ("speaks_to_the_judge", "broke the grading protocol"),
    ("infinite_loop", "still running after 60 s"),
])
def test_what_a_submission_tried_is_reported(graded, name, attempt):
    report = graded["reports"][name]
    assert attempt in report["detail"] + json.dumps(report["exercises"]), report


def test_a_borrowed_answer_fails_with_a_message_that_says_why(graded):
    messages = {e["exercise"]: e["message"] for e in graded["reports"]["borrowed_answer"]["exercises"]}
    assert "is not available while your rnn_step_forward is judged" in messages["rnn_step_forward"]
    assert "rnn_forward" in messages and "passed" not in _status(graded["reports"]["borrowed_answer"]).values()
    assert "That is the course's own" in graded["reports"]["reference_passed_as_mine"]["exercises"][0]["message"]


def test_an_honest_function_after_an_attack_still_gets_its_verdict(graded):
    for name in ("overwrites_another_submission", "speaks_to_the_judge"):
        assert _status(graded["reports"][name])["rnn_step_forward"] == "passed", graded["reports"][name]


def test_the_instructors_files_and_the_other_submissions_are_untouched(graded):
    changed = [str(p) for p, d in graded["before"].items() if graded["after"][p] != d]
    assert changed == []
    assert graded["reached"] == []  # nothing connected to the instructor's loopback server


def test_an_infinite_loop_is_stopped_at_the_time_limit(graded):
    report = graded["reports"]["infinite_loop"]
    assert report["status"] == "timeout" and report["seconds"] < 100
    assert _status(report)["rnn_step_forward"] in ("error", "not run")


# ---- the parts on their own -------------------------------------------------------------------------------

def test_the_sandboxs_copy_of_the_course_holds_no_answer(tmp_path):
    from utils import check

    course = sandbox.build_course(tmp_path)
    assert not (course / "solutions").exists() and not (course / "tests").exists()
    assert sorted(p.name for p in (course / "utils" / "check").iterdir()) == [
        "__init__.py", "channel.py", "client.py", "execute.py", "exercises.json", "grading.py", "vjp.py", "wire.py"]
    text = "\n".join(p.read_text() for p in (course / "utils").rglob("*.py"))
    import inspect

    for ex in check.exercises():
        body = inspect.getsource(ex.reference).split('"""')[-1].strip().splitlines()
        assert not any(len(line.strip()) > 25 and line.strip() in text for line in body if "return" in line
                       or "=" in line), ex.name
    for module in sandbox.reference_modules():
        assert set(sandbox.proxied_functions(module)).isdisjoint(sandbox.LOCAL[module])


def test_every_reference_module_is_known_to_the_sandbox():
    for module in sandbox.reference_modules():
        sandbox.proxied_functions(module)  # raises for a module missing from LOCAL


def test_the_wire_refuses_anything_but_plain_data():
    def roundtrip(value):
        tree, blobs = wire.encode(value, lambda v: {"$": "handle", "id": "w1", "kind": "x"})
        data = b"".join(blobs)
        return wire.decode(tree, data, wire.blob_table([len(b) for b in blobs], len(data)),
                           lambda t: ("handle", t["id"]), wire.Reference)

    value = {"a": np.arange(6.0).reshape(2, 3), "b": (1, 2.5, None, "s", [True]), 3: np.float32(1.5),
             "g": np.random.default_rng(3)}
    back = roundtrip(value)
    assert np.array_equal(back["a"], value["a"]) and back["b"] == value["b"] and back[3] == np.float32(1.5)
    assert back["g"].random() == np.random.default_rng(3).random()
    assert roundtrip(object()) == ("handle", "w1")
    assert roundtrip(np.array([object()], dtype=object)) == ("handle", "w1")  # object arrays never travel
    bad = [{"$": "nd", "dtype": "|O", "shape": [1], "b": 0}, {"$": "nd", "dtype": "<f8", "shape": [10**9], "b": 0},
           {"$": "nd", "dtype": "<f8", "shape": [-1], "b": 0}, {"$": "eval", "v": "1"}, {"$": "dict", "k": [[1]],
           "v": [1]}, {"$": "rng", "state": {"bit_generator": "MT19937"}}, {"$": "same", "i": 5}]
    for tree in bad:
        with pytest.raises(wire.WireError):
            wire.decode(tree, b"\0" * 8, [(0, 8)], lambda t: None, wire.Reference)
    deep = [0]
    for _ in range(100):
        deep = [deep]
    with pytest.raises(wire.WireError):
        wire.decode(deep, b"", [], lambda t: None, wire.Reference)


def test_the_cli_refuses_to_grade_without_a_sandbox_unless_told(tmp_path, monkeypatch):
    from utils.check import cli

    monkeypatch.setattr(sandbox, "probe", lambda: "bubblewrap is not installed")
    nb = _notebook(tmp_path / "01_x.ipynb", HONEST)
    assert cli.main([str(nb)]) == 2
    assert cli.main([str(nb), "--no-sandbox", "--timeout", "120"]) == 1  # graded, with a warning; 3 not run


def _linked_pair():
    """A judge's Session and a worker's Link on the two ends of one socket, the worker answering in a thread."""
    import time

    from utils.check import channel as channel_module
    from utils.check import judge
    from utils.check.worker import client

    near, far = socket.socketpair()
    session = judge.Session(time.monotonic() + 60)
    session.chan = channel_module.Channel(near, session.codec, session.handle)
    link = client.Link(far)

    def serve():
        try:
            while True:
                link.chan.serve_one()
        except Exception:
            return

    threading.Thread(target=serve, daemon=True).start()
    return session, link


def test_a_pytorch_function_is_backpropagated_where_it_runs():
    import torch

    from utils.check import judge
    from utils.check.battery import call_vjp

    def fn(x, y):
        return (x * y).sum(), x.detach() * 2  # the second output carries no gradient

    session, link = _linked_pair()
    link.objects["w1"] = fn
    remote = judge.Remote(session, {"id": "w1", "callable": True, "name": "fn"})
    x, y = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    cot = [torch.tensor(1.0, dtype=torch.float64), None]
    here, grads_here = call_vjp(fn, {"x": x, "y": y}, ["x", "y"], cot)
    there, grads_there = call_vjp(remote, {"x": x, "y": y}, ["x", "y"], cot)
    assert torch.allclose(here[0], there[0]) and torch.equal(here[1], there[1])
    assert all(torch.allclose(a, b) for a, b in zip(grads_here, grads_there, strict=True))
    assert torch.allclose(grads_there[0], y) and torch.allclose(grads_there[1], x)
    assert there[0].requires_grad and not there[1].requires_grad  # the flags travel with the values
    no_graph = lambda x, y: (x * y).sum().detach()  # noqa: E731
    link.objects["w2"] = no_graph
    assert call_vjp(judge.Remote(session, {"id": "w2", "callable": True}), {"x": x, "y": y}, ["x"], cot)[1] is None

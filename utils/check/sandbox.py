"""The walls around a graded submission: a copy of the course without its answers, and a bubblewrap sandbox.

`build_course(dest)` writes the code a submission may import: the course's `utils` with every reference
implementation replaced by a stand-in that asks the judge (see `worker/client.py`), `utils.check` replaced by the
worker's side of grading, and no solutions, tests or check batteries at all. `command(...)` wraps the worker in
bubblewrap (Debian's `bubblewrap`): no network, a private /tmp and working folder (the only writable place), the
course copy, the data and the Python environment read-only, nothing else of the file system visible (not the
instructor's home, not the other submissions), and limits on processes, memory and CPU time. As root the
worker also runs under an unprivileged user id of its own, since the process limit does not apply to root.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .core import exercises, qualname

UTILS = Path(__file__).resolve().parents[1]
ROOT = UTILS.parent
BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"

#: Functions of the reference modules that contain no exercise's answer and stay as they are in the sandbox's copy
#: (they are handed to learners, or compose the stand-ins); every other function of these modules is a stand-in.
LOCAL = {
    "utils.layers": {"softmax"},
    "utils.gates": {"sigmoid"},
    "utils.charrnn": {"init_params", "streams", "char_rnn_loss", "bits_per_char", "chars_per_second"},
    "utils.decoding": set(),
    "utils.attention": {"softmax"},
    "utils.attend": {"penalty", "receptive_field", "explain", "box_overlap", "named_positions", "attention_maps", "_tv",
                     "grounding", "attention_parameters", "_sampled_costs", "mean_cost", "gradient_samples"},
    "utils.vqa_layers": set(),
    "utils.models": {"detach", "conv_grid"},
}
#: Arguments of a reference that must stay in the worker as handles (callbacks, and parameters they update).
BY_HANDLE = {"truncated_bptt": (0, 1, 4), "beam_search": (0,)}


def reference_modules():
    """The modules holding a reference (or the forward of one), outside utils.check."""
    names = {ex.reference.__module__ for ex in exercises()} | {ex.forward.__module__ for ex in exercises()
                                                              if ex.is_backward}
    return sorted(n for n in names if not n.startswith("utils.check"))


def _module_path(module):
    return ROOT / (module.replace(".", "/") + ".py")


def proxied_functions(module):
    """Every top-level function of a reference module that the sandbox's copy replaces by a stand-in."""
    if module not in LOCAL:
        raise KeyError(f"{module} holds a reference implementation: list its answer-free functions in "
                       "utils.check.sandbox.LOCAL")
    tree = ast.parse(_module_path(module).read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and n.name not in LOCAL[module]]


def _stand_ins(module):
    """The module's source with each proxied function reduced to its signature and docstring, computed by the judge."""
    tree = ast.parse(_module_path(module).read_text())
    names = set(proxied_functions(module))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in names:
            doc = ast.get_docstring(node, clean=False)
            node.body = [ast.Expr(ast.Constant(doc))] if doc else [ast.Expr(ast.Constant(...))]
            by_handle = BY_HANDLE.get(node.name, ()) if f"{module}.{node.name}" in _exercise_references() else ()
            node.decorator_list = [ast.Call(ast.Name("_course_reference", ast.Load()),
                                            [ast.Constant(f"{module}.{node.name}"), ast.Constant(by_handle)], [])]
    imports = ast.parse("from utils.check.client import proxied as _course_reference").body
    future = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    doc = tree.body[:1] if tree.body and isinstance(tree.body[0], ast.Expr) else []
    rest = [n for n in tree.body if n not in future and n not in doc]
    tree.body = doc + future + imports + rest
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _exercise_references():
    return {qualname(ex.reference) for ex in exercises()}


def exercise_table():
    """What the worker's `check` needs to know of each exercise, and nothing of how it is judged."""
    return [{"name": ex.name, "notebook": ex.notebook, "reference": qualname(ex.reference),
             "forward": qualname(ex.forward) if ex.is_backward else None, "forward_name": ex.forward_name,
             "by_handle": list(BY_HANDLE.get(ex.name, ()))} for ex in exercises()]


def build_course(dest):
    """Write the sandbox's copy of the course's code under dest/utils; returns dest."""
    dest = Path(dest)
    shutil.copytree(UTILS, dest / "utils", ignore=shutil.ignore_patterns("__pycache__", "check"))
    check = dest / "utils" / "check"
    check.mkdir()
    for name in ("wire.py", "channel.py", "execute.py", "vjp.py", "grading.py"):  # grading: for utils.widgets
        shutil.copyfile(UTILS / "check" / name, check / name)
    for name in ("__init__.py", "client.py"):
        shutil.copyfile(UTILS / "check" / "worker" / name, check / name)
    (check / "exercises.json").write_text(json.dumps(exercise_table(), indent=1))
    for module in reference_modules():
        (dest / (module.replace(".", "/") + ".py")).write_text(_stand_ins(module))
    (dest / "data" / "cache").mkdir(parents=True, exist_ok=True)  # where the data is mounted
    for folder in [dest, *(p for p in dest.rglob("*") if p.is_dir())]:
        folder.chmod(0o755)  # readable by the sandbox's own user (a temporary folder starts as 0700)
    return dest


# --- bubblewrap ------------------------------------------------------------------------------------------------

SYSTEM_DIRS = ("/usr", "/etc/ld.so.cache", "/etc/fonts", "/etc/ssl/certs", "/etc/localtime", "/etc/alternatives")


def _bind_with_parents(args, source, target=None):
    """--ro-bind source, after creating each missing parent as a world-readable folder (bwrap makes them 0700)."""
    target = str(target or source)
    parts = Path(target).parts
    for i in range(2, len(parts)):
        args += ["--perms", "0755", "--dir", str(Path(*parts[:i]))]
    args += ["--ro-bind", str(source), target]


def sandbox_uid(job):
    """The user id a root grader gives worker number `job`: unprivileged, and one per worker, so that each
    worker's process limit is its own."""
    return 61000 + job


def command(worker, job_dir, course, env, limits, job=0):
    """The bwrap command line that runs `worker` (an argv list) inside the walls described above.

    job_dir: the submission's folder (seen as /tmp/home, the only writable place); course: the copy made by
    build_course; env: the worker's environment (nothing else is inherited); limits: dict with "processes",
    "memory" (bytes of address space) and "cpu" (seconds).
    """
    args = [BWRAP, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--clearenv", "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--tmpfs", "/tmp"]
    root = os.geteuid() == 0
    if not root:
        args += ["--unshare-user"]
    for path in SYSTEM_DIRS:
        args += ["--ro-bind-try", path, path]
    for link, target in (("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/sbin", "usr/sbin")):
        if os.path.islink(link):
            args += ["--symlink", target, link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    for prefix in sorted({sys.base_prefix, sys.prefix}):
        _bind_with_parents(args, prefix)
    _bind_with_parents(args, course, "/course")
    cache = ROOT / "data" / "cache"
    if cache.is_dir():
        args += ["--ro-bind", str(cache.resolve()), "/course/data/cache"]
    args += ["--bind", str(job_dir), "/tmp/home", "--chdir", "/tmp/home"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    limit = ["prlimit", f"--nproc={limits['processes']}", f"--as={limits['memory']}", f"--cpu={limits['cpu']}", "--"]
    if root:
        uid = str(sandbox_uid(job))
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                 "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                 "--bounding-set=-all", "--no-new-privs"]
    return args + limit + list(worker)


def process_limit(job):
    """RLIMIT_NPROC counts every process of the user: a worker's own uid as root; the grader's own otherwise, so
    the limit is what the grader runs now plus room for the notebook's kernel and its threads."""
    if os.geteuid() == 0:
        return 256
    mine = subprocess.run(["ps", "-u", str(os.getuid()), "-L", "--no-headers"], capture_output=True, text=True)
    return len(mine.stdout.splitlines()) + 256


def probe():
    """None if a sandbox can be made here, else a sentence saying why not."""
    if not os.path.exists(BWRAP):
        return ("bubblewrap is not installed (`apt-get install bubblewrap`, or `make test`, which installs it "
                "as root)")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="course-probe-") as tmp:
        (Path(tmp) / "course" / "data" / "cache").mkdir(parents=True)
        (Path(tmp) / "home").mkdir()
        try:
            proc = subprocess.run(command(["/bin/true"], Path(tmp) / "home", Path(tmp) / "course",
                                          {"PATH": "/usr/bin:/bin"}, {"processes": 64, "memory": 1 << 30, "cpu": 10}),
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not be started: {exc}"
    if proc.returncode != 0:
        return f"bubblewrap could not make a sandbox here: {proc.stderr.strip()[:300] or proc.returncode}"
    return None

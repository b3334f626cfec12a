"""`make lab` serves lectures/ in JupyterLab with the widgets front end, as root and as a normal user.

JupyterLab refuses to start as root unless given --allow-root; containers, cloud machines and CI run as
root, learners' laptops do not. Both are tested: as whoever runs the tests, and, when that is root, also as
the unprivileged user `nobody` (when it is not root, the root case cannot be made and is skipped).

`nobody` cannot run .venv's interpreter when it lives in root's home (as pyenv's does), so, as a learner
would, it gets an environment of its own: a venv of the system's Python that uses .venv's packages, passed
to `make lab` as VENV.
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from utils.lectures import ROOT

from .jupyterlab import free_port

AS_ROOT = os.geteuid() == 0
SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def _home(user):
    """A fresh folder the user owns, for JupyterLab's runtime, config and workspace files."""
    home = tempfile.mkdtemp(prefix="course-lab-")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(home, entry.pw_uid, entry.pw_gid)
    return home


def _venv_for(home):
    """A venv of the system's Python, owned by nobody, whose packages are .venv's (see the module docstring)."""
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"no {SYSTEM_PYTHON} that an unprivileged user could run")
    venv = Path(home) / "venv"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "course.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    (venv / ".installed").touch()  # installed: the packages are .venv's
    entry = pwd.getpwnam("nobody")
    for path in [venv, *venv.rglob("*")]:
        os.lchown(path, entry.pw_uid, entry.pw_gid)
    return venv


@pytest.mark.parametrize("user", ["root", "normal user"])
def test_make_lab_serves_the_lectures(user):
    if user == "root" and not AS_ROOT:
        pytest.skip("the tests do not run as root here, so `make lab` as root cannot be tried")
    switch = AS_ROOT and user == "normal user"  # as root, become `nobody`; otherwise run as we are
    home = _home("nobody" if switch else None)
    port, token = free_port(), "course-test"
    env = {**os.environ, "HOME": home, "JUPYTER_RUNTIME_DIR": f"{home}/runtime", "JUPYTER_CONFIG_DIR": f"{home}/config",
           "JUPYTER_DATA_DIR": f"{home}/data", "IPYTHONDIR": f"{home}/ipython", "PYTHONDONTWRITEBYTECODE": "1"}
    args = (f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port_retries=0 "
            f"--IdentityProvider.token={token} --LabApp.workspaces_dir={home}/ws --LabApp.news_url=None")
    command = ["make", "-s", "lab", f"LAB_PORT={port}", f"LAB_ARGS={args}"]
    if switch:
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command,
                   f"VENV={_venv_for(home)}"]
        # .venv's Jupyter files too (the widgets front end, the server extensions' settings)
        env.update(JUPYTER_PATH=f"{sys.prefix}/share/jupyter", JUPYTER_CONFIG_PATH=f"{sys.prefix}/etc/jupyter")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, _ = _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "JupyterLab did not answer within 90 s"
                time.sleep(0.5)
        assert status == 200
        _, listing = _get(f"{base}/api/contents?token={token}")
        names = {item["name"] for item in json.loads(listing)["content"]}
        assert names >= {p.name for p in (ROOT / "lectures").glob("*.ipynb")} and names
        status, page = _get(f"{base}/lab?token={token}")
        assert status == 200 and "@jupyter-widgets/jupyterlab-manager" in page  # the widgets front end is loaded
        server = next(p for p in _descendants(proc.pid) if "jupyter" in p[1] and "lab" in p[1])
        assert (server[2] == 0) == (AS_ROOT and not switch), server  # it really runs as the user under test
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def _descendants(pid):
    """(pid, command line, uid) of every process below `pid`, from /proc."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child in (open(f"/proc/{parent}/task/{parent}/children").read().split()
                      if os.path.exists(f"/proc/{parent}/task/{parent}/children") else []):
            child = int(child)
            with open(f"/proc/{child}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode()
            found.append((child, cmdline, os.stat(f"/proc/{child}").st_uid))
            frontier.append(child)
    return found

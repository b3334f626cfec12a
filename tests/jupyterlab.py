"""A JupyterLab server and a headless Chromium for the browser tests, isolated from the user's set-up.

The server gets its own config, data, runtime, settings and workspace folders, no token, autosave and
news off; it serves a temporary folder of notebook copies, so opening a notebook never writes to the
repository. Facts this relies on are in the course's notes on testing JupyterLab in a browser.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    # render every cell, not only those in view, so that the whole notebook can be inspected
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """`jupyter lab` from this environment on 127.0.0.1, serving copies of `notebooks`."""

    def __init__(self, notebooks, workdir, disabled_extensions=()):
        self.workdir, self.port = Path(workdir), free_port()
        self.root = self.workdir / "notebooks"
        self.root.mkdir(parents=True)
        for nb in notebooks:
            shutil.copyfile(nb, self.root / Path(nb).name)
        dirs = {name: self.workdir / name for name in ("config", "data", "runtime", "ipython", "settings", "ws")}
        for d in dirs.values():
            d.mkdir()
        for name, value in SETTINGS.items():
            path = dirs["settings"] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        if disabled_extensions:
            (dirs["config"] / "labconfig").mkdir()
            (dirs["config"] / "labconfig" / "page_config.json").write_text(
                json.dumps({"disabledExtensions": dict.fromkeys(disabled_extensions, True)}))
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # it would hide inline figures
        env.update(JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
                   JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), IPYTHONDIR=str(dirs["ipython"]),
                   COURSE_FAST="1")  # the browser tests check what the learner sees; nbval checks full training
        self.log = open(self.workdir / "server.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
             "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",  # so the tests may DELETE a session
             "--LabApp.news_url=None", f"--ServerApp.root_dir={self.root}",
             f"--LabApp.user_settings_dir={dirs['settings']}", f"--LabApp.workspaces_dir={dirs['ws']}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {(self.workdir / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("jupyter lab did not answer within 60 s")

    def shut_down_kernels(self):
        """End every kernel the server runs (a notebook that timed out would go on computing beside the next)."""
        with urllib.request.urlopen(f"{self.url}/api/sessions", timeout=10) as r:
            sessions = json.load(r)
        for session in sessions:
            request = urllib.request.Request(f"{self.url}/api/sessions/{session['id']}", method="DELETE")
            with urllib.request.urlopen(request, timeout=30):
                pass

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)  # it shuts its kernels down first
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()

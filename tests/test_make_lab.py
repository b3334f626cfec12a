"""`make lab` serves lectures/ in JupyterLab with the widgets front end installed."""

import json
import os
import signal
import subprocess
import time
import urllib.request

from utils.lectures import ROOT

from .jupyterlab import free_port


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def test_make_lab_serves_the_lectures(tmp_path):
    port, token = free_port(), "course-test"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "IPYTHONDIR": str(tmp_path / "ipython")}
    args = (f"--no-browser --allow-root --ServerApp.ip=127.0.0.1 --ServerApp.port_retries=0 "
            f"--IdentityProvider.token={token} --LabApp.workspaces_dir={tmp_path / 'ws'} --LabApp.news_url=None")
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_PORT={port}", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "JupyterLab did not answer within 60 s"
                time.sleep(0.5)
        assert status == 200
        _, listing = _get(f"{base}/api/contents?token={token}")
        names = {item["name"] for item in json.loads(listing)["content"]}
        assert names >= {p.name for p in (ROOT / "lectures").glob("*.ipynb")} and names
        status, page = _get(f"{base}/lab?token={token}")
        assert status == 200 and "@jupyter-widgets/jupyterlab-manager" in page  # the widgets front end is loaded
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

"""Run one notebook in a fresh kernel and print, as JSON, the errors its cells raised.

Started by the instructors' CLI (utils/check/cli.py) in a process of its own, so that a notebook that
hangs can be killed with its kernel, and the CLI goes on with the next one.

    python -m utils.check.execute NOTEBOOK CELL_TIMEOUT
"""

import json
import sys
from pathlib import Path

import nbformat
from jupyter_client import KernelManager
from nbclient import NotebookClient


def main(path, cell_timeout):
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    # The kernel talks over Unix sockets in the notebook's temporary folder, not TCP ports: a port picked as
    # free can be taken by another kernel starting at the same moment (a grading run, a JupyterLab), and a
    # kernel that loses that race leaves the client waiting.
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(path.parent / "kernel"))
    client = NotebookClient(nb, km=km, timeout=cell_timeout, allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [
        {"cell": i, "ename": out.get("ename", ""), "evalue": out.get("evalue", "")}
        for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.get("output_type") == "error"
    ]
    print(json.dumps({"errors": errors}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

"""Run one notebook in a fresh kernel and print, as JSON, the errors its cells raised.

Started by the instructors' CLI (utils/check/cli.py) in a process of its own, so that a notebook that
hangs can be killed with its kernel, and the CLI goes on with the next one.

    python -m utils.check.execute NOTEBOOK CELL_TIMEOUT
"""

import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(path, cell_timeout):
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
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

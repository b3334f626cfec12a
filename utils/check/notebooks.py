"""Finding notebooks on disk and telling which course notebook a file is."""

import re
from pathlib import Path


def notebook_paths(args):
    """The .ipynb files named, and those under the folders named (checkpoints skipped)."""
    paths = []
    for arg in map(Path, args):
        if arg.is_dir():
            paths += sorted(p for p in arg.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        else:
            paths.append(arg)
    return paths


def notebook_number(nb, path):
    """The course notebook a file is, from its metadata (survives renaming) or its name."""
    number = nb.metadata.get("course", {}).get("notebook")
    if number is None:
        match = re.search(r"(?:^|\D)(\d\d)_", path.name)
        number = match.group(1) if match else None
    return number

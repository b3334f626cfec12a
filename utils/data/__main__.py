"""`python -m utils.data`: fetch, generate and verify the data the notebooks need (what `make data` runs)."""

import sys

from .corpus import CorpusError, fetch_shakespeare
from .shapes import SPLITS, load_shapes

try:
    fetch_shakespeare()
except CorpusError as err:
    sys.exit(f"make data: {err}")
for split in SPLITS:
    load_shapes(split)  # builds a missing or damaged split, with a message; verifies the others
print(f"Shape world ({', '.join(f'{s} {n:,}' for s, n in SPLITS.items())} scenes) is present and verified.")

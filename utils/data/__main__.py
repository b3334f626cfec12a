"""`python -m utils.data`: fetch and verify the data the notebooks need (what `make data` runs)."""

import sys

from .corpus import CorpusError, fetch_shakespeare

try:
    fetch_shakespeare()
except CorpusError as err:
    sys.exit(f"make data: {err}")

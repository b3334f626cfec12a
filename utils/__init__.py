"""Everything the course notebooks import: reference layers, auto-checks, plots, widgets, training helpers.

Kept import-light on purpose (no torch here): notebook 01 is numpy only and a learner's first
`from utils import check` should take well under a second.
"""

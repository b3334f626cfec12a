"""Fixtures shared by the test modules."""

import os

# As `make unit` sets it (see the Makefile): the kernels these tests start share two cores, and spinning
# OpenMP threads would starve each other (set before torch loads its OpenMP runtime, here and in every process
# the tests start).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(items):
    """The modules marked `runs_for(seconds=...)` (kernels, servers, browsers: each worth minutes of one test
    worker) go first, longest first, then the rest in file order. `make unit` hands whole files to its workers
    in this order (pytest-xdist's --dist loadfile --no-loadscope-reorder): started last, as pytest-xdist's own order
    (most tests first) left them, they kept one worker busy after the others had run out of files. The seconds
    are a scheduling hint, not a limit."""
    def seconds(item):
        marker = item.get_closest_marker("runs_for")
        return marker.kwargs["seconds"] if marker else 0

    items.sort(key=lambda item: -seconds(item))  # stable: the order within a file and among the rest is kept


@pytest.fixture
def torch_float64():
    """Compare in float64; restore the default afterwards so other tests in this process are unaffected."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def one_torch_thread():
    """One torch thread, as each of the two pytest-xdist workers shares the machine's two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

"""`make bench` keeps working: each section runs on tiny budgets and formats. No speed is asserted."""

import pytest

from utils import bench

pytestmark = pytest.mark.runs_for(seconds=35)  # see conftest.py: started first


def test_bench_sections_run_and_format():
    result = {"date": "today", "machine": "this one",
              "notebooks": [{"notebook": "solutions/x.ipynb", "mode": "full", "seconds": 1.0, "status": "ok"}],
              "layers": bench.layer_ratios(repeats=1), "char_lm": bench.char_throughput(seconds=0.01),
              "shape_world": bench.shape_world(seconds=0.01)}
    assert [(r["layer"], r["shape"]) for r in result["layers"]] == [
        (kind, f"N={n} T={t} D={d} H={h}") for kind in ("RNN", "LSTM") for n, t, d, h in bench.SHAPES]
    assert all(r["ratio"] > 0 and r["numpy_s"] > 0 for r in result["layers"])
    assert len(result["char_lm"]) == 5 and all(r["chars_per_s"] > 0 for r in result["char_lm"])
    table = bench.format_tables(result)
    assert [r["unit"] for r in result["shape_world"]] == ["s", "s", "images/s", "images/s"] + ["ms/step"] * 4
    assert all(r["value"] > 0 for r in result["shape_world"])
    assert "numpy vs torch" in table and "torch LSTM" in table and "solutions/x.ipynb" in table
    assert "draw 10,000 scenes" in table and "attention captioner" in table and "VQA training, 2 hops" in table


def test_a_notebook_is_timed_as_a_learner_runs_it(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    path = tmp_path / "01_tiny.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("from utils.train import FAST\nassert FAST")]), path)
    seconds, status = bench.run_notebook(path, fast=True, timeout=120)
    assert status == "ok" and seconds > 0
    assert bench.run_notebook(path, fast=False, timeout=120)[1] == "raised"

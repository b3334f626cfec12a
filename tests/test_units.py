"""Features for the hidden-unit search, and the search itself."""

import numpy as np
import pytest

from utils import units


def test_python_features_follow_the_tokenizer():
    src = 'x = f(1, "a#b")  # note\n    y = 2\n'
    f = units.python_features([src])
    marked = {name: "".join(c for c, v in zip(src, f[name], strict=True) if v) for name in
              ("inside a string", "inside a comment")}
    assert marked == {"inside a string": '"a#b"', "inside a comment": "# note"}
    inside = "".join(c for c, v in zip(src, f["inside brackets"], strict=True) if v)
    assert inside == '(1, "a#b")'
    assert f["indentation"][src.index("y")] == 4 and f["column in line"][src.index("y")] == 4


def test_python_features_span_joined_files():
    files = ['s = """multi\nline"""\n', "t = (1,\n     2)\n"]
    f = units.python_features(files)
    text = "\n".join(files)
    assert all(len(v) == len(text) for v in f.values())
    assert f["inside a string"][text.index("line")] == 1
    assert f["inside brackets"][text.index("2)")] == 1 and f["inside brackets"][text.index("t =")] == 0


def test_prose_features_close_stage_directions_at_blank_lines():
    text = "ROMEO.\n[Enter\nJuliet.] Hi\n\n[Exit.\n\nNext"
    f = units.prose_features(text)
    inside = "".join(c for c, v in zip(text, f["inside [stage directions]"], strict=True) if v)
    assert inside == "[Enter\nJuliet.][Exit.\n"
    assert f["column in line"][text.index("Hi")] == 9


def test_best_units_finds_a_planted_unit_and_checks_shapes():
    rng = np.random.default_rng(0)
    feature = rng.random(500)
    acts = rng.standard_normal((500, 10))
    acts[:, 7] = -feature + 0.01 * rng.standard_normal(500)
    found = units.best_units(acts, {"planted": feature})
    assert found["planted"][0] == 7 and found["planted"][1] < -0.99
    with pytest.raises(ValueError, match="one value per character"):
        units.best_units(acts, {"short": feature[:10]})

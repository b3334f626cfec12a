"""The check mechanics: fallback, feedback for each kind of mistake, HTML and text, the log."""

import textwrap

import numpy as np
import pytest

from utils import check, layers


def test_check_returns_the_learners_function_once_it_passes(capsys):
    def mine(x, prev_h, Wx, Wh, b):
        return np.tanh(x @ Wx + prev_h @ Wh + b), None

    assert check("rnn_step_forward", mine) is mine
    assert "[PASS]" in capsys.readouterr().out


def test_check_falls_back_to_the_reference_and_says_so(capsys):
    def stub(x, prev_h, Wx, Wh, b):
        raise NotImplementedError()

    assert check("rnn_step_forward", stub) is layers.rnn_step_forward
    out = capsys.readouterr().out
    assert "not implemented" in out and "utils.layers.rnn_step_forward" in out


def test_a_failure_names_test_error_index_shapes_and_a_hint():
    result = check.run("rnn_forward", lambda x, h0, Wx, Wh, b: (np.tanh(x @ Wx + (h0 @ Wh)[:, None] + b), None))
    assert not result.passed and result.status == "failed"
    msg = result.message
    assert "values (float64)" in msg and "`h` is wrong:" in msg and "the largest error at index" in msg
    assert "expected" in msg and "got" in msg and "Errors: relative error |yours - expected|" in msg
    assert "Inputs: x: float64" in msg and f"seed={result.seed}" in msg
    assert "hidden state must be carried" in msg  # the hint for this known mistake


def test_an_unlisted_mistake_still_gets_a_hint_from_where_it_goes_wrong():
    def drifts(x, h0, Wx, Wh, b):
        h, _ = layers.rnn_forward(x, h0, Wx, Wh, b)
        h[:, 1:] *= 1.01
        return h, None

    result = check.run("rnn_forward", drifts)
    assert "Step 0" not in result.hint and "step 1 is not" in result.hint


def test_wrong_shape_none_and_nan_have_their_own_messages():
    shape = check.run("rnn_step_forward", lambda x, h, Wx, Wh, b: (np.zeros((1, 1)), None))
    assert "has shape (1, 1); expected" in shape.message
    none = check.run("rnn_step_forward", lambda x, h, Wx, Wh, b: (None, None))
    assert "is None" in none.message and "return" in none.hint
    nan = check.run("rnn_step_forward", lambda x, h, Wx, Wh, b: (np.full((x.shape[0], Wh.shape[0]), np.nan), None))
    assert "contains NaN" in nan.message


def test_an_exception_shows_the_learners_line(tmp_path, monkeypatch):
    module = tmp_path / "learner_code.py"
    module.write_text(textwrap.dedent("""
        import numpy as np

        def rnn_step_forward(x, prev_h, Wx, Wh, b):
            a = x @ Wh  # wrong weight: shapes do not fit
            return np.tanh(a), None
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    from learner_code import rnn_step_forward

    result = check.run("rnn_step_forward", rnn_step_forward)
    assert result.status == "error" and not result.passed
    assert "ValueError" in result.message
    assert "line 5 of your code: a = x @ Wh" in result.message
    assert "shape" in result.hint


def test_html_and_text_renderings():
    result = check.run("rnn_step_forward", lambda x, h, Wx, Wh, b: (np.tanh(x @ Wx + h @ Wh) + 0 * b, None))
    html = result._repr_html_()
    assert "course-check-failed" in html and "Hint:" in html and "<script" not in html
    assert str(result).startswith("[FAIL]")
    assert "course-check-passed" in check.run("rnn_step_forward", layers.rnn_step_forward)._repr_html_()


def test_check_writes_no_log_that_grading_could_read(tmp_path, monkeypatch, capsys):
    """Grading learns verdicts from its judge, never from a file the notebook could write."""
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("COURSE_CHECK_LOG", str(log))
    check("rnn_step_forward", layers.rnn_step_forward)
    assert not log.exists()


def test_bad_calls_to_check_are_explained():
    with pytest.raises(ValueError, match="unknown exercise 'rnn_stepforward'; the exercises are: rnn_step_forward"):
        check.run("rnn_stepforward", layers.rnn_step_forward)
    result = check.run("rnn_step_forward", "not a function")
    assert not result.passed and "Expected a function, got str" in result.message


def test_an_input_modified_in_place_is_reported():
    def inplace(x, prev_h, Wx, Wh, b):
        prev_h *= 0.5
        return np.tanh(x @ Wx + 2 * prev_h @ Wh + b), None

    result = check.run("rnn_step_forward", inplace)
    assert "modified its input `prev_h` in place" in result.message


def test_exercises_are_listed_in_course_order():
    assert check.EXERCISES[:4] == ("rnn_step_forward", "rnn_forward", "temporal_softmax_loss", "rnn_sample")

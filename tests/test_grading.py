"""Grading mode: who turns it on, what a failing check does in it, and that a learner never meets it."""

import numpy as np
import pytest

from utils import check, layers
from utils.check import grading


def without_bias(x, prev_h, Wx, Wh, b):
    return np.tanh(x @ Wx + prev_h @ Wh), None


@pytest.fixture
def environment(monkeypatch):
    for name in ("COURSE_GRADING", "NBGRADER_EXECUTION"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("variables, active", [
    ({}, False),
    ({"NBGRADER_EXECUTION": "autograde"}, True),
    ({"NBGRADER_EXECUTION": "validate"}, True),
    ({"NBGRADER_EXECUTION": "something else"}, False),
    ({"COURSE_GRADING": "1"}, True),
    ({"COURSE_GRADING": "0", "NBGRADER_EXECUTION": "autograde"}, False),
])
def test_the_mode_comes_from_the_environment(environment, variables, active):
    for name, value in variables.items():
        environment.setenv(name, value)
    assert grading.active() is active


def test_a_bad_switch_is_named(environment):
    environment.setenv("COURSE_GRADING", "yes")
    with pytest.raises(ValueError, match="COURSE_GRADING must be 0 or 1"):
        grading.active()


def test_a_learner_gets_the_reference_and_no_exception(environment, capsys):
    assert check("rnn_step_forward", without_bias) is layers.rnn_step_forward
    assert "[FAIL]" in capsys.readouterr().out


@pytest.mark.parametrize("fn", [without_bias, lambda *args: (_ for _ in ()).throw(NotImplementedError())])
def test_when_grading_a_check_that_does_not_pass_raises_its_own_message(environment, capsys, fn):
    environment.setenv("NBGRADER_EXECUTION", "autograde")
    expected = check.run("rnn_step_forward", fn)
    with pytest.raises(grading.CheckFailed) as raised:
        check("rnn_step_forward", fn)
    assert str(raised.value).splitlines()[0] == expected.message.splitlines()[0]
    assert expected.hint in str(raised.value)
    assert expected.headline in capsys.readouterr().out  # the learner's box is shown as well


def test_when_grading_a_passing_check_returns_the_learners_function(environment):
    environment.setenv("COURSE_GRADING", "1")

    def mine(x, prev_h, Wx, Wh, b):
        return np.tanh(x @ Wx + prev_h @ Wh + b), None

    assert check("rnn_step_forward", mine) is mine


def test_the_learners_names_point_at_the_reference_before_the_raise(environment, monkeypatch):
    environment.setenv("COURSE_GRADING", "1")
    namespace = {"rnn_step_forward": without_bias, "alias": without_bias, "other": 3, "h": None}
    monkeypatch.setattr(grading, "_user_namespace", lambda: namespace)
    with pytest.raises(grading.CheckFailed):
        check("rnn_step_forward", without_bias)
    assert namespace == {"rnn_step_forward": layers.rnn_step_forward, "alias": layers.rnn_step_forward,
                         "other": 3, "h": None}


def test_a_failing_backward_pass_rebinds_both_names_of_its_pair(environment, monkeypatch):
    from utils import gates

    environment.setenv("COURSE_GRADING", "1")

    def my_forward(x, h0, Wx, Wh, b):
        return gates.lstm_forward(x, h0, Wx, Wh, b)

    def wrong_backward(dh, cache):
        return tuple(2 * g for g in gates.lstm_backward(dh, cache))

    namespace = {"lstm_forward": my_forward, "lstm_backward": wrong_backward}
    monkeypatch.setattr(grading, "_user_namespace", lambda: namespace)
    with pytest.raises(grading.CheckFailed):
        check("lstm_backward", wrong_backward, forward=my_forward)
    assert namespace == {"lstm_forward": gates.lstm_forward, "lstm_backward": gates.lstm_backward}


def test_an_explorer_is_drawn_once_as_plain_output_when_grading(environment, monkeypatch):
    import matplotlib.pyplot as plt

    from utils import widgets

    drawn = []
    monkeypatch.setattr(plt, "show", lambda: drawn.append(plt.gcf().number))
    assert type(widgets.gate_explorer()).__name__ == "interactive"  # a learner gets the sliders
    environment.setenv("NBGRADER_EXECUTION", "autograde")
    drawn.clear()
    assert widgets.gate_explorer() is None and len(drawn) == 1  # the grader gets the first view, once
    plt.close("all")

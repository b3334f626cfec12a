"""The training plumbing every trainer shares."""

import time

from utils import train


def test_history_records_means_since_the_last_entry_and_training_time_only():
    history = train.History(steps=5, entries=2)  # an entry every 2 steps and at the last
    start = time.perf_counter()
    for step in range(1, 6):
        with history.timed():
            time.sleep(0.001)
        time.sleep(0.003)  # evaluation time: not counted
        history.add(loss=step)
        if history.due(step):
            history.record(step, val=10 * step)
    assert history["step"] == [2, 4, 5]
    assert history["loss"] == [1.5, 3.5, 5.0]
    assert history["val"] == [20.0, 40.0, 50.0]
    wall = time.perf_counter() - start
    assert history["seconds"] == sorted(history["seconds"])
    assert 0.005 <= history["seconds"][-1] <= wall - 5 * 0.003  # the sleeps outside `timed` are left out


def test_progress_bars_redraw_at_most_once_a_second():
    bar = train.progress(0, 3, "x")
    assert bar.mininterval == train.PROGRESS_INTERVAL == 1.0 and not bar.leave
    assert list(bar) == [0, 1, 2]

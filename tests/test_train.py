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


def test_clipped_update_returns_the_norm_before_clipping_and_none_means_no_clipping():
    import torch

    for clip in (None, 0.5):
        model = torch.nn.Linear(3, 2)
        with torch.no_grad():
            model.weight.fill_(1.0)
            model.bias.zero_()
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        loss = 10 * model(torch.ones(1, 3)).sum()
        norm = train.clipped_update(model, opt, loss, clip)
        # d loss / d weight = 10 everywhere (6 entries), d loss / d bias = 10 (2 entries): norm 10 * sqrt(8)
        assert abs(norm - 10 * 8 ** 0.5) < 1e-4
        step = (1.0 - model.weight.detach()).pow(2).sum() + model.bias.detach().pow(2).sum()
        assert abs(step.sqrt().item() - (norm if clip is None else clip)) < 1e-4

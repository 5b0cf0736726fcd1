from napari_noise2detail._napari.worker import _batched


def _events(n, value="done"):
    yield from range(n)
    return value


def test_events_reach_the_gui_in_batches_with_none_lost(monkeypatch):
    clock = iter([0.0, 0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 1.0, 1.1, 1.2])
    monkeypatch.setattr("napari_noise2detail._napari.worker.time.monotonic", lambda: next(clock))
    run = _batched(_events(10), interval=0.5)
    batches = []
    while True:
        try:
            batches.append(next(run))
        except StopIteration as done:
            assert done.value == "done"
            break
    assert batches[0] == [0]  # the first event at once: the dock shows the run has started
    assert batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]  # the rest at most every 0.5 s, then what is left


def test_a_run_without_events_still_returns():
    run = _batched(_events(0, 42), interval=0.5)
    try:
        next(run)
    except StopIteration as done:
        assert done.value == 42

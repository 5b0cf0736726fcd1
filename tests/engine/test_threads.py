import numpy as np
import pytest
import torch

from napari_noise2detail import denoise, describe_device
from napari_noise2detail.engine import threads as threads_module
from napari_noise2detail.engine.threads import AdaptiveThreads, check_threads, torch_threads


class FakeMachine:
    """A clock and a thread setting: each step costs ``cost[threads]`` seconds of the clock."""

    def __init__(self, monkeypatch, cost):
        self.now = 0.0
        self.cost = dict(cost)
        self.threads = max(cost)
        self.sets = 0
        monkeypatch.setattr(threads_module.time, "perf_counter", lambda: self.now)
        monkeypatch.setattr(threads_module.torch, "get_num_threads", lambda: self.threads)
        monkeypatch.setattr(threads_module.torch, "set_num_threads", self._set)

    def _set(self, n):
        self.threads = n
        self.sets += 1

    def run(self, tuner, steps):
        """Run ``steps`` steps; returns how many ran at each thread count."""
        used = {}
        for _ in range(steps):
            with tuner.step():
                self.now += self.cost[self.threads]
            used[self.threads] = used.get(self.threads, 0) + 1
        return used


def test_an_idle_machine_keeps_all_threads(monkeypatch):
    machine = FakeMachine(monkeypatch, {2: 1.0, 1: 1.5})
    tuner = AdaptiveThreads(2)
    used = machine.run(tuner, 2000)
    assert tuner.best == 2
    assert used[1] < 0.05 * 2000  # only the probes ran at one thread


def test_a_busy_machine_falls_back_to_one_thread(monkeypatch):
    machine = FakeMachine(monkeypatch, {2: 2.3, 1: 1.0})
    tuner = AdaptiveThreads(2)
    used = machine.run(tuner, 2000)
    assert tuner.best == 1
    assert used[2] < 0.05 * 2000
    # the time lost to probing the slow count is a few percent of the run
    assert machine.now < 1.05 * 2000 * 1.0


def test_load_arriving_and_leaving_is_followed(monkeypatch):
    machine = FakeMachine(monkeypatch, {2: 1.0, 1: 1.5})
    tuner = AdaptiveThreads(2)
    machine.run(tuner, 3000)  # long idle: the runs between probes have grown long
    machine.cost = {2: 4.0, 1: 1.6}  # other programs start
    used = machine.run(tuner, 100)
    assert used.get(2, 0) < 30  # the slowdown ends the run early: no waiting for the next probe
    assert tuner.best == 1
    machine.cost = {2: 1.0, 1: 1.5}  # and stop again: found at the next probe
    machine.run(tuner, 1000)
    assert tuner.best == 2


def test_many_cores_probe_half_of_them_too(monkeypatch):
    machine = FakeMachine(monkeypatch, {8: 3.0, 4: 1.2, 1: 2.0})
    tuner = AdaptiveThreads(8)
    assert tuner.candidates == [8, 4, 1]
    machine.run(tuner, 500)
    assert tuner.best == 4


def test_restart_keeps_the_choice_and_times_it_afresh(monkeypatch):
    machine = FakeMachine(monkeypatch, {2: 2.0, 1: 1.0})
    tuner = AdaptiveThreads(2)
    machine.run(tuner, 300)
    assert tuner.current == 1
    tuner.restart()  # e.g. stage 3, whose steps are larger: four times as long
    machine.cost = {2: 8.0, 1: 4.0}
    used = machine.run(tuner, 200)
    assert used == {1: 200}  # no probing at the start of a loop, no false alarm of load
    machine.cost = {2: 1.0, 1: 3.0}  # were the ranking to flip, the next probe finds it
    machine.run(tuner, 2000)
    assert tuner.best == 2


def test_one_thread_allowed_changes_nothing(monkeypatch):
    machine = FakeMachine(monkeypatch, {1: 1.0})
    tuner = AdaptiveThreads(1)
    assert not tuner.adaptive
    machine.run(tuner, 100)
    assert machine.sets == 0


def test_torch_threads_restores_the_count():
    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with pytest.raises(KeyError):
        with torch_threads(before + 1):
            raise KeyError
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="threads"):
        check_threads(bad)
    with pytest.raises(ValueError, match="threads"):
        denoise(np.zeros((16, 16), np.float32), threads=bad)


def test_a_fixed_thread_count_is_used_and_given_back(noisy64, monkeypatch):
    seen = []
    real_set = torch.set_num_threads

    def spy(n):
        seen.append(n)
        real_set(n)

    before = torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", spy)
    a = denoise(noisy64, threads=2, steps=6, device="cpu")
    b = denoise(noisy64, threads=2, steps=6, device="cpu")
    assert seen[0] == 2 and torch.get_num_threads() == before
    assert np.array_equal(a.detail, b.detail)  # a fixed count: bit-identical reruns
    assert a.device == "CPU, 2 threads"


def test_adaptive_threads_are_given_back_after_a_run(noisy64):
    before = torch.get_num_threads()
    with torch_threads(2):
        result = denoise(noisy64, steps=30, device="cpu")
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    assert result.device == "CPU, 2 threads (fewer for fitting while the machine is busy)"


def test_describe_device_says_how_threads_are_used(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert describe_device("cpu") == "CPU, 8 threads (fewer for fitting while the machine is busy)"
    assert describe_device("cpu", threads=3) == "CPU, 3 threads"
    assert describe_device("cpu", threads=1) == "CPU, 1 thread"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert describe_device("cpu") == "CPU, 1 thread"

import numpy as np
import pytest
import torch

from napari_noise2detail import denoise, describe_device
from napari_noise2detail.engine import threads as threads_module
from napari_noise2detail.engine.threads import AdaptiveThreads, Mode, check_threads, torch_threads


TWO, SPLIT, ONE = Mode(2), Mode(1, 2), Mode(1)


class FakeMachine:
    """A clock: each step costs ``cost[mode]`` seconds of it; and torch's thread setting."""

    def __init__(self, monkeypatch, cost):
        self.now = 0.0
        self.cost = dict(cost)
        self.threads = 2
        self.sets = 0
        monkeypatch.setattr(threads_module.time, "perf_counter", lambda: self.now)
        monkeypatch.setattr(threads_module.torch, "get_num_threads", lambda: self.threads)
        monkeypatch.setattr(threads_module.torch, "set_num_threads", self._set)

    def _set(self, n):
        self.threads = n
        self.sets += 1

    def run(self, tuner, steps):
        """Run ``steps`` steps; returns how many ran in each mode."""
        used = {}
        for _ in range(steps):
            with tuner.step() as mode:
                assert self.threads == mode.threads  # the step runs with the mode's threads
                self.now += self.cost[mode]
            used[mode] = used.get(mode, 0) + 1
        return used


def test_an_idle_machine_uses_all_threads(monkeypatch):
    machine = FakeMachine(monkeypatch, {TWO: 1.0, SPLIT: 1.2, ONE: 1.5})
    tuner = AdaptiveThreads(2)
    assert tuner.modes == [TWO, SPLIT, ONE]
    used = machine.run(tuner, 2000)
    assert tuner.best == TWO
    assert used[TWO] > 0.95 * 2000  # only the probes ran otherwise
    assert machine.now < 1.03 * 2000 * 1.0


def test_a_busy_machine_avoids_the_collapse(monkeypatch):
    machine = FakeMachine(monkeypatch, {TWO: 2.3, SPLIT: 0.8, ONE: 1.0})
    tuner = AdaptiveThreads(2)
    used = machine.run(tuner, 2000)
    assert tuner.best == SPLIT
    assert used.get(TWO, 0) < 0.02 * 2000
    # the time lost to probing the slow modes is a few percent of the run
    assert machine.now < 1.05 * 2000 * 0.8


def test_load_arriving_and_leaving_is_followed(monkeypatch):
    machine = FakeMachine(monkeypatch, {TWO: 1.0, SPLIT: 1.2, ONE: 1.5})
    tuner = AdaptiveThreads(2)
    machine.run(tuner, 3000)  # long idle: the runs between probes have grown long
    machine.cost = {TWO: 4.0, SPLIT: 1.3, ONE: 1.6}  # other programs start
    used = machine.run(tuner, 100)
    assert used.get(TWO, 0) < 30  # the slowdown ends the run early: no waiting for the next probe
    assert tuner.best == SPLIT
    machine.cost = {TWO: 1.0, SPLIT: 1.2, ONE: 1.5}  # and stop again: found at the next probe
    machine.run(tuner, 1000)
    assert tuner.best == TWO


def test_small_differences_do_not_flip_the_choice(monkeypatch):
    machine = FakeMachine(monkeypatch, {TWO: 0.95, SPLIT: 1.0, ONE: 1.2})
    tuner = AdaptiveThreads(2)
    assert tuner.current == SPLIT  # where it starts: the mode that never collapses
    machine.run(tuner, 1000)
    assert tuner.best == SPLIT  # 5% faster is within the margin: the safe choice stays


def test_many_cores_probe_half_of_them_too(monkeypatch):
    machine = FakeMachine(monkeypatch, {Mode(8): 3.0, Mode(4, 2): 1.5, Mode(4): 1.2, ONE: 2.0})
    tuner = AdaptiveThreads(8)
    assert tuner.modes == [Mode(8), Mode(4, 2), Mode(4), ONE]
    machine.run(tuner, 500)
    assert tuner.best == Mode(4)


def test_restart_keeps_the_choice_and_times_it_afresh(monkeypatch):
    machine = FakeMachine(monkeypatch, {TWO: 2.0, SPLIT: 3.0, ONE: 1.0})
    tuner = AdaptiveThreads(2)
    machine.run(tuner, 300)
    assert tuner.current == ONE
    tuner.restart()  # e.g. stage 3, whose steps are larger: four times as long
    machine.cost = {TWO: 8.0, SPLIT: 12.0, ONE: 4.0}
    used = machine.run(tuner, 200)
    assert used == {ONE: 200}  # no probing at the start of a loop, no false alarm of load
    machine.cost = {TWO: 1.0, SPLIT: 3.0, ONE: 3.0}  # were the ranking to flip, the next probe finds it
    machine.run(tuner, 2000)
    assert tuner.best == TWO


def test_steps_that_cannot_be_split_are_not(monkeypatch):
    machine = FakeMachine(monkeypatch, {TWO: 2.0, SPLIT: 0.5, ONE: 1.0})
    tuner = AdaptiveThreads(2)
    tuner.restart(split=False)  # one image per step (the paper preset)
    used = machine.run(tuner, 1000)
    assert SPLIT not in used and tuner.best == ONE


def test_one_thread_allowed_changes_nothing(monkeypatch):
    machine = FakeMachine(monkeypatch, {ONE: 1.0})
    machine.threads = 1
    tuner = AdaptiveThreads(1)
    assert not tuner.adaptive and tuner.modes == [ONE]
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

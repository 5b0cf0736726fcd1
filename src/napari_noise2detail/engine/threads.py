"""How many CPU threads torch uses, and choosing them for the fit while it runs.

A fitting step works on a few small crops: its parallel regions last tens of microseconds,
and every one waits for its slowest thread. On an idle machine two threads make the fit 1.5x
faster than one; once other processes keep the cores busy, a thread that the system has
switched out holds up every region and two threads become 2-5x *slower* than one (measured on
2 cores with one busy process per core: 99 s against 44 s for the sample). Whole-image
inference works on large tensors, where all threads stay ahead even on a busy machine (2048 x
2048: 18 s with 2 threads against 23 s with 1), so it always uses them all.

:class:`AdaptiveThreads` therefore times the fitting steps themselves and keeps the thread
count that is fastest *now*, probing the others again from time to time as the load changes.
It changes only the speed: a different thread count sums in a different order, so two runs
agree to rounding, and then to the usual run-to-run variation of a fit, not bit for bit. A
fixed count (``threads=N``) gives bit-identical reruns.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Iterator

import torch


def check_threads(threads: int | None) -> int | None:
    """``threads`` if it is None (adaptive) or a positive int; a clear error otherwise."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive whole number or None (adaptive), got {threads!r}")
    return threads


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with torch using ``threads`` CPU threads; the count before comes back after."""
    before = torch.get_num_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class AdaptiveThreads:
    """Picks torch's thread count for a loop of equal steps by timing the steps.

    Wrap each step in :meth:`step` (``with tuner.step(): ...``), and call :meth:`restart`
    before a loop of steps of another size (the next stage, the next plane). It times
    :data:`PROBE` steps at each candidate count (all threads, half of them, one), then runs
    with the fastest for a while and probes the others again. A run lasts longer the longer
    its count keeps winning, and the slower the losers were (probing a count that is 5x slower
    is costly: it must stay a small share, :data:`PROBE_SHARE`, of the time). A run ends early
    when its last :data:`WINDOW` steps take :data:`SLOWDOWN` times as long as when its count
    won: load has arrived. Timings are means, not medians: on a busy machine most steps with
    several threads are quick and a few wait for a switched-out thread for a long time, and
    those decide the total. A challenger must be :data:`MARGIN` faster to take over, so that
    noise in the timings does not flip the choice. With one candidate (one thread allowed) it
    does nothing.
    """

    #: Steps timed per candidate when probing, after :data:`SETTLE` untimed ones.
    PROBE = 10
    #: Steps after a change of thread count that are not timed (the threads start up).
    SETTLE = 2
    #: Steps run with the chosen count before the others are probed again, at first ...
    FIRST_RUN = 100
    #: ... and at most.
    LONGEST_RUN = 1600
    #: The share of the time that probing the losing counts may cost.
    PROBE_SHARE = 0.02
    #: How much faster a challenger must be to replace the chosen count.
    MARGIN = 0.1
    #: A run ends when its last :data:`WINDOW` steps are this much slower than when its count
    #: won.
    SLOWDOWN = 1.5
    WINDOW = 20

    def __init__(self, most: int) -> None:
        candidates = [most]
        if most >= 4:
            candidates.append(most // 2)
        if most > 1:
            candidates.append(1)
        self.candidates = candidates
        #: The count in use, and the one that won the last comparison. One thread is the safe
        #: choice (never a collapse): more threads must win by :data:`MARGIN` to be used.
        self.current = self.best = 1
        #: How often the count was changed (for tests and benchmarks).
        self.switches = 0
        self._run = self.FIRST_RUN
        self._times: dict[int, float] = {}  # seconds per step at each count, as last measured
        self._queue = [n for n in candidates if n != 1]
        self._start_block("probe", 1)

    @property
    def adaptive(self) -> bool:
        return len(self.candidates) > 1

    def restart(self) -> None:
        """A new loop, whose steps may cost more or less than the last one's: the chosen
        count is timed afresh, then runs; the others are probed when that run ends."""
        self._times = {}
        self._queue = []
        self._start_block("probe", self.best)

    @contextmanager
    def step(self) -> Iterator[None]:
        """Time the step run inside the block, with the thread count chosen for it."""
        if not self.adaptive:
            yield
            return
        if torch.get_num_threads() != self.current:
            torch.set_num_threads(self.current)
        began = time.perf_counter()
        yield
        self._record(time.perf_counter() - began)

    def _start_block(self, mode: str, threads: int) -> None:
        if threads != self.current:
            self.switches += 1
        self.current = threads
        self._mode = mode
        self._length = self.SETTLE + (self.PROBE if mode == "probe" else self._run)
        self._done = 0
        self._timed: list[float] = []

    def _record(self, seconds: float) -> None:
        self._done += 1
        if self._done > self.SETTLE:
            self._timed.append(seconds)
        if self._mode == "run" and len(self._timed) >= self.WINDOW and len(self._timed) % 5 == 0:
            recent = statistics.fmean(self._timed[-self.WINDOW:])
            if recent > self.SLOWDOWN * self._times[self.current]:
                self._done = self._length
        if self._done >= self._length:
            self._next_block()

    def _next_block(self) -> None:
        if self._timed:  # a run is judged by its latest steps: the load may have changed
            self._times[self.current] = statistics.fmean(self._timed[-self.WINDOW:])
        if self._mode == "run":  # probe the other counts against the chosen one's recent time
            self._queue = [n for n in self.candidates if n != self.current]
        if self._queue:
            self._start_block("probe", self._queue.pop(0))
            return
        times = self._times
        winner = min(times, key=times.__getitem__)
        if self.best in times and times[winner] > (1 - self.MARGIN) * times[self.best]:
            winner = self.best
        self._run = min(2 * self._run, self.LONGEST_RUN) if winner == self.best else self.FIRST_RUN
        # probing a much slower count costs more: probe it less often
        slowest = max(times.values()) / times[winner]
        cost = (self.SETTLE + self.PROBE) * (slowest - 1) / self.PROBE_SHARE
        self._run = int(min(max(self._run, cost), self.LONGEST_RUN))
        self.best = winner
        self._start_block("run", winner)

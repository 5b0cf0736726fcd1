"""How the CPU's threads are used, and choosing that for the fit while it runs.

A fitting step works on a few small crops: torch's parallel regions in it last tens of
microseconds, and every one waits for its slowest thread. On an idle 2-core machine two
threads make the fit 1.5x faster than one; once other processes keep the cores busy, a thread
that the system has switched out holds up every region, and two threads become 2-5x *slower*
than one (the sample: 105 s against 30 s). Splitting a step's crops between two workers,
each computing its share of the gradient with one thread, needs to wait only once per step:
on the busy machine it was the fastest (8.2 ms a step against 10.0 with one thread and 19.1
with two), when idle it is between the two (5.6 against 6.7 and 4.7). Whole-image inference
works on large tensors, where all threads stay ahead even on a busy machine (2048 x 2048:
18 s with 2 threads against 24 s with 1), so it always uses them all.

:class:`AdaptiveThreads` therefore times the fitting steps themselves and keeps the
:class:`Mode` that is fastest *now*, probing the others again from time to time as the load
changes. It changes only the speed: another mode sums in another order, so two runs agree to
rounding, and then to the usual run-to-run variation of a fit, not bit for bit. A fixed
count (``threads=N``) gives bit-identical reruns.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Mode:
    """How a fitting step uses the CPU: ``workers`` threads of Python each compute the gradient
    of their share of the crops, with ``threads`` torch threads each."""

    threads: int
    workers: int = 1


class AdaptiveThreads:
    """Picks the :class:`Mode` of a loop of equal steps by timing the steps.

    Wrap each step in :meth:`step` (``with tuner.step() as mode: ...``), and call
    :meth:`restart` before a loop of steps of another size (the next stage, the next plane).
    It times :data:`PROBE` steps in each candidate mode (all threads; the crops split between
    two workers; half the threads; one thread), then runs with the fastest for a while and
    probes the others again. A run lasts longer the longer its mode keeps winning, and the
    slower the losers were (probing a mode that is 5x slower is costly: it must stay a small
    share, :data:`PROBE_SHARE`, of the time). A run ends early when its last :data:`WINDOW`
    steps take :data:`SLOWDOWN` times as long as when its mode won: load has arrived. Timings
    are means, not medians: on a busy machine most steps with several threads are quick and a
    few wait for a switched-out thread for a long time, and those decide the total. It starts
    from the choice that never collapses (the split between workers, or one thread where a
    step cannot be split); another mode must be :data:`MARGIN` faster to take over, so that
    noise in the timings does not flip the choice. With one thread allowed it does nothing.
    """

    #: Steps timed per candidate when probing, after :data:`SETTLE` untimed ones.
    PROBE = 10
    #: Steps after a change of mode that are not timed (threads start up) ...
    SETTLE = 2
    #: ... and after its first use (oneDNN prepares its kernels for each thread count).
    FIRST_SETTLE = 6
    #: Steps run in the chosen mode before the others are probed again, at first ...
    FIRST_RUN = 100
    #: ... and at most.
    LONGEST_RUN = 1600
    #: The share of the time that probing the losing modes may cost.
    PROBE_SHARE = 0.02
    #: How much faster a challenger must be to replace the chosen mode.
    MARGIN = 0.1
    #: A run ends when its last :data:`WINDOW` steps are this much slower than when its mode won.
    SLOWDOWN = 1.5
    WINDOW = 20

    def __init__(self, most: int) -> None:
        modes = [Mode(most)]
        if most >= 2:
            modes.append(Mode(max(most // 2, 1), 2))
        if most >= 4:
            modes.append(Mode(most // 2))
        if most > 1:
            modes.append(Mode(1))
        self.modes = modes
        self._split = True
        #: The mode in use, and the one that won the last comparison.
        self.current = self.best = self.safe
        self._seen: set[Mode] = set()
        self._run = self.FIRST_RUN
        self._times: dict[Mode, float] = {}  # seconds per step in each mode, as last measured
        self._queue = [m for m in modes if m != self.best]
        self._start_block("probe", self.best)

    @property
    def adaptive(self) -> bool:
        return len(self.modes) > 1

    @property
    def candidates(self) -> list[Mode]:
        """The modes open to the current loop (splitting needs a batch of two crops or more)."""
        return [m for m in self.modes if self._split or m.workers == 1]

    @property
    def safe(self) -> Mode:
        """The mode that does not collapse under load: split, or one thread."""
        split = [m for m in self.candidates if m.workers > 1]
        return split[0] if split else self.modes[-1]

    def restart(self, split: bool = True) -> None:
        """A new loop, whose steps may cost more or less than the last one's: the chosen mode
        is timed afresh, then runs; the others are probed when that run ends. ``split``:
        whether its steps can be split between workers."""
        self._split = split
        if self.best not in self.candidates:
            self.best = self.safe
        self._times = {}
        self._queue = []
        self._start_block("probe", self.best)

    @contextmanager
    def step(self) -> Iterator[Mode]:
        """Time the step run inside the block, in the mode it yields."""
        if not self.adaptive:
            yield self.current
            return
        if torch.get_num_threads() != self.current.threads:
            torch.set_num_threads(self.current.threads)
        began = time.perf_counter()
        yield self.current
        self._record(time.perf_counter() - began)

    def _start_block(self, kind: str, mode: Mode) -> None:
        self.current = mode
        self._kind = kind
        self._settle = self.SETTLE if mode in self._seen else self.FIRST_SETTLE
        self._seen.add(mode)
        self._length = self._settle + (self.PROBE if kind == "probe" else self._run)
        self._done = 0
        self._timed: list[float] = []

    def _record(self, seconds: float) -> None:
        self._done += 1
        if self._done > self._settle:
            self._timed.append(seconds)
        if self._kind == "run" and len(self._timed) >= self.WINDOW and len(self._timed) % 5 == 0:
            recent = statistics.fmean(self._timed[-self.WINDOW:])
            if recent > self.SLOWDOWN * self._times[self.current]:
                self._done = self._length
        if self._done >= self._length:
            self._next_block()

    def _next_block(self) -> None:
        if self._timed:  # a run is judged by its latest steps: the load may have changed
            self._times[self.current] = statistics.fmean(self._timed[-self.WINDOW:])
        if self._kind == "run":  # probe the other modes against the chosen one's recent time
            self._queue = [m for m in self.candidates if m != self.current]
        if self._queue:
            self._start_block("probe", self._queue.pop(0))
            return
        times = self._times
        winner = min(times, key=times.__getitem__)
        if self.best in times and times[winner] > (1 - self.MARGIN) * times[self.best]:
            winner = self.best
        self._run = min(2 * self._run, self.LONGEST_RUN) if winner == self.best else self.FIRST_RUN
        # probing a much slower mode costs more: probe it less often
        slowest = max(times.values()) / times[winner]
        cost = (self.SETTLE + self.PROBE) * (slowest - 1) / self.PROBE_SHARE
        self._run = int(min(max(self._run, cost), self.LONGEST_RUN))
        self.best = winner
        self._start_block("run", winner)


def fitting_threads(threads: int | None, device: torch.device) -> tuple[int, AdaptiveThreads | None]:
    """The torch threads of a run (``threads``, or all) and, on the CPU with no count asked
    for, the tuner that adapts the fitting steps' threads to the load (inference uses them all)."""
    most = threads or torch.get_num_threads()
    return most, AdaptiveThreads(most) if threads is None and device.type == "cpu" else None

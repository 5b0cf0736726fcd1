"""The worker wiring both dock widgets share: a generator of progress events run in napari's
background thread, shown in the Activity panel, cancellable there and from the dock, and
silent once the dock has been closed.

The generator (the engine's, the batch's) does the work and knows nothing of Qt; every event
and the outcome reach the widget in the GUI thread through the callbacks given to
:meth:`Runner.start`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Sequence

from napari.qt.threading import GeneratorWorker, create_worker

from .activity import Activity, Level


#: The GUI hears from a run at most this often (seconds), in batches of events: redrawing the
#: window for every report of a fit (about 14 a second) cost the sample 7 of its 21 s beside a
#: software-rendered display, and the fit's own threads the CPU they needed.
GUI_INTERVAL = 0.25


def _batched(run: Generator[Any, None, Any], interval: float) -> Generator[list[Any], None, Any]:
    """The run's events in lists, the first at once and then at most one list per
    ``interval``; returns what the run returns."""
    pending: list[Any] = []
    last = -float("inf")
    while True:
        try:
            event = next(run)
        except StopIteration as done:
            if pending:
                yield pending
            return done.value
        pending.append(event)
        now = time.monotonic()
        if now - last >= interval:
            yield pending
            pending, last = [], now


class Failed:
    """An exception from the worker thread, carried to the GUI thread as a plain value."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _guarded(run: Generator[Any, None, Any]) -> Generator[Any, None, Any]:
    # napari's worker turns some exceptions (RuntimeError, which includes torch's
    # out-of-memory) into warnings; catching here gives every failure the same path.
    try:
        return (yield from run)
    except Exception as error:  # noqa: BLE001 - reported to the user in the GUI thread
        return Failed(error)


@dataclass
class Handlers:
    """What the widget does with a run, each called in the GUI thread while the dock lives.

    ``event``: every event; ``result``: the generator's return value, or a :class:`Failed`;
    ``cancelled``: after a cancel; ``finished``: last, whatever happened. ``levels`` maps an
    event to the whole run's fraction and the nested bars of the Activity panel.
    """

    event: Callable[[Any], None]
    result: Callable[[Any], None]
    levels: Callable[[Any], tuple[float, Sequence[Level]]]
    cancelled: Callable[[], None] = field(default=lambda: None)
    finished: Callable[[], None] = field(default=lambda: None)


class Runner:
    """One run at a time for a dock widget. Closing the dock (destroying ``native``) cancels
    the run and stops every callback, since the controls they would touch are gone."""

    def __init__(self, native: Any) -> None:
        self.closed = False
        self._worker: GeneratorWorker | None = None
        native.destroyed.connect(self._on_destroyed)

    @property
    def running(self) -> bool:
        return self._worker is not None

    @property
    def worker(self) -> GeneratorWorker | None:
        return self._worker

    def start(self, run: Generator[Any, None, Any], title: str, handlers: Handlers) -> GeneratorWorker | None:
        """Run ``run`` in the background; None (and nothing started) while another runs."""
        if self.running or self.closed:
            return None
        activity = Activity(title, self.cancel)
        worker = create_worker(_guarded, _batched(run, GUI_INTERVAL), _start_thread=False)

        def on_events(events: list[Any]) -> None:
            if self.closed:
                return
            for event in events:
                handlers.event(event)
            fraction, levels = handlers.levels(events[-1])
            activity.show(fraction, levels)

        def on_result(value: Any) -> None:
            if not self.closed:
                handlers.result(value)

        def on_error(error: BaseException) -> None:  # what _guarded lets through
            on_result(Failed(error))

        def on_aborted() -> None:
            if not self.closed:
                handlers.cancelled()

        def on_finished() -> None:
            activity.close()
            try:
                run.close()  # after a cancel: ends the engine's run and frees its memory now
            except Exception as error:  # noqa: BLE001 - the dock must not stay "running"
                warnings.warn(f"cleaning up after the run failed: {error}", stacklevel=1)
            finally:
                self._worker = None
            if not self.closed:
                handlers.finished()

        worker.yielded.connect(on_events)
        worker.returned.connect(on_result)
        worker.errored.connect(on_error)
        worker.aborted.connect(on_aborted)
        worker.finished.connect(on_finished)
        self._worker = worker
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the run at its next event (within a few fitting steps)."""
        if self._worker is not None:
            self._worker.quit()

    def _on_destroyed(self, *_: object) -> None:
        self.closed = True
        self.cancel()

"""A run in napari's Activity panel: one cancellable bar for the whole run, and under it one
bar per level of detail (the plane of a stack, the stage being fitted), as napari's own
progress objects.

The levels are listed under the run's bar, marked "↳", rather than grouped with napari's
``nest_under``: in napari 0.9.2, closing grouped bars while the Activity panel is collapsed
crashes Qt (the group is deleted with bars still in it, and the panel then queries the
half-deleted widgets; seen as a segfault in ``QtActivityDialog.maybe_hide_progress_indicator``).

No Qt here: ``napari.utils.progress`` is what the Activity panel listens to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from napari.utils import cancelable_progress, progress

#: Resolution of the whole-run bar: tenths of a percent.
SCALE = 1000
#: What the panel writes right of each bar (napari shows what follows the last "|"): the time
#: left for the run, the steps or planes done for the levels, not tqdm's "1/1000 [00:02<...]".
RUN_FORMAT = "{desc}|{bar}| {remaining} left"
LEVEL_FORMAT = "{desc}|{bar}| {n_fmt}/{total_fmt}"


@dataclass(frozen=True)
class Level:
    """One nested bar: its text and how far it is (``done`` of ``total``)."""

    text: str
    done: int
    total: int


class _Cancelable(cancelable_progress):
    """napari's cancellable bar only notices a cancel between two items of an iterable; ours
    has none, so the Cancel button acts at once, through the callback."""

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


class Activity:
    """The bars of one run. ``show`` moves them; ``close`` removes them (always call it).

    napari's bars run ``QApplication.processEvents()`` whenever they change, so the end of the
    run (which closes them) can arrive in the middle of ``show``: the close then waits until
    ``show`` is done, as closing a bar that is being drawn crashes Qt.
    """

    def __init__(self, title: str, cancel: Callable[[], None]) -> None:
        self._top = _Cancelable(total=SCALE, desc=title, cancel_callback=cancel, bar_format=RUN_FORMAT)
        self._nested: list[progress] = []
        self._texts: list[str] = []
        self._busy = False
        self._closing = False
        self._closed = False

    def show(self, fraction: float, levels: Sequence[Level] = ()) -> None:
        """The whole run at ``fraction`` (0..1), with a bar per level (added as needed). The
        panel redraws itself on every update: the runner calls this a few times a second, not
        for every event (``worker.GUI_INTERVAL``)."""
        if self._busy or self._closed:
            return
        self._busy = True
        try:
            self._show(fraction, levels)
        finally:
            self._busy = False
            if self._closing:
                self.close()

    def _show(self, fraction: float, levels: Sequence[Level]) -> None:
        _move(self._top, round(fraction * SCALE), SCALE)
        for index, level in enumerate(levels):
            text = f"\u21b3 {level.text}"
            if index == len(self._nested):
                self._nested.append(progress(total=max(level.total, 1), desc=text, bar_format=LEVEL_FORMAT))
                self._texts.append(text)
            bar = self._nested[index]
            if self._texts[index] != text:
                bar.set_description(text)
                self._texts[index] = text
            _move(bar, level.done, max(level.total, 1))

    def close(self) -> None:
        if self._busy:
            self._closing = True
            return
        if self._closed:
            return
        self._closed = True
        for bar in reversed(self._nested):
            bar.close()
        self._nested.clear()
        self._texts.clear()
        self._top.close()


def _move(bar: progress, done: int, total: int) -> None:
    if bar.total != total:
        bar.total = total
    done = min(max(done, 0), total)
    if done != bar.n:
        bar.update(done - bar.n)

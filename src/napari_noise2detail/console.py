"""Progress on the command line: a live bar on a terminal, a line now and then in a log file,
and other libraries' log lines kept out of the way while it runs.

A bar redraws itself with carriage returns, which a log file (``> run.log 2>&1``, a cluster
job's output) keeps as one endless line; there, :class:`ProgressDisplay` prints a plain line
when the item changes and otherwise every :data:`EVERY_SECONDS`. Warnings that libraries log
while reading (tifffile's "invalid offset to first page", say) would be printed into the
middle of the bar: during a run they are dropped, unless they are errors, which are written
on lines of their own. Failures that matter are reported by the batch itself.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

#: In a log file, a progress line at least this often (and whenever the item changes).
EVERY_SECONDS = 30.0
#: Loggers whose records are always shown (ours); others only from ERROR up.
OURS = "napari_noise2detail"


class _Quiet(logging.Handler):
    """Shows our records and other libraries' errors through the display; drops the rest."""

    def __init__(self, display: ProgressDisplay) -> None:
        super().__init__()
        self.display = display
        self.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.name.split(".")[0] == OURS:
            self.display.note(self.format(record))


class ProgressDisplay:
    """``with ProgressDisplay("title") as bar: bar.show(fraction, text)``; ``bar.write(line)``
    prints a line of results above the bar (to stdout), the bar itself goes to ``stream``
    (stderr by default)."""

    def __init__(self, title: str = "", stream: IO[str] | None = None, every: float = EVERY_SECONDS) -> None:
        self.title = title
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: Any = None
        self._handler: _Quiet | None = None
        self._last_line = 0.0
        self._seen: set[str] = set()
        self._ended = False

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            from tqdm import tqdm

            prefix = "{desc}: " if self.title else ""
            self._bar = tqdm(total=100, desc=self.title or None, file=self.stream,
                             # our text says the time left (tqdm's {remaining} said it again), and
                             # tqdm puts ", " before the text itself
                             bar_format=prefix + "{percentage:3.0f}%|{bar}| {elapsed}{postfix}")
        root = logging.getLogger()
        if not root.handlers:  # logging left as it is where the caller set it up
            self._handler = _Quiet(self)
            root.addHandler(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def show(self, fraction: float, text: str, item: str = "") -> None:
        """The whole run at ``fraction`` (0..1), doing ``text``; in a log file, a line when a
        new ``item`` (an image of a batch) starts, every ``every`` seconds and at the end."""
        if self._bar is not None:
            self._bar.n = round(100 * fraction, 1)
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.refresh()
            return
        now = time.monotonic()
        end = fraction >= 1.0 and not self._ended
        if item not in self._seen or now - self._last_line >= self.every or end:
            title = f"{self.title}: " if self.title else ""
            print(f"{title}{100 * fraction:3.0f}% {text}", file=self.stream, flush=True)
            self._seen.add(item)
            self._last_line, self._ended = now, self._ended or end

    def write(self, line: str) -> None:
        """A line of results on stdout (above the bar on a terminal)."""
        self._line(line, sys.stdout)

    def note(self, line: str) -> None:
        """A line of its own on the display's stream (stderr): a library's error, say."""
        self._line(line, self.stream)

    def _line(self, line: str, stream: IO[str]) -> None:
        if self._bar is not None:
            self._bar.write(line, file=stream)
        else:
            print(line, file=stream, flush=True)

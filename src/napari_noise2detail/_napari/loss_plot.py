"""The fitting loss of a run, drawn as it comes: stage 1 and stage 3 one after the other on a
log scale, with the held-out error that stage 3's guard watches and the step where it stopped.

:class:`LossHistory` keeps the points (no Qt); :class:`LossPlot` draws them with QPainter.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from ..engine import Progress
from ..engine.fitting import GUARD_EVERY

#: Series colours: stage 1, stage 3, the held-out error, the guard's stop.
COLOURS = {"stage 1": "#4f9bd9", "stage 3": "#e8a33d", "held-out": "#7cc36e", "stop": "#e05c5c"}


class LossHistory:
    """Points of the fit being shown: ``(step, value)`` by series, steps counted from the start
    of stage 1 (stage 3 follows it). A stack fitted plane by plane shows its latest plane."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.series: dict[str, list[tuple[int, float]]] = {"stage 1": [], "stage 3": [], "held-out": []}
        self.stopped_at: int | None = None
        self.stage1_steps = 0
        self.title = ""
        self._plane: tuple[int | None, int, int, int] | None = None

    def add(self, event: Progress) -> bool:
        """Take in an event; whether the plot changed."""
        if event.stage not in (1, 3) or event.loss is None:
            return False
        if (event.channel, event.plane, event.planes, event.fitted_on) != self._plane:  # a fit of its own
            self.clear()
            self._plane = (event.channel, event.plane, event.planes, event.fitted_on)
            title = (f"{event.fitted_on} planes fitted together" if event.fitted_on > 1
                     else f"plane {event.plane + 1}/{event.planes}" if event.planes > 1 else "")
            self.title = ", ".join(filter(None, (None if event.channel is None else f"channel {event.channel}", title)))
        if event.stage == 1:
            self.stage1_steps = event.total
            self.series["stage 1"].append((event.step, event.loss))
            return True
        base = self.stage1_steps
        self.series["stage 3"].append((base + event.step, event.loss))
        check = event.held_out
        if check is not None:
            points = self.series["held-out"]
            if not points or points[-1][0] != base + check.step:
                points.append((base + check.step, check.error))
            if check.stopped:
                self.stopped_at = base + check.step
        return True

    @property
    def empty(self) -> bool:
        return not any(self.series.values())

    def describe(self) -> str:
        """One line under the plot."""
        if self.stopped_at is not None:
            return (f"The guard stopped stage 3 at step {self.stopped_at - self.stage1_steps}: its "
                    "held-out error had risen; the best state was kept.")
        if self.series["held-out"]:
            return "Stage 3 ran all its steps; its held-out error did not rise."
        return ""


class LossPlot(QWidget):
    """A small line plot of a :class:`LossHistory`; call :meth:`update` after adding points."""

    def __init__(self, history: LossHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.setFixedHeight(130)
        self.setMinimumWidth(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Fitting loss per step (log scale): stage 1, then stage 3, and the held-out "
                        f"error that stage 3's guard checks every {GUARD_EVERY} steps. A red line marks where "
                        "the guard stopped stage 3.")

    def paintEvent(self, _event: object) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().windowText().color()
        box = QRectF(self.rect()).adjusted(34, 16, -6, -16)
        painter.setPen(QPen(text, 1))
        painter.drawRect(box)
        history = self.history
        if history.empty:
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "loss: shown while fitting")
            return
        values = [v for points in history.series.values() for _, v in points if v > 0]
        steps = [s for points in history.series.values() for s, _ in points]
        if not values:
            return
        low, high = math.log10(min(values)), math.log10(max(values))
        if high - low < 1e-6:
            low, high = low - 0.5, high + 0.5
        last = max(max(steps), 1)

        def at(step: float, value: float) -> QPointF:
            x = box.left() + box.width() * step / last
            y = box.bottom() - box.height() * (math.log10(max(value, 1e-30)) - low) / (high - low)
            return QPointF(x, y)

        for name, points in history.series.items():
            if not points:
                continue
            pen = QPen(QColor(COLOURS[name]), 1.5)
            if name == "held-out":
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            line = [at(s, v) for s, v in points if v > 0]
            for a, b in zip(line, line[1:]):
                painter.drawLine(a, b)
            if name == "held-out" or len(line) == 1:  # few points, on top of stage 3: marked
                painter.setBrush(QColor(COLOURS[name]))
                for point in line:
                    painter.drawEllipse(point, 2.5, 2.5)
                painter.setBrush(Qt.BrushStyle.NoBrush)
        if history.stopped_at is not None:
            painter.setPen(QPen(QColor(COLOURS["stop"]), 1.5))
            x = at(history.stopped_at, 10**low).x()
            painter.drawLine(QPointF(x, box.top()), QPointF(x, box.bottom()))
        painter.setPen(QPen(text, 1))
        small = painter.font()
        small.setPointSizeF(max(small.pointSizeF() * 0.85, 6))
        painter.setFont(small)
        painter.drawText(QPointF(2, box.top() + 8), f"{10**high:.0e}")
        painter.drawText(QPointF(2, box.bottom()), f"{10**low:.0e}")
        if history.title:
            painter.drawText(QPointF(box.left(), self.height() - 3), history.title)
        painter.drawText(QRectF(box.left(), box.bottom(), box.width(), 16),
                         int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), f"step {last}")
        x = box.left()
        for name in history.series:
            painter.setPen(QPen(QColor(COLOURS[name]), 1))
            painter.drawText(QPointF(x, 12), name)
            x += painter.fontMetrics().horizontalAdvance(name) + 10

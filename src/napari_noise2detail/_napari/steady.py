"""A dock that keeps its width whatever its texts say: labels show whole lines, at most a fixed
number of them, and never ask for more width (text that does not fit ends in "…", and the full
text is in the tooltip), choices do not widen to their longest name, and the dock is wide
enough for napari's title of it. Nor does it grow taller than the window: its rows scroll
when the window is short (napari does not scroll docks, and a dock taller than the screen
pushes the window past the screen's bottom edge)."""

from __future__ import annotations

from typing import Any, Callable

from magicgui.widgets import Label
from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtGui import QFontMetrics
from qtpy.QtWidgets import QComboBox, QFrame, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

#: Room the dock's title bar takes beside the title: its close, hide and float buttons.
TITLE_BUTTONS = 110
#: The narrowest the dock gets, whatever its title.
MIN_WIDTH = 320
#: The shortest the dock gets before its rows scroll: a few rows.
MIN_HEIGHT = 120
ELLIPSIS = "\u2026"
#: Pixels of a label's width its lines leave free.
SPARE = 4


def wrap_lines(text: str, width: int, lines: int, advance: Callable[[str], int]) -> list[str]:
    """``text`` broken into at most ``lines`` lines no wider than ``width`` (as measured by
    ``advance``): at spaces, or inside a word too long for a line (a path); when it needs
    more, the last line ends in "…"."""
    words = text.split()
    wrapped: list[str] = []
    joins: list[str] = []  # what joins each line to the next in the text: a space, or nothing
    line = ""
    while words:
        candidate = f"{line} {words[0]}" if line else words[0]
        if advance(candidate) <= width:
            line = candidate
            words.pop(0)
        elif line:
            wrapped.append(line)
            joins.append(" ")
            line = ""
        else:  # one word wider than the line: as much of it as fits (one character at least)
            word = words[0]
            cut = max((n for n in range(1, len(word)) if advance(word[:n]) <= width), default=1)
            wrapped.append(word[:cut])
            joins.append("")
            words[0] = word[cut:]
    if line:
        wrapped.append(line)
    if len(wrapped) <= lines:
        return wrapped
    last = wrapped[lines - 1]
    for join, more in zip(joins[lines - 1:], wrapped[lines:]):
        last += join + more
    while last and advance(last + ELLIPSIS) > width:
        last = last[:-1]
    return [*wrapped[: lines - 1], last.rstrip() + ELLIPSIS]


class _Lines(QObject):
    """Keeps a label exactly ``lines`` lines high in the font and style it ends up with
    (napari's style sheet applies only once the dock is shown), and lays its text out again
    when its width, font or style changes."""

    def __init__(self, label: SteadyLabel, lines: int) -> None:
        super().__init__(label.native)
        self.label = label
        self.lines = lines
        self._height: int | None = None  # for the font and style the label has now
        label.native.installEventFilter(self)

    def fit(self, native: QLabel) -> None:
        # The height Qt gives that many lines, margins and padding included. Neither a sum of
        # the font's line spacings (Qt lays lines out taller under napari's style) nor a
        # height measured before the style applied is enough: the last line came out cut.
        if self._height is None:
            shown = native.text()
            native.setText("\n".join(["Xg"] * self.lines))
            self._height = native.sizeHint().height()
            native.setText(shown)
        if native.minimumHeight() != self._height or native.maximumHeight() != self._height:
            native.setFixedHeight(self._height)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind in (QEvent.Type.FontChange, QEvent.Type.Polish, QEvent.Type.StyleChange, QEvent.Type.Show):
            self._height = None
            self.label.relayout()
        elif kind == QEvent.Type.Resize:
            self.label.relayout()
        return False


class SteadyLabel(Label):
    """A magicgui Label that shows its text in at most ``lines`` whole lines of the width it is
    given, aligned left, and never asks for more width; text that does not fit ends in "…",
    and the tooltip holds the whole text (until another tooltip is set after the text).
    ``value`` is always the whole text. Unlike magicgui's Label, it emits ``changed`` with each
    new text, so that a status can be followed."""

    def __init__(self, lines: int = 1, **kwargs: Any) -> None:
        self._text = ""
        self._lines: _Lines | None = None
        super().__init__(**kwargs)
        native: QLabel = self.native
        native.setWordWrap(False)  # the lines are broken here, so that the last can be elided
        native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        native.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._lines = _Lines(self, lines)
        self.relayout()
        self.tooltip = self._text

    @property
    def value(self) -> str:
        return self._text

    @value.setter
    def value(self, text: str) -> None:
        self._text = str(text)
        self.relayout()
        self.tooltip = self._text
        self.changed.emit(self._text)

    @property
    def shown(self) -> str:
        """What the label shows now: the text in whole lines, perhaps ending in "…"."""
        return self.native.text()

    def relayout(self) -> None:
        native: QLabel = self.native
        if self._lines is None:
            native.setText(self._text)
            return
        self._lines.fit(native)
        # a few pixels to spare: napari's style pads labels, and a line measured to the last
        # pixel lost its last letter ("Denoise does, on" showed as "Denoise does, o")
        width = native.contentsRect().width() - SPARE
        if width < 20:  # not laid out yet: a resize will come
            native.setText(self._text)
            return
        metrics = QFontMetrics(native.font())
        native.setText("\n".join(wrap_lines(self._text, width, self._lines.lines, metrics.horizontalAdvance)))


def steady_combo(combo: Any, characters: int = 12) -> None:
    """A magicgui ComboBox that does not widen to its longest choice (a long layer name)."""
    native: QComboBox = combo.native
    native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    native.setMinimumContentsLength(characters)


class _Scroll(QScrollArea):
    """Asks for the full height of its rows (a plain scroll area asks for at most 24 lines),
    and settles for :data:`MIN_HEIGHT` with a scroll bar."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        rows = self.widget().sizeHint().expandedTo(self.widget().minimumSizeHint())
        return QSize(rows.width() + self.verticalScrollBar().sizeHint().width(), rows.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        rows = self.widget().minimumSizeHint()
        return QSize(rows.width() + self.verticalScrollBar().sizeHint().width(), min(rows.height(), MIN_HEIGHT))


class _LabelColumn(QObject):
    """Keeps the labels of a magicgui container's rows one width, the widest in the font the
    dock ends up with. magicgui measures them in the application's font, before napari's style
    applies; a label wider in napari's font ("Output folder") pushed its field out of line."""

    def __init__(self, container: Any) -> None:
        super().__init__(container.native)
        self.container = container
        container.native.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.Polish, QEvent.Type.StyleChange, QEvent.Type.Show):
            self.align()
        return False

    def align(self) -> None:
        rows = [row() for row in (getattr(widget, "_labeled_widget", lambda: None) for widget in self.container)]
        rows = [row for row in rows if row is not None]
        if rows:
            widest = max(row[0].native.sizeHint().width() for row in rows)  # row[0]: its label
            for row in rows:
                row.label_width = widest


def steady_dock(container: Any, title: str) -> QScrollArea:
    """Give a dock (a magicgui container) a fixed minimum width that fits napari's title bar
    of it and a column of labels of one width, and put its rows in a scroll area filling it
    (returned): its layout moves to a widget inside the scroll area, so everything laid out on
    it keeps its place."""
    widget = container.native
    _LabelColumn(container)
    needed = QFontMetrics(widget.font()).horizontalAdvance(title) + TITLE_BUTTONS
    rows = QWidget()
    rows.setLayout(widget.layout())  # Qt takes the layout (and its widgets) from ``widget``
    scroll = _Scroll()
    scroll.setWidget(rows)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    widget.setMinimumWidth(max(MIN_WIDTH, needed))
    return scroll

"""A dock that keeps its width whatever its texts say: labels wrap within a fixed number of
lines and never ask for more width (the full text is in the tooltip), choices do not widen to
their longest name, and the dock is wide enough for napari's title of it."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtGui import QFontMetrics
from magicgui.widgets import Label
from qtpy.QtWidgets import QComboBox, QLabel, QSizePolicy, QWidget

#: Room the dock's title bar takes beside the title: its close, hide and float buttons.
TITLE_BUTTONS = 110
#: The narrowest the dock gets, whatever its title.
MIN_WIDTH = 320


class _Lines(QObject):
    """Keeps a label ``lines`` lines high in the font it ends up with (napari's style sheet
    sets it only once the dock is shown)."""

    def __init__(self, native: QLabel, lines: int) -> None:
        super().__init__(native)
        self.lines = lines
        self.fit(native)
        native.installEventFilter(self)

    def fit(self, native: QLabel) -> None:
        native.setFixedHeight(QFontMetrics(native.font()).lineSpacing() * self.lines + 4)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.Polish, QEvent.Type.StyleChange):
            self.fit(watched)
        return False


class SteadyLabel(Label):
    """A magicgui Label that wraps its text within ``lines`` lines of the width it is given,
    aligned left, and never asks for more width; its tooltip holds the whole text (a path can
    be longer than a line) until another tooltip is set after the text."""

    def __init__(self, lines: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        native: QLabel = self.native
        native.setWordWrap(True)
        native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        native.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        _Lines(native, lines)
        self.tooltip = str(self.value)

    @property
    def value(self) -> str:
        return Label.value.fget(self)

    @value.setter
    def value(self, text: str) -> None:
        Label.value.fset(self, text)
        self.tooltip = str(text)


def steady_combo(combo: Any, characters: int = 12) -> None:
    """A magicgui ComboBox that does not widen to its longest choice (a long layer name)."""
    native: QComboBox = combo.native
    native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    native.setMinimumContentsLength(characters)


def steady_width(widget: QWidget, title: str) -> None:
    """Give the dock's content a fixed minimum width that fits napari's title bar of it."""
    needed = QFontMetrics(widget.font()).horizontalAdvance(title) + TITLE_BUTTONS
    widget.setMinimumWidth(max(MIN_WIDTH, needed))

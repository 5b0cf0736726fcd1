"""Comparing a source with its results side by side: napari's grid mode with only those layers
shown, each tile labelled with its layer's name, the view fitted to them; and back to the view
as it was. Adds no layer and changes no data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


def grid_of(viewer: Any) -> Any:
    """The viewer's grid settings (``viewer.canvas.grid`` since napari 0.9)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def camera_of(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9)."""
    return getattr(viewer, "scene", viewer).camera


#: How each tile's label is shown: on a box, so that it reads over any image.
LABEL = {"visible": True, "font_size": 10, "box": True, "position": "top_left"}
#: Label font sizes (points): napari's default, and the smallest still readable.
LARGEST, SMALLEST = 10, 6
#: Width of a character of napari's label font, in pixels per point of font size (measured:
#: "noisy nuclei [N2D detail]" is 217 px wide at 10 points), and the room the box takes.
CHAR_WIDTH, BOX_MARGIN = 0.9, 16


def label_size(names: Sequence[str], tile_width: float) -> int:
    """The font size at which the longest of ``names`` fits in a tile ``tile_width`` pixels
    wide, so that no label runs into the next tile (the smallest readable one at worst)."""
    return max(SMALLEST, min(LARGEST, _fitting_size(names, tile_width)))


def label_position(names: Sequence[str], tile_width: float) -> str:
    """Where the tiles' labels go: napari's top left, or top right where the longest name
    does not fit at the smallest size, so that the tile cuts off its start rather than its end
    (the stage: " [N2D smooth]")."""
    return "top_left" if _fitting_size(names, tile_width) >= SMALLEST else "top_right"


def _fitting_size(names: Sequence[str], tile_width: float) -> int:
    longest = max((len(name) for name in names), default=1)
    return int((tile_width - BOX_MARGIN) / (CHAR_WIDTH * longest))


def _fit_view(viewer: Any, layers: Sequence[Any]) -> None:
    """The view fitted to ``layers`` only, not to the hidden ones (which may be much larger, or
    elsewhere: the compared tiles came out small and off-centre); napari before 0.9 fits all."""
    try:
        viewer.reset_view(layers=list(layers))
    except TypeError:
        viewer.reset_view()


@dataclass
class _Saved:
    grid: dict[str, Any]
    # (layer, value) pairs: by the layer itself, as layers may be renamed meanwhile
    visible: list[tuple[Any, bool]]
    named: list[tuple[Any, dict[str, Any]]]
    camera: dict[str, Any]


class Comparison:
    """``layers`` side by side (in their layer-list order, left to right) until :meth:`end`."""

    def __init__(self, viewer: Any, layers: Sequence[Any]) -> None:
        self.viewer = viewer
        self.layers = list(layers)
        grid, camera = grid_of(viewer), camera_of(viewer)
        self._saved = _Saved(
            grid={"enabled": grid.enabled, "shape": grid.shape, "stride": grid.stride},
            visible=[(layer, layer.visible) for layer in viewer.layers],
            named=[(layer, {key: getattr(layer.name_overlay, key) for key in LABEL}) for layer in self.layers],
            camera={"center": camera.center, "zoom": camera.zoom, "angles": camera.angles},
        )
        shown = {id(layer) for layer in self.layers}
        for layer in viewer.layers:
            layer.visible = id(layer) in shown
        grid.stride = 1
        grid.shape = (1, len(self.layers))
        grid.enabled = True
        label = dict(LABEL)
        canvas = getattr(viewer, "canvas", None)
        if canvas is not None and hasattr(canvas, "viewbox_size"):  # (height, width) of a tile
            names, width = [layer.name for layer in self.layers], canvas.viewbox_size(viewer.layers)[1]
            label["font_size"], label["position"] = label_size(names, width), label_position(names, width)
        for layer in self.layers:
            for key, value in label.items():
                setattr(layer.name_overlay, key, value)
        _fit_view(viewer, self.layers)

    def drop(self, layer: Any) -> bool:
        """``layer`` was removed from the viewer: the grid closes up over the tiles left, so
        that none stays empty. False when fewer than two are left to compare."""
        if not any(shown is layer for shown in self.layers):
            return True
        self.layers = [kept for kept in self.layers if kept is not layer]
        if len(self.layers) < 2:
            return False
        grid_of(self.viewer).shape = (1, len(self.layers))
        _fit_view(self.viewer, self.layers)
        return True

    def end(self) -> None:
        """The viewer as it was: grid, visible layers, labels and view (for the layers that are
        still there)."""
        saved, grid, camera = self._saved, grid_of(self.viewer), camera_of(self.viewer)
        present = {id(layer) for layer in self.viewer.layers}
        for layer, visible in saved.visible:
            if id(layer) in present:
                layer.visible = visible
        for layer, label in saved.named:
            if id(layer) in present:
                for key, value in label.items():
                    setattr(layer.name_overlay, key, value)
        grid.enabled = saved.grid["enabled"]
        grid.shape = saved.grid["shape"]
        grid.stride = saved.grid["stride"]
        for key, value in saved.camera.items():
            setattr(camera, key, value)

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


@dataclass
class _Saved:
    grid: dict[str, Any]
    # (layer, value) pairs: by the layer itself, as layers may be renamed meanwhile
    visible: list[tuple[Any, bool]]
    named: list[tuple[Any, bool]]
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
            named=[(layer, layer.name_overlay.visible) for layer in self.layers],
            camera={"center": camera.center, "zoom": camera.zoom, "angles": camera.angles},
        )
        shown = {id(layer) for layer in self.layers}
        for layer in viewer.layers:
            layer.visible = id(layer) in shown
        for layer in self.layers:
            layer.name_overlay.visible = True
        grid.stride = 1
        grid.shape = (1, len(self.layers))
        grid.enabled = True
        viewer.reset_view()

    def end(self) -> None:
        """The viewer as it was: grid, visible layers, labels and view (for the layers that are
        still there)."""
        saved, grid, camera = self._saved, grid_of(self.viewer), camera_of(self.viewer)
        present = {id(layer) for layer in self.viewer.layers}
        for layer, visible in saved.visible:
            if id(layer) in present:
                layer.visible = visible
        for layer, named in saved.named:
            if id(layer) in present:
                layer.name_overlay.visible = named
        grid.enabled = saved.grid["enabled"]
        grid.shape = saved.grid["shape"]
        grid.stride = saved.grid["stride"]
        for key, value in saved.camera.items():
            setattr(camera, key, value)

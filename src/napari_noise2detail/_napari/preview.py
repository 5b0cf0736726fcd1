"""The part of a layer a preview denoises: a drawn shape's bounding box, or what the canvas
shows, on the plane the viewer is at; in the layer's own pixels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .compare import camera_of
from .layers import shown_index

#: The smallest region worth a preview (N2D itself takes 8x8).
MIN_SIDE = 16


@dataclass(frozen=True)
class Region:
    """``rows`` x ``cols`` of the plane at ``plane`` (indices of the leading axes)."""

    plane: tuple[int, ...]
    rows: slice
    cols: slice
    what: str

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.stop - self.rows.start, self.cols.stop - self.cols.start

    @property
    def offset(self) -> tuple[int, ...]:
        """Where the region starts, in the layer's pixels, one value per (non-colour) axis."""
        return (*self.plane, self.rows.start, self.cols.start)

    def read(self, data: Any) -> np.ndarray:
        """The region of ``data`` (a lazy array reads only it), with leading axes of 1."""
        part = np.asarray(data[(*self.plane, self.rows, self.cols)])
        return part.reshape((1,) * len(self.plane) + part.shape)


def _plane_size(layer: Any) -> tuple[int, int]:
    shape = layer.data[0].shape if layer.multiscale else layer.data.shape
    return (shape[-3], shape[-2]) if layer.rgb else (shape[-2], shape[-1])


def _current_plane(viewer: Any, layer: Any) -> tuple[int, ...]:
    """The leading indices of the plane of ``layer`` the viewer is at."""
    lead = layer.ndim - 2
    if lead == 0:
        return ()
    if list(viewer.dims.displayed[-2:]) != list(range(viewer.dims.ndim - 2, viewer.dims.ndim)) or \
            viewer.dims.ndisplay != 2:
        raise ValueError("preview works in the 2D view of the image's last two axes; switch to it")
    return tuple(shown_index(viewer, layer, axis) for axis in range(lead))


def _box(layer: Any, corners: np.ndarray, what: str, plane: tuple[int, ...]) -> Region:
    """The region spanned by ``corners`` (layer pixels, last two axes), clipped to the plane."""
    height, width = _plane_size(layer)
    top, left = np.floor(corners.min(axis=0) + 0.5).astype(int)
    bottom, right = np.floor(corners.max(axis=0) + 0.5).astype(int)
    top, bottom = int(np.clip(top, 0, height)), int(np.clip(bottom, 0, height))
    left, right = int(np.clip(left, 0, width)), int(np.clip(right, 0, width))
    if bottom <= top or right <= left:
        raise ValueError(f"the {what} lies outside the image; draw it over the part to preview")
    if bottom - top < MIN_SIDE or right - left < MIN_SIDE:
        raise ValueError(f"the {what} covers {max(bottom - top, 0)}x{max(right - left, 0)} pixels of "
                         f"the image; a preview needs at least {MIN_SIDE}x{MIN_SIDE}")
    return Region(plane, slice(top, bottom), slice(left, right), what)


def shape_region(viewer: Any, layer: Any, shapes: Any) -> Region:
    """The bounding box of the selected shape of ``shapes`` (or of its last one)."""
    if len(shapes.data) == 0:
        raise ValueError(f"'{shapes.name}' has no shape; draw a rectangle in it first")
    chosen = sorted(shapes.selected_data) or [len(shapes.data) - 1]
    plane = _current_plane(viewer, layer)
    points = []
    for vertex in np.asarray(shapes.data[chosen[-1]], dtype=float):
        world = np.array(viewer.dims.point, dtype=float)
        where = np.asarray(shapes.data_to_world(vertex), dtype=float)
        world[len(world) - len(where):] = where
        points.append(np.asarray(layer.world_to_data(world), dtype=float)[-2:])
    return _box(layer, np.array(points), f"shape in '{shapes.name}'", plane)


def view_region(viewer: Any, layer: Any) -> Region:
    """What the canvas shows of ``layer`` (the whole plane until the canvas has a size), in its
    full-resolution pixels: from the camera, not ``layer.corner_pixels``, which a multiscale
    layer gives at the level drawn and widened to whole chunks (a preview of a pyramid then
    covered the wrong part of the image)."""
    plane = _current_plane(viewer, layer)
    size = getattr(getattr(viewer, "canvas", None), "size", None)  # (height, width) in screen pixels
    camera = camera_of(viewer)
    zoom = float(camera.zoom)
    if size is None or min(size) < 1 or zoom <= 0:
        height, width = _plane_size(layer)
        corners = np.array([[0, 0], [height, width]], dtype=float)
    else:
        centre = np.asarray(camera.center, dtype=float)[-2:]
        half = np.asarray(size, dtype=float) / zoom / 2
        points = []
        for dy, dx in ((-1, -1), (-1, 1), (1, -1), (1, 1)):  # the canvas's corners, in the world
            world = np.array(viewer.dims.point, dtype=float)
            world[-2:] = centre + (dy * half[0], dx * half[1])
            points.append(np.asarray(layer.world_to_data(world), dtype=float)[-2:])
        corners = np.array(points)
    return _box(layer, corners, "current view", plane)

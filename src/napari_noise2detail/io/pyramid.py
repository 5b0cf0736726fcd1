"""Lower resolutions of an OME-Zarr output, written as its full resolution is.

A plane larger than a screen is shown by napari (and other OME-Zarr viewers) from the level
that suits the zoom; with one level only, a 20000-pixel plane would be read whole to be seen.
Each block written at full resolution is averaged 2x2 into the next level, and so on, so that
the levels are complete when the last plane is.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

#: Planes with a side longer than this get lower levels, halved until both sides fit in it.
LEVEL_SIDE = 2048


def level_shapes(shape: Sequence[int]) -> list[tuple[int, ...]]:
    """The shape of every level of an image stored as ``shape`` (y and x last): itself, then
    halved (rounding up) while a side is longer than :data:`LEVEL_SIDE`."""
    shapes = [tuple(int(n) for n in shape)]
    while max(shapes[-1][-2:]) > LEVEL_SIDE:
        *lead, height, width = shapes[-1]
        shapes.append((*lead, -(-height // 2), -(-width // 2)))
    return shapes


def level_transforms(transforms: list[dict], level: int) -> list[dict]:
    """A level's coordinate transformations: its pixels ``2**level`` times as large in y and x,
    their centres shifted to the centre of the full-resolution pixels they average."""
    factor = 2**level
    scale = list(transforms[0]["scale"])
    found = [{"type": "scale", "scale": [*scale[:-2], *(s * factor for s in scale[-2:])]}]
    shift = list(transforms[1]["translation"]) if len(transforms) > 1 else [0.0] * len(scale)
    shift[-2:] = [t + (factor - 1) / 2 * s for t, s in zip(shift[-2:], scale[-2:])]
    if any(shift):
        found.append({"type": "translation", "translation": shift})
    return found


class Pyramid:
    """The levels of one output (zarr arrays, full resolution first), written through the
    first: each block written there is averaged into the next level, and so on."""

    def __init__(self, levels: Sequence[Any]) -> None:
        self.levels = list(levels)
        first = self.levels[0]
        self.shape, self.dtype, self.ndim = tuple(first.shape), first.dtype, first.ndim

    @property
    def store(self) -> Any:
        return self.levels[0].store

    def __getitem__(self, index: Any) -> Any:
        return self.levels[0][index]

    def __setitem__(self, index: Any, values: Any) -> None:
        """Write ``values`` at ``index`` (integers and slices, a slice over y and x), and what
        it changes in every lower level."""
        whole = _whole_index(index, self.shape)
        if not all(isinstance(i, slice) for i in whole[-2:]):
            raise IndexError(f"index {index} of a multiscale output: a block of rows and columns at a time")
        self.levels[0][index] = values
        index, values = whole, np.asarray(values)
        for finer, coarser in zip(self.levels, self.levels[1:]):
            (top, bottom), (left, right) = (_bounds(i) for i in index[-2:])
            height, width = finer.shape[-2:]
            aligned = top % 2 == 0 and left % 2 == 0 and (bottom % 2 == 0 or bottom == height) and \
                (right % 2 == 0 or right == width) and values.shape[-2:] == (bottom - top, right - left)
            if not aligned:  # widened to whole 2x2 blocks (broadcast values too), read back from the finer level
                top, left = top - top % 2, left - left % 2
                bottom, right = min(bottom + bottom % 2, height), min(right + right % 2, width)
                index = index[:-2] + (slice(top, bottom), slice(left, right))
                values = np.asarray(finer[index])
            values = _halved(values, coarser.dtype)
            index = index[:-2] + (slice(top // 2, top // 2 + values.shape[-2]),
                                  slice(left // 2, left // 2 + values.shape[-1]))
            coarser[index] = values


def _whole_index(index: Any, shape: Sequence[int]) -> tuple:
    """``index`` with an entry for every axis (integers kept, slices made explicit)."""
    index = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis for i in index):
        at = next(n for n, i in enumerate(index) if i is Ellipsis)
        index = index[:at] + (slice(None),) * (len(shape) - len(index) + 1) + index[at + 1:]
    index = tuple(index) + (slice(None),) * (len(shape) - len(index))
    return tuple(slice(*i.indices(n)[:2]) if isinstance(i, slice) else int(i) for i, n in zip(index, shape))


def _bounds(axis: slice) -> tuple[int, int]:
    return axis.start, axis.stop


def _halved(values: np.ndarray, dtype: Any) -> np.ndarray:
    """``values`` averaged over 2x2 blocks of their last two axes (an odd edge over what it has),
    in ``dtype`` (integers rounded)."""
    data = values.astype(np.float32)  # (enough for a mean of four, and half float64's memory)
    if data.shape[-2] % 2:
        data = np.concatenate([data, data[..., -1:, :]], axis=-2)
    if data.shape[-1] % 2:
        data = np.concatenate([data, data[..., :, -1:]], axis=-1)
    *lead, height, width = data.shape
    data = data.reshape(*lead, height // 2, 2, width // 2, 2).mean(axis=(-3, -1))
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        limits = np.iinfo(dtype)
        data = np.clip(np.round(data), limits.min, limits.max)
    return data.astype(dtype)

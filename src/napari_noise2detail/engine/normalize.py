"""Mapping microscopy intensities (any dtype, any range) to [0, 1] and back.

N2D clamps its estimates to [0, 1], so the whole data range must land inside it: a min-max
map loses nothing (a percentile map would clip real bright structures).
"""

from __future__ import annotations

import numpy as np


def unit_range(plane: np.ndarray, per_channel: bool = False) -> tuple:
    """(low, high) of a plane ``(H, W, C)``, as float64.

    ``per_channel``: each channel gets its own low but all share one width, so that every
    channel lands in [0, 1] and noise of equal variance stays equal (opponent colours).
    """
    if not per_channel:
        return float(plane.min()), float(plane.max())
    low = plane.min(axis=(0, 1)).astype(np.float64)
    width = float((plane.max(axis=(0, 1)) - low).max())
    return low, low + width


def to_unit(plane: np.ndarray, low, high) -> np.ndarray:
    """float32 copy of ``plane`` mapped so that low -> 0 and high -> 1 (high > low)."""
    return ((plane.astype(np.float64) - low) / (high - low)).astype(np.float32)


def from_unit(unit: np.ndarray, low, high) -> np.ndarray:
    """Inverse of :func:`to_unit`, as float64."""
    return unit.astype(np.float64) * (high - low) + low

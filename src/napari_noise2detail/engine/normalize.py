"""Mapping microscopy intensities (any dtype, any range) to [0, 1] and back.

N2D clamps its estimates to [0, 1], so the whole data range must land inside it: a min-max
map loses nothing (a percentile map would clip real bright structures).
"""

from __future__ import annotations

import numpy as np


def unit_range(plane: np.ndarray) -> tuple[float, float]:
    """(low, high) of a plane, as float64."""
    return float(plane.min()), float(plane.max())


def to_unit(plane: np.ndarray, low: float, high: float) -> np.ndarray:
    """float32 copy of ``plane`` mapped so that low -> 0 and high -> 1 (high > low)."""
    return ((plane.astype(np.float64) - low) / (high - low)).astype(np.float32)


def from_unit(unit: np.ndarray, low: float, high: float) -> np.ndarray:
    """Inverse of :func:`to_unit`, as float32."""
    return (unit.astype(np.float64) * (high - low) + low).astype(np.float32)

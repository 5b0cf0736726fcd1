"""Pictures of results for people: side-by-side panels as 8-bit images."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def display_range(image: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.8)) -> tuple[float, float]:
    """Contrast limits that ignore a few extreme pixels."""
    low, high = np.percentile(image, percentiles)
    return float(low), float(max(high, low + 1e-12))


def to_uint8(image: np.ndarray, low: float, high: float) -> np.ndarray:
    return (np.clip((image.astype(np.float64) - low) / (high - low), 0, 1) * 255).round().astype(np.uint8)


def side_by_side(panels: Sequence[np.ndarray], gap: int = 4, limits: tuple[float, float] | None = None) -> np.ndarray:
    """Panels of one 2D (or RGB) shape in a row, all shown with the same contrast limits.

    The limits come from the first panel (the noisy input) unless given, so that the panels
    can be compared by eye.
    """
    low, high = limits or display_range(panels[0])
    pictures = [to_uint8(p, low, high) for p in panels]
    height = pictures[0].shape[0]
    spacer = np.full((height, gap) + pictures[0].shape[2:], 255, np.uint8)
    row: list[np.ndarray] = []
    for picture in pictures:
        row += [picture, spacer]
    return np.concatenate(row[:-1], axis=1)

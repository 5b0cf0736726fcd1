"""Mapping microscopy intensities (any dtype, any range) to [0, 1] and back.

N2D clamps its estimates to [0, 1], so the data's range must land inside it: a min-max map
loses nothing (a percentile map would clip real bright structures). But a single hot camera
pixel at 65535 in an image of values 100-1000 would squeeze the signal into 1% of [0, 1],
where the fit fails (31 dB became 15 dB on the sample). So isolated outliers, pixels beyond
all but one of their 8 neighbours, do not set the range: it stops :data:`MARGIN` spans beyond
what the rest of the image reaches, and those pixels are clipped to it. Without such pixels
the map is exactly min-max.
"""

from __future__ import annotations

import numpy as np

#: How far beyond the outlier-free range (in units of its span) the map still reaches: far
#: enough to keep the peak of a sharp spot, whose neighbours are dimmer than it, unclipped.
MARGIN = 4.0
#: How many of the brightest (and darkest) pixels are checked for being isolated.
_CANDIDATES = 1e-2

_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def _inlier_extreme(image: np.ndarray, brightest: bool) -> float:
    """The highest (or lowest) value in a 2D image that at least two of its 8 neighbours
    reach: an isolated pixel, or a pair, beyond its surroundings does not count."""
    sign = 1.0 if brightest else -1.0
    flat = sign * image.ravel()
    k = int(min(flat.size, max(64, flat.size * _CANDIDATES)))
    candidates = np.argpartition(flat, -k)[-k:]
    ys, xs = np.unravel_index(candidates, image.shape)
    h, w = image.shape
    near = np.full((len(_NEIGHBOURS), k), -np.inf)
    for i, (dy, dx) in enumerate(_NEIGHBOURS):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        near[i, inside] = sign * image[ny[inside], nx[inside]]
    second = np.sort(near, axis=0)[-2]  # the second brightest neighbour
    reached = np.minimum(flat[candidates], second).max()
    # every candidate isolated (more outliers than candidates): the candidates' floor bounds it
    return sign * float(max(reached, flat[candidates].min()))


def unit_range(plane: np.ndarray, per_channel: bool = False) -> tuple:
    """(low, high) of a plane ``(H, W, C)``, as float64, with isolated outliers left out.

    ``per_channel``: each channel gets its own low but all share one width, so that every
    channel lands in [0, 1] and noise of equal variance stays equal (opponent colours).
    """
    plane = np.asarray(plane, dtype=np.float64)
    lows, highs = [], []
    for c in range(plane.shape[-1]):
        channel = plane[..., c]
        low, high = float(channel.min()), float(channel.max())
        inlier_low, inlier_high = _inlier_extreme(channel, False), _inlier_extreme(channel, True)
        span = inlier_high - inlier_low
        lows.append(max(low, inlier_low - MARGIN * span))
        highs.append(min(high, inlier_high + MARGIN * span))
    if not per_channel:
        return min(lows), max(highs)
    low = np.array(lows)
    return low, low + float((np.array(highs) - low).max())


def to_unit(plane: np.ndarray, low, high) -> np.ndarray:
    """float32 copy of ``plane`` mapped so that low -> 0 and high -> 1 (high > low), clipped
    to [0, 1] (only isolated outliers lie outside)."""
    return np.clip((plane.astype(np.float64) - low) / (high - low), 0, 1).astype(np.float32)


def from_unit(unit: np.ndarray, low, high) -> np.ndarray:
    """Inverse of :func:`to_unit`, as float64."""
    return unit.astype(np.float64) * (high - low) + low

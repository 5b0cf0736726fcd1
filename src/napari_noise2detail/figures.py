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


def side_by_side(
    panels: Sequence[np.ndarray], gap: int = 4, limits: tuple[float, float] | None = None,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Panels of one 2D (or RGB) shape in a row, all shown with the same contrast limits, each
    with its label above it when ``labels`` are given.

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
    image = np.concatenate(row[:-1], axis=1)
    if labels is None:
        return image
    return _caption(image, labels, pictures[0].shape[1], gap)


def _caption(image: np.ndarray, labels: Sequence[str], width: int, gap: int) -> np.ndarray:
    """A white band above ``image`` with each label centred over its panel."""
    from PIL import Image, ImageDraw, ImageFont

    size = max(11, min(18, width // 14))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a small bitmap font
        font = ImageFont.load_default()
    band = size + 10
    canvas = Image.new("RGB" if image.ndim == 3 else "L", (image.shape[1], image.shape[0] + band), "white")
    canvas.paste(Image.fromarray(image), (0, band))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(labels):
        centre = i * (width + gap) + width / 2
        draw.text((centre, band / 2), text, fill="black", font=font, anchor="mm")
    return np.asarray(canvas)

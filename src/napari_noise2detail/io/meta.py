"""The metadata an output inherits from its input: axes, pixel size, z spacing and their unit,
and a time-lapse's frame interval and its unit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

# Unit spellings met in ImageJ, OME and napari metadata, mapped to one spelling each.
_UNITS = {
    "µm": "µm", "μm": "µm", "um": "µm", "micron": "µm", "microns": "µm", "micrometer": "µm",
    "micrometre": "µm", "\\u00b5m": "µm", "nm": "nm", "nanometer": "nm", "nanometre": "nm",
    "mm": "mm", "millimeter": "mm", "millimetre": "mm", "cm": "cm", "centimeter": "cm",
    "centimetre": "cm", "m": "m", "meter": "m", "metre": "m", "inch": "inch", "in": "inch",
    "pixel": None, "pixels": None, "px": None, "": None,
}
# Micrometres per unit, to store resolution in standard TIFF tags (pixels per centimetre).
MICRONS = {"nm": 1e-3, "µm": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}


# Time units met in ImageJ ("sec"), OME-TIFF ("s") and OME-Zarr ("second"), one spelling each.
_TIME_UNITS = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s", "ms": "ms", "msec": "ms",
    "millisecond": "ms", "milliseconds": "ms", "µs": "µs", "μs": "µs", "us": "µs", "usec": "µs",
    "microsecond": "µs", "microseconds": "µs", "ns": "ns", "nsec": "ns", "nanosecond": "ns",
    "nanoseconds": "ns", "min": "min", "minute": "min", "minutes": "min", "h": "h", "hr": "h",
    "hour": "h", "hours": "h", "d": "d", "day": "d", "days": "d",
}


def canonical_time_unit(unit: object) -> str | None:
    """One spelling per time unit (``"sec"``, ``"second"`` -> ``"s"``); None for one not known
    (whose interval is then not carried over: unitless, it would be read as seconds)."""
    return _TIME_UNITS.get(str(unit).strip().lower()) if unit is not None else None


def frame_time(step: float, unit: object) -> tuple[float | None, str | None]:
    """A frame interval ``step`` in ``unit`` as an output keeps it: with its unit where that is
    known; without one where none was named (a time scale other than 1); not at all where the
    unit is not known (written without it, it would be read as seconds)."""
    known = canonical_time_unit(unit)
    if known:
        return float(step), known
    if unit is None and float(step) != 1.0:
        return float(step), None
    return None, None


def canonical_unit(unit: object) -> str | None:
    """One spelling per length unit (``"micron"``, ``"um"`` -> ``"µm"``); None for pixels."""
    if unit is None:
        return None
    text = str(unit).strip()
    return _UNITS.get(text.lower(), text)


@dataclass(frozen=True)
class ImageMeta:
    """What an output inherits from its input: axes, pixel size and their unit."""

    #: tifffile's axis letters, one per dimension (e.g. ``"ZYX"``; ``"YXS"`` for RGB), if known.
    axes: str | None = None
    #: (y, x) size of a pixel in ``unit``, if known.
    pixel_size: tuple[float, float] | None = None
    #: Distance between z planes in ``unit``, if known.
    z_spacing: float | None = None
    #: Length unit, e.g. ``"µm"``; None when the sizes are in unnamed units.
    unit: str | None = None
    #: Time between the frames of a time-lapse in ``time_unit``, if known.
    frame_interval: float | None = None
    #: ``"s"``, ``"ms"``, ``"µs"``, ``"ns"``, ``"min"``, ``"h"`` or ``"d"``; None when unknown.
    time_unit: str | None = None
    #: The names of the channels (one per plane of the ``C`` axis), if the file names them.
    channel_names: tuple[str, ...] | None = None
    #: How Fiji shows an ImageJ hyperstack: its ``mode`` (composite, colour, grayscale), the
    #: channels' ``LUTs`` (colours, as nested tuples), display ``Ranges`` and the planes'
    #: ``Labels``, as key-value pairs, kept for an ImageJ output of the same shape.
    display: tuple[tuple[str, object], ...] | None = None

    @property
    def rgb(self) -> bool:
        """Whether the last axis holds colour samples."""
        return bool(self.axes and self.axes.endswith("S"))


#: The axes of an image whose axes are not known, by its number of axes (colour aside): how
#: TIFF outputs (ImageJ slices) and OME-Zarr outputs (``zarr.default_axes``) both name them.
#: (Five axes they name apart: ImageJ's order is TZCYX, OME's TCZYX.)
PLAIN_AXES = {2: "YX", 3: "ZYX", 4: "TZYX"}


#: napari's own labels for axes nobody named ("-3", "-2", "-1"; "axis -3" in older napari).
_DEFAULT_LABEL = re.compile(r"(axis )?-?\d+")


def _label_letters(labels: Sequence[str]) -> str | None:
    """Axis letters from napari's axis labels: one-letter names as they are; where some are
    napari's defaults beside them (a user typed "c" beside one slider), those are named as a
    plain stack's are (Y and X last, then Z, then T); None where any is a word or a letter is
    named twice."""
    named = [str(label).upper() if len(str(label)) == 1 and str(label).isalpha() else None for label in labels]
    if any(n is None and not _DEFAULT_LABEL.fullmatch(str(label)) for n, label in zip(named, labels)):
        return None  # a word ("time"): not guessed at
    if all(n is None for n in named):
        return None  # nothing named
    # taken from the end, from the last axis back: X then Y for the last two, Z then T before them
    plane = [letter for letter in "YX" if letter not in named]
    lead = [letter for letter in "TZ" if letter not in named]
    for i in reversed(range(len(named))):
        if named[i] is None:
            pool = plane if i >= len(named) - 2 else lead
            if not pool:
                return None
            named[i] = pool.pop()
    letters = "".join(named)
    return letters if len(set(letters)) == len(letters) else None


def meta_from_scale(
    scale: Sequence[float] | None,
    units: Sequence[object] | None = None,
    axis_labels: Sequence[str] | None = None,
    rgb: bool = False,
) -> ImageMeta:
    """ImageMeta from napari-style ``scale``, ``units`` and ``axis_labels`` (one per non-RGB axis)."""
    unit = canonical_unit(units[-1]) if units else None
    pixel_size = None
    if scale is not None and len(scale) >= 2:
        y, x = (float(s) for s in scale[-2:])
        if unit is not None or (y, x) != (1.0, 1.0):
            pixel_size = (y, x)
    axes = None
    if axis_labels:
        letters = _label_letters(axis_labels)
        if letters is not None:
            axes = letters + ("S" if rgb else "")
    # Unnamed axes (napari's default labels) are written as a plain stack is (io.tiff, and
    # OME-Zarr's default axes: z y x, t z y x), so their spacings go to those names, not lost;
    # axes named in words ("time") are not guessed at: a time step is not a z spacing.
    unnamed = not axis_labels or all(_DEFAULT_LABEL.fullmatch(str(label)) for label in axis_labels)
    named = axes or (PLAIN_AXES.get(len(scale), "") if scale is not None and unnamed else "")
    z_spacing = frame_interval = time_unit = None
    if "Z" in named and scale is not None:
        z_spacing = float(scale[named.index("Z")])
    if "T" in named and scale is not None:
        frame_interval, time_unit = frame_time(scale[named.index("T")], units[named.index("T")] if units else None)
    return ImageMeta(axes=axes, pixel_size=pixel_size, z_spacing=z_spacing, unit=unit,
                     frame_interval=frame_interval, time_unit=time_unit)

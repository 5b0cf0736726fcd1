"""Reading images, and writing results atomically (never a truncated file under a final name)."""

from __future__ import annotations

import functools
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tifffile


def write_atomic(path: str | os.PathLike, write: Any) -> Path:
    """Call ``write(temp_path)`` on a temporary file beside ``path``, then rename it into place.

    The rename is atomic on one file system, so ``path`` is either absent, the old file, or the
    complete new one. An interrupted write removes its temporary; a killed process can leave
    only a hidden ``.<name>.<random>.partial`` file behind, never a truncated ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh random name, not mkstemp: mkstemp's file is private (0600) and the rename would
    # keep that, while the writer creating the file gives it the user's usual permissions.
    temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.partial"
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def write_tiff(path: str | os.PathLike, array: np.ndarray, **tiff_kwargs: Any) -> Path:
    """Write ``array`` as a TIFF at ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda temp: tifffile.imwrite(temp, array, **tiff_kwargs))


def write_png(path: str | os.PathLike, rgb_or_grey: np.ndarray) -> Path:
    """Write a uint8 picture as PNG atomically."""
    import imageio.v3 as iio

    return write_atomic(path, lambda temp: iio.imwrite(temp, rgb_or_grey, extension=".png"))


# --- Reading images, with the metadata worth carrying over to the outputs -------------------

#: TIFF files are read with tifffile; any other format goes through napari's readers (npe2).
TIFF_SUFFIXES = (".tif", ".tiff", ".lsm", ".btf")

# Unit spellings met in ImageJ, OME and napari metadata, mapped to one spelling each.
_UNITS = {
    "µm": "µm", "μm": "µm", "um": "µm", "micron": "µm", "microns": "µm", "micrometer": "µm",
    "micrometre": "µm", "\\u00b5m": "µm", "nm": "nm", "nanometer": "nm", "nanometre": "nm",
    "mm": "mm", "millimeter": "mm", "millimetre": "mm", "cm": "cm", "centimeter": "cm",
    "centimetre": "cm", "m": "m", "meter": "m", "metre": "m", "inch": "inch", "in": "inch",
    "pixel": None, "pixels": None, "px": None, "": None,
}
# Micrometres per unit, to store resolution in standard TIFF tags (pixels per centimetre).
_MICRONS = {"nm": 1e-3, "µm": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}


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

    @property
    def rgb(self) -> bool:
        """Whether the last axis holds colour samples."""
        return bool(self.axes and self.axes.endswith("S"))


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
        letters = "".join(str(label).upper() for label in axis_labels)
        # Only one-letter names that tifffile knows count as axes; napari's defaults don't.
        if len(letters) == len(axis_labels) and letters.isalpha() and len(set(letters)) == len(letters):
            axes = letters + ("S" if rgb else "")
    z_spacing = None
    if axes and "Z" in axes and scale is not None:
        z_spacing = float(scale[axes.index("Z")])
    return ImageMeta(axes=axes, pixel_size=pixel_size, z_spacing=z_spacing, unit=unit)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, ImageMeta]:
    """Read the first image of a file and its metadata; the file is only opened for reading.

    TIFF (including ImageJ and OME-TIFF) is read with tifffile; other formats with whatever napari
    reader is installed for them. Raises an exception whose message says what went wrong.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError("the file is empty (0 bytes)")
    if path.suffix.lower() in TIFF_SUFFIXES:
        return read_tiff(path)
    return _read_with_napari(path)


def read_tiff(path: str | os.PathLike) -> tuple[np.ndarray, ImageMeta]:
    """Read the first series of a TIFF with its axes, pixel size, z spacing and unit."""
    with tifffile.TiffFile(path) as tif:  # opens the file read-only ("rb")
        if not tif.series:
            raise ValueError("the TIFF holds no image (a damaged or truncated file?)")
        series = tif.series[0]
        data = series.asarray()
        axes = series.axes if len(series.axes) == data.ndim else None
        pixel_size, z_spacing, unit = None, None, None
        if tif.is_ome and tif.ome_metadata:
            pixel_size, z_spacing, unit = _ome_sizes(tif.ome_metadata)
        if pixel_size is None:
            pixel_size, z_spacing, unit = _tag_sizes(series.keyframe, tif.imagej_metadata)
            if z_spacing is None and tif.is_shaped and tif.shaped_metadata:
                z_spacing = tif.shaped_metadata[0].get("spacing")  # written by write_image
    return data, ImageMeta(axes=axes, pixel_size=pixel_size, z_spacing=z_spacing, unit=unit)


def _ome_sizes(xml: str) -> tuple[tuple[float, float] | None, float | None, str | None]:
    image = tifffile.xml2dict(xml).get("OME", {}).get("Image", {})
    pixels = (image[0] if isinstance(image, list) else image).get("Pixels", {})
    if "PhysicalSizeX" not in pixels:
        return None, None, None
    x = float(pixels["PhysicalSizeX"])
    y = float(pixels.get("PhysicalSizeY", x))
    z = pixels.get("PhysicalSizeZ")
    # OME's default unit is the micrometre; Y and Z in another unit than X are not carried over.
    unit = canonical_unit(pixels.get("PhysicalSizeXUnit", "µm"))
    return (y, x), (float(z) if z is not None else None), unit


def _tag_sizes(
    page: Any, imagej: dict | None
) -> tuple[tuple[float, float] | None, float | None, str | None]:
    """Pixel size from the X/YResolution tags, in the ImageJ unit or the ResolutionUnit tag's."""
    try:
        xres, yres = (float(r) for r in page.resolution)
    except (TypeError, ValueError, ZeroDivisionError):
        return None, None, None
    if not (xres > 0 and yres > 0):
        return None, None, None
    if imagej:
        unit = canonical_unit(imagej.get("unit"))
        spacing = imagej.get("spacing")
        if unit is None and (xres, yres) == (1.0, 1.0):
            return None, None, None
        return (1 / yres, 1 / xres), (float(spacing) if spacing else None), unit
    resunit = int(page.resolutionunit)
    if resunit == 1:  # NONE: sizes without a unit; (1, 1) is what writers put when they know nothing
        return (None if (xres, yres) == (1.0, 1.0) else (1 / yres, 1 / xres)), None, None
    if resunit == 2:  # INCH
        return (1 / yres, 1 / xres), None, "inch"
    per_unit = {3: 1e4, 4: 1e3, 5: 1.0}.get(resunit)  # CENTIMETER, MILLIMETER, MICROMETER in µm
    if per_unit is None:
        return None, None, None
    return (per_unit / yres, per_unit / xres), None, "µm"


@functools.lru_cache(maxsize=None)
def _discover_readers(manager: Any) -> None:
    """Find installed plugins once (napari has done it already; a bare script has not)."""
    manager.discover()


def _read_with_napari(path: Path) -> tuple[np.ndarray, ImageMeta]:
    """Read a non-TIFF file with an installed napari reader (through npe2, without a viewer)."""
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        import npe2
        from npe2 import io_utils
    except ImportError as err:  # pragma: no cover - npe2 is a dependency
        raise ValueError(f"cannot read {path.suffix} files: npe2 is not installed") from err
    _discover_readers(npe2.PluginManager.instance())
    try:
        layers = io_utils.read([str(path)], stack=False)
    except ValueError as err:
        if "No compatible readers" in str(err):
            raise ValueError(
                f"no napari reader is installed for {path.suffix or 'these'} files "
                "(install a reader plugin for the format, or convert to TIFF)"
            ) from None
        raise
    for layer in layers:
        data, kwargs, kind = (*layer, None, None)[:3]  # LayerData may omit kwargs and type
        if (kind or "image") != "image":
            continue
        kwargs = kwargs or {}
        if kwargs.get("multiscale") or (isinstance(data, list) and len(data) > 1):
            data = data[0]  # the full-resolution level of a pyramid
        arr = np.asarray(data)
        # napari's own rule when a reader does not say: a last axis of 3 or 4 is colour.
        rgb = kwargs.get("rgb")
        if rgb is None:
            rgb = arr.ndim >= 3 and arr.shape[-1] in (3, 4)
        meta = meta_from_scale(kwargs.get("scale"), kwargs.get("units"),
                               kwargs.get("axis_labels"), bool(rgb))
        if meta.axes is None and rgb and arr.ndim == 3:
            meta = replace(meta, axes="YXS")
        return arr, meta
    raise ValueError("the file holds no image")


# --- Writing outputs with their metadata ------------------------------------------------------

_IMAGEJ_ORDER = "TZCYXS"


def _imagej_axes(axes: str | None, ndim: int) -> str | None:
    """``axes`` if ImageJ can store it (letters of TZCYXS, in that order), else None."""
    if not axes or len(axes) != ndim:
        return None
    positions = [_IMAGEJ_ORDER.find(a) for a in axes]
    if -1 in positions or positions != sorted(positions) or len(set(axes)) != len(axes):
        return None
    return axes


def write_image(
    path: str | os.PathLike, array: np.ndarray, meta: ImageMeta | None = None, rgb: bool | None = None
) -> Path:
    """Write ``array`` as a TIFF atomically, with the axes, pixel size and unit of ``meta``.

    uint8, uint16 and float32 images are written as ImageJ TIFFs (which Fiji and napari read with
    their calibration); other dtypes, and axes that ImageJ cannot hold, as plain TIFFs with the
    resolution tags and tifffile's axes description. ``rgb`` (default: ``meta.rgb``) stores the
    last axis as colour samples.
    """
    meta = meta or ImageMeta()
    rgb = (meta.rgb if rgb is None else rgb) and array.ndim >= 3 and array.shape[-1] in (3, 4)
    kwargs: dict[str, Any] = {"photometric": "rgb" if rgb else "minisblack"}
    axes = meta.axes if meta.axes and len(meta.axes) == array.ndim else None
    ij_axes = _imagej_axes(axes, array.ndim)
    imagej = (
        array.dtype in (np.uint8, np.uint16, np.float32)
        and not (rgb and array.dtype != np.uint8)  # ImageJ's RGB is 8-bit only
        and (axes is None or ij_axes is not None)
        and array.ndim <= 6
    )
    if imagej:
        metadata: dict[str, Any] = {}
        if ij_axes:
            metadata["axes"] = ij_axes
        if meta.unit:
            # ImageJ's description is ASCII: "um" is ImageJ's own spelling of µm; other
            # characters take ImageJ's \uXXXX escape.
            unit = meta.unit.replace("µ", "u")
            metadata["unit"] = "".join(c if ord(c) < 128 else f"\\u{ord(c):04X}" for c in unit)
        if meta.z_spacing:
            metadata["spacing"] = meta.z_spacing
        kwargs.update(imagej=True, metadata=metadata)
        if meta.pixel_size:
            y, x = meta.pixel_size
            kwargs["resolution"] = (1 / x, 1 / y)
    else:
        # tifffile keeps axes (and here the z spacing) in a JSON description of its own.
        metadata = {"axes": axes} if axes else {}
        spacing = meta.z_spacing
        if meta.pixel_size:
            y, x = meta.pixel_size
            if meta.unit in _MICRONS:  # standard tags: pixels per centimetre; read back in µm
                per_cm = 1e4 / _MICRONS[meta.unit]
                spacing = spacing * _MICRONS[meta.unit] if spacing else None
                kwargs.update(resolution=(per_cm / x, per_cm / y), resolutionunit="CENTIMETER")
            elif meta.unit == "inch":
                kwargs.update(resolution=(1 / x, 1 / y), resolutionunit="INCH")
            else:
                kwargs.update(resolution=(1 / x, 1 / y), resolutionunit="NONE")
        if spacing:
            metadata["spacing"] = spacing
        kwargs["metadata"] = metadata
    return write_tiff(path, array, **kwargs)

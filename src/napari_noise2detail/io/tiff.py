"""TIFF files: read with their axes, pixel size and unit, written (atomically) with them."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .atomic import write_atomic
from .meta import MICRONS, PLAIN_AXES, ImageMeta, canonical_unit, frame_time

#: TIFF files are read with tifffile; any other format goes through napari's readers (npe2).
TIFF_SUFFIXES = (".tif", ".tiff", ".lsm", ".btf")


def write_tiff(path: str | os.PathLike, array: np.ndarray, **tiff_kwargs: Any) -> Path:
    """Write ``array`` as a TIFF at ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda temp: tifffile.imwrite(temp, array, **tiff_kwargs))


def read_tiff(path: str | os.PathLike) -> tuple[np.ndarray, ImageMeta]:
    """Read the first series of a TIFF with its axes, pixel size, z spacing and unit."""
    with tifffile.TiffFile(path) as tif:  # opens the file read-only ("rb")
        if not len(tif.pages):  # a header and nothing readable after it (tifffile only logs that)
            raise ValueError("the TIFF holds no image (a damaged or truncated file?)")
        # Not ImageJ files: their stacks over 4 GB chain their pages past 32-bit offsets
        # (tifffile reads them from the first page), and their header counts the planes
        # (_check_complete)
        if not tif.is_imagej and (broken := _broken_chain(tif)):
            raise ValueError(f"the TIFF is truncated or damaged: {broken}")
        if not tif.series:
            raise ValueError("the TIFF holds no image (a damaged or truncated file?)")
        if tif.is_ome and len(tif.series) > 1:  # positions, fields, wells: not cut to the first
            raise ValueError(f"the OME-TIFF holds {len(tif.series)} images (series), and one image per file is "
                             "read: convert it with bioformats2raw (each image of the OME-Zarr it makes is "
                             "denoised), or save each series from Fiji")
        series = tif.series[0]
        _check_complete(tif, series)
        data = series.asarray()
        axes = series.axes if len(series.axes) == data.ndim else None
        key = series.keyframe
        if axes and axes.endswith("SYX") and data.shape[-3] in (3, 4) and \
                key.photometric == tifffile.PHOTOMETRIC.RGB and key.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
            # RGB stored as one plane per colour. 8-bit: a colour image, read as interleaved RGB
            # is (colour last). Deeper: most often fluorescence channels that tifffile stored
            # so by default (any 3-plane array until 2026): channels, each denoised on its own.
            if data.dtype == np.uint8:
                data, axes = np.moveaxis(data, -3, -1), axes[:-3] + "YXS"
            elif "C" not in axes:
                axes = axes[:-3] + "CYX"
        if axes and axes.endswith("S") and data.shape[-1] not in (3, 4):
            # samples that are not RGB(A) colours (two channels stored contiguously, say):
            # read as channels before Y and X (ImageJ's order), each denoised as its own plane
            data, axes = np.moveaxis(data, -1, -3), (axes[:-3] + "C" + axes[-3:-1] if "C" not in axes else None)
        axes = _named(axes)
        # OME-XML parsed once (it can be megabytes): sizes, frame interval, channel names
        pixels = _ome_pixels(tif.ome_metadata) if tif.is_ome and tif.ome_metadata else None
        pixel_size, z_spacing, unit = _ome_sizes(pixels) if pixels else (None, None, None)
        if pixel_size is None:
            pixel_size, z_spacing, unit = _tag_sizes(key, tif.imagej_metadata)
            if z_spacing is None and tif.is_shaped and tif.shaped_metadata:
                z_spacing = tif.shaped_metadata[0].get("spacing")  # written by write_image
        interval, time_unit = _frame_interval(tif, pixels)
        names = _ome_channel_names(pixels, axes, data.shape) if pixels else None
        display = _display(tif.imagej_metadata) if tif.is_imagej else None
    return data, ImageMeta(axes=axes, pixel_size=pixel_size, z_spacing=z_spacing, unit=unit,
                           frame_interval=interval, time_unit=time_unit, channel_names=names, display=display)


def _named(axes: str | None) -> str | None:
    """``axes`` with the leading axes tifffile could not name (Q, or S for planes it took for
    samples) named as a stack's are when its axes are not known (:data:`PLAIN_AXES`: Z, then
    T), so that its outputs are ImageJ slices; as they were where Z and T do not suffice."""
    if not axes:
        return axes
    plane = "YXS" if axes.endswith("YXS") else "YX"
    lead = list(axes[: len(axes) - len(plane)])
    names = iter(name for name in "ZT" if name not in axes)
    for i in reversed(range(len(lead))):
        if lead[i] in "QS":
            name = next(names, None)
            if name is None:
                return axes
            lead[i] = name
    return "".join(lead) + axes[len(lead):]


#: ImageJ's display settings that an output keeps (see ``ImageMeta.display``).
_DISPLAY = ("mode", "LUTs", "Ranges", "Labels")


def _display(imagej: dict | None) -> tuple[tuple[str, object], ...] | None:
    """ImageJ's display settings, as hashable values (LUTs as nested tuples of ints)."""
    found = []
    for key in _DISPLAY:
        value = (imagej or {}).get(key)
        if key == "mode" and isinstance(value, str) and value != "grayscale":  # (tifffile writes that one always)
            found.append((key, value))
        elif key == "LUTs" and value is not None:
            found.append((key, tuple(tuple(tuple(int(v) for v in row) for row in np.asarray(lut)) for lut in value)))
        elif key == "Ranges" and value is not None:
            found.append((key, tuple(float(v) for v in value)))
        elif key == "Labels" and value is not None:
            found.append((key, tuple(str(v) for v in value)))
    return tuple(found) or None


def _display_for(meta: ImageMeta, axes: str, shape: tuple[int, ...]) -> dict[str, Any]:
    """``meta``'s display settings that fit an ImageJ output of ``axes`` and ``shape``: a LUT
    and a range per channel, a label per plane."""
    channels = shape[axes.index("C")] if "C" in axes else 1
    planes = int(np.prod([n for n, a in zip(shape, axes) if a not in "YXS"], dtype=np.int64))
    fits = {"mode": lambda v: True, "LUTs": lambda v: len(v) == channels,
            "Ranges": lambda v: len(v) == 2 * channels, "Labels": lambda v: len(v) == planes}
    found: dict[str, Any] = {}
    for key, value in meta.display or ():
        if key in fits and fits[key](value):
            found[key] = [np.array(lut, np.uint8) for lut in value] if key == "LUTs" else value
    return found


def _ome_pixels(xml: str) -> dict:
    """The first image's Pixels element of OME-XML, as a dict."""
    image = tifffile.xml2dict(xml).get("OME", {}).get("Image", {})
    return (image[0] if isinstance(image, list) else image).get("Pixels", {})


def _ome_channel_names(pixels: dict, axes: str | None, shape: tuple[int, ...]) -> tuple[str, ...] | None:
    """The channels' names in OME-XML's Pixels, where there is one for each plane of the C axis."""
    channels = pixels.get("Channel", [])
    channels = channels if isinstance(channels, list) else [channels]
    names = tuple(str(c.get("Name", "")) for c in channels if isinstance(c, dict))
    if not axes or "C" not in axes or len(names) != shape[axes.index("C")] or not all(names):
        return None
    return names


def _broken_chain(tif: tifffile.TiffFile) -> str | None:
    """Why the chain of pages breaks off (a truncated file), or None: the last page tifffile
    found must end it (a next-page offset of 0). Read from the file, not from tifffile's log,
    which may be silenced: tifffile reads the pages before a break (the first plane of a
    stack, say) with no more than a log line."""
    last, form, handle = tif.pages[len(tif.pages) - 1], tif.tiff, tif.filehandle  # (every page indexed)
    try:
        handle.seek(last.offset)
        count = struct.unpack(form.tagnoformat, handle.read(form.tagnosize))[0]
        handle.seek(last.offset + form.tagnosize + count * form.tagsize)
        following = struct.unpack(form.offsetformat, handle.read(form.offsetsize))[0]
    except (struct.error, OSError):
        return "its last page is cut short"
    if following == 0:
        return None
    return "a page lies past its end" if following >= handle.size else "its chain of pages breaks off"


def _check_complete(tif: tifffile.TiffFile, series: Any) -> None:
    """Refuse a stack cut short: tifffile reads what is left of a truncated ImageJ stack (its
    first plane, say) with no more than a log line, and that plane would be denoised as if it
    were the image."""
    images = (tif.imagej_metadata or {}).get("images")
    # Micro-Manager and OME files may count every position in their ImageJ header, and the
    # first series holds one: only a plain ImageJ file is held to it
    if images is None or tif.is_ome or tif.is_micromanager or tif.is_mmstack or tif.is_ndtiff:
        return
    found = int(np.prod([n for n, axis in zip(series.shape, series.axes) if axis not in "YXS"], dtype=np.int64))
    if found < int(images):
        raise ValueError(f"the TIFF is truncated or damaged: its ImageJ header counts {int(images)} planes, "
                         f"{found} can be read")


def _frame_interval(tif: tifffile.TiffFile, pixels: dict | None) -> tuple[float | None, str | None]:
    """A time-lapse's frame interval and its unit: OME's (``pixels``: its Pixels element),
    ImageJ's or write_image's own."""
    if pixels and "TimeIncrement" in pixels:
        return frame_time(float(pixels["TimeIncrement"]), pixels.get("TimeIncrementUnit", "s"))
    for found in (tif.imagej_metadata, tif.shaped_metadata[0] if tif.is_shaped and tif.shaped_metadata else None):
        if found and found.get("finterval"):
            return frame_time(float(found["finterval"]), found.get("tunit", "sec"))
    return None, None


def _ome_sizes(pixels: dict) -> tuple[tuple[float, float] | None, float | None, str | None]:
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
        spacing = float(imagej["spacing"]) if imagej.get("spacing") else None
        if unit is None and (xres, yres) == (1.0, 1.0):  # no pixel size; a z spacing (in pixels) may be
            return None, spacing, None
        return (1 / yres, 1 / xres), spacing, unit
    resunit = int(page.resolutionunit)
    if resunit == 1:  # NONE: sizes without a unit; (1, 1) is what writers put when they know nothing
        return (None if (xres, yres) == (1.0, 1.0) else (1 / yres, 1 / xres)), None, None
    if resunit == 2:  # INCH
        return (1 / yres, 1 / xres), None, "inch"
    per_unit = {3: 1e4, 4: 1e3, 5: 1.0}.get(resunit)  # CENTIMETER, MILLIMETER, MICROMETER in µm
    if per_unit is None:
        return None, None, None
    return (per_unit / yres, per_unit / xres), None, "µm"


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
    their calibration); axes that ImageJ cannot hold in their order (CZYX), named channels, and
    other dtypes, as OME-TIFF where OME can say them; anything else as a plain TIFF with the resolution tags and
    tifffile's axes description. ``rgb`` (default: ``meta.rgb``) stores the
    last axis as colour samples.
    """
    meta = meta or ImageMeta()
    rgb = (meta.rgb if rgb is None else rgb) and array.ndim >= 3 and array.shape[-1] in (3, 4)
    kwargs: dict[str, Any] = {"photometric": "rgb" if rgb else "minisblack"}
    axes = meta.axes if meta.axes and len(meta.axes) == array.ndim else None
    ij_axes = _imagej_axes(axes, array.ndim)
    # A stack whose axes are not known is written as a plain stack (ImageJ's slices, TZYX);
    # five axes are ImageJ's TZCYX there, and left unnamed elsewhere.
    plain = PLAIN_AXES.get(array.ndim - rgb)
    known = axes or (plain + ("S" if rgb else "") if plain else None)
    ome = _ome_metadata(meta, known, rgb, array.shape)
    imagej = (
        not (ome and "Channel" in ome)  # ImageJ's description cannot name channels; OME can
        and array.dtype in (np.uint8, np.uint16, np.float32)
        and not (rgb and array.dtype != np.uint8)  # ImageJ's RGB is 8-bit only
        and (axes is None or ij_axes is not None)
        and array.ndim - rgb <= 5  # TZCYX, and the colour samples
    )
    if imagej:
        metadata: dict[str, Any] = {}
        if not ij_axes:
            # a plain stack is slices to ImageJ; tifffile's own guess made 2 or 3 planes channels
            ij_axes = known or ("TZCYX" + ("S" if rgb else "") if array.ndim - rgb == 5 else None)
        if ij_axes:
            metadata["axes"] = ij_axes
        if meta.unit:
            # ImageJ's description is ASCII: "um" is ImageJ's own spelling of µm; other
            # characters take ImageJ's \uXXXX escape.
            unit = meta.unit.replace("µ", "u")
            metadata["unit"] = "".join(c if ord(c) < 128 else f"\\u{ord(c):04X}" for c in unit)
        if meta.z_spacing:
            metadata["spacing"] = meta.z_spacing
        metadata.update(_interval(meta, {"s": "sec", "ms": "msec"}))
        if ij_axes:
            metadata.update(_display_for(meta, ij_axes, array.shape))
        kwargs.update(imagej=True, metadata=metadata)
        if meta.pixel_size:
            y, x = meta.pixel_size
            kwargs["resolution"] = (1 / x, 1 / y)
    elif ome is not None:
        kwargs.update(ome=True, metadata=ome, **_resolution_tags(meta))  # the tags too, for readers without OME
    else:
        # tifffile keeps axes (and here the z spacing) in a JSON description of its own.
        metadata = {"axes": known} if known else {}
        kwargs.update(_resolution_tags(meta))
        spacing = meta.z_spacing
        if spacing and meta.pixel_size and meta.unit in MICRONS:  # read back in µm, as the tags are
            spacing = spacing * MICRONS[meta.unit]
        if spacing:
            metadata["spacing"] = spacing
        metadata.update(_interval(meta, {}))
        kwargs["metadata"] = metadata
    return write_tiff(path, array, **kwargs)


def _resolution_tags(meta: ImageMeta) -> dict[str, Any]:
    """The pixel size as TIFF's resolution tags: pixels per centimetre (read back in µm) for
    metric units, per inch, or with no unit."""
    if not meta.pixel_size:
        return {}
    y, x = meta.pixel_size
    if meta.unit in MICRONS:
        per_cm = 1e4 / MICRONS[meta.unit]
        return {"resolution": (per_cm / x, per_cm / y), "resolutionunit": "CENTIMETER"}
    return {"resolution": (1 / x, 1 / y), "resolutionunit": "INCH" if meta.unit == "inch" else "NONE"}


#: Units as OME-XML spells them (UnitsLength, UnitsTime).
_OME_LENGTH = {"nm": "nm", "µm": "µm", "mm": "mm", "cm": "cm", "m": "m", "inch": "in"}
_OME_TIME = {"s": "s", "ms": "ms", "µs": "µs", "ns": "ns", "min": "min", "h": "h", "d": "d"}


def _ome_metadata(meta: ImageMeta, axes: str | None, rgb: bool, shape: tuple[int, ...]) -> dict[str, Any] | None:
    """OME-TIFF metadata for axes that ImageJ cannot hold in their order (CZYX, say) or named
    channels, which Fiji (Bio-Formats) and napari then read with their calibration; None where
    OME cannot say it either (other axes, or a pixel size without a unit OME knows)."""
    plane = "YXS" if rgb else "YX"
    if (not axes or not axes.endswith(plane) or len(set(axes)) != len(axes)
            or not set(axes) <= set(_IMAGEJ_ORDER) or (not rgb and "S" in axes)):
        return None
    unit, time = _OME_LENGTH.get(meta.unit or ""), _OME_TIME.get(meta.time_unit or "")
    z_spacing = meta.z_spacing if "Z" in axes else None
    interval = meta.frame_interval if "T" in axes else None
    if ((meta.pixel_size or z_spacing) and unit is None) or (interval and time is None):
        return None  # OME would take them for µm and s: the plain description keeps them as they are
    found: dict[str, Any] = {"axes": axes}
    if meta.pixel_size:
        y, x = meta.pixel_size
        found.update(PhysicalSizeY=y, PhysicalSizeYUnit=unit, PhysicalSizeX=x, PhysicalSizeXUnit=unit)
    if z_spacing:
        found.update(PhysicalSizeZ=z_spacing, PhysicalSizeZUnit=unit)
    if interval:
        found.update(TimeIncrement=interval, TimeIncrementUnit=time)
    names = meta.channel_names
    if names and "C" in axes and len(names) == shape[axes.index("C")]:
        found["Channel"] = {"Name": list(names)}
    return found


def _interval(meta: ImageMeta, spelling: dict[str, str]) -> dict[str, object]:
    """The frame interval as ImageJ (and tifffile's description) write it: finterval, tunit."""
    if not meta.frame_interval:
        return {}
    found: dict[str, object] = {"finterval": meta.frame_interval}
    if meta.time_unit:  # ImageJ's description is ASCII
        found["tunit"] = spelling.get(meta.time_unit, meta.time_unit).replace("µ", "u")
    return found

"""Zarr and OME-Zarr: read lazily, a plane at a time; results written plane by plane into new
OME-Zarr images (zarr v3, OME-Zarr 0.5, through ``ome-zarr``), atomically: a store under its
final name is complete, a killed run leaves only a hidden ``.<name>.<random>.partial`` folder
(removed when a later run completes the output).
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .atomic import atomic_directory
from .pyramid import Pyramid, level_shapes, level_transforms
from .meta import PLAIN_AXES, ImageMeta, canonical_unit, frame_time

#: Planes are stored in chunks of at most this many pixels a side.
CHUNK = 2048
#: OME-Zarr's names for units, from ours.
_OME_UNITS = {"µm": "micrometer", "nm": "nanometer", "mm": "millimeter", "cm": "centimeter",
              "m": "meter", "inch": "inch"}
_OME_TIME_UNITS = {"s": "second", "ms": "millisecond", "µs": "microsecond", "ns": "nanosecond", "min": "minute",
                   "h": "hour", "d": "day"}
_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
#: How viewers (napari-ome-zarr, OMERO) show the channels of an RGB(A) image stored as OME-Zarr.
_COLOURS = [{"label": "red", "color": "FF0000"}, {"label": "green", "color": "00FF00"},
            {"label": "blue", "color": "0000FF"}, {"label": "alpha", "color": "FFFFFF", "active": False}]


def is_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zarr store (a folder named ``*.zarr`` or holding zarr metadata)."""
    path = Path(path)
    return path.is_dir() and (
        path.suffix.lower() == ".zarr" or any((path / name).exists() for name in ("zarr.json", ".zgroup", ".zarray"))
    )


def enclosing_store(path: str | os.PathLike) -> Path | None:
    """The outermost zarr store that ``path`` lies inside (an image of a store in
    bioformats2raw's layout, ``plate.ome.zarr/0``; of an HCS plate, ``plate.zarr/A/1/0``), if
    any: where its results must not be written."""
    outermost = None
    for folder in Path(os.path.abspath(path)).parents:  # ("a/0/../0": a/0)
        if is_zarr(folder):
            outermost = folder
    return outermost


def zarr_images(path: str | os.PathLike) -> list[Path]:
    """The images of a store of several: in bioformats2raw's layout (what bioformats2raw and
    NGFF-Converter make of a file of several series: one OME-Zarr image per series, in groups
    0, 1, ...), an HCS plate (each well's fields, ``A/1/0``...) or one of its wells, in their
    order; [] for any other store. (ome-zarr's reader makes a plate one stitched mosaic, whose
    wells would be fitted together.)"""
    import zarr

    path = Path(path).absolute()
    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # noqa: BLE001 - not a group, or not zarr at all
        return []
    ome = {**attrs, **(attrs.get("ome") or {})}
    if "bioformats2raw.layout" in ome:
        return sorted((p for p in path.iterdir() if p.name.isdigit() and is_zarr(p)), key=lambda p: int(p.name))
    if isinstance(ome.get("plate"), dict):
        wells = [well.get("path") for well in ome["plate"].get("wells", []) if isinstance(well, dict)]
        return [image for well in wells if well for image in zarr_images(path / well)]
    if isinstance(ome.get("well"), dict):
        fields = [field.get("path") for field in ome["well"].get("images", []) if isinstance(field, dict)]
        return [path / field for field in fields if field and is_zarr(path / field)]
    return []


@dataclass(frozen=True)
class ZarrImage:
    """A zarr image opened for reading: its lazy data and what the outputs inherit."""

    data: Any
    meta: ImageMeta
    #: OME-Zarr axes (name, type, unit) and the scale of the full-resolution level.
    axes: list[dict]
    scale: list[float]
    #: Its translation (where its first pixel lies, in the scale's units), if it has one.
    translation: list[float] | None = None
    #: The names and colours of its channels (OME-Zarr's ``omero`` channels: label, color).
    channels: list[dict] | None = None
    #: Its OME-Zarr version ("0.4": zarr v2, "0.5": zarr v3), which its results are written in.
    version: str = "0.5"


def read_zarr(path: str | os.PathLike) -> ZarrImage:
    """Open the full-resolution level of an OME-Zarr image, or a plain zarr array, lazily
    (nothing is read until a plane is asked for); only ever for reading."""
    import zarr

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no such zarr store: {path}")
    if images := zarr_images(path):
        raise ValueError(f"the store holds {len(images)} images (an HCS plate's fields, or bioformats2raw's "
                         f"series): give them one at a time, e.g. {images[0]}")
    ome = _read_ome(path)
    if ome is not None:
        return ome
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:  # noqa: BLE001 - zarr raises several kinds for a bad store
        raise ValueError(f"not a readable zarr store: {error}") from None
    if not hasattr(node, "shape"):  # a group: its first array, as napari-ome-zarr would
        arrays = sorted(name for name, _ in node.arrays())
        if not arrays:
            raise ValueError("the zarr store holds no image")
        node = node[arrays[0]]
    axes = default_axes(len(node.shape))
    # the axes' names are a guess (the store has none): outputs need some, the data's meta not
    meta = replace(meta_from_axes(axes, [1.0] * len(axes)), axes=None)
    return ZarrImage(node, meta, axes, [1.0] * len(axes))


def _read_ome(path: Path) -> ZarrImage | None:
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    # asked for the version it is in (zarr v2: 0.4), or ome-zarr logs a "version mismatch"
    fmt = FormatV04() if (path / ".zattrs").is_file() or (path / ".zgroup").is_file() else FormatV05()
    try:
        location = parse_url(str(path), fmt=fmt)
        nodes = list(Reader(location)()) if location is not None else []
    except Exception as error:  # noqa: BLE001 - not OME-Zarr: read as plain zarr, unless it says it is
        if _declares_multiscales(path):  # read plainly it would lose its axes and scale, and mix channels
            raise ValueError(f"its OME-Zarr metadata is not valid ({error}); read as a plain array it would "
                             "lose its axes and scale, and its channels would be fitted together. Fix the "
                             "metadata, or give the array inside it (its first level) to denoise it as a plain array") from None
        return None
    for node in nodes:
        axes = node.metadata.get("axes")
        if node.data and axes:
            axes = [a if isinstance(a, dict) else {"name": str(a)} for a in axes]
            transforms = (node.metadata.get("coordinateTransformations") or [[]])[0]
            scale, shift = _scale_and_shift(transforms, len(axes))
            # the multiscale's own transforms apply after the level's (OME-Zarr 0.4 and 0.5)
            whole = ((location.root_attrs.get("multiscales") or [{}])[0] or {}).get("coordinateTransformations")
            if whole:
                outer, moved = _scale_and_shift(whole, len(axes))
                if shift is not None or moved is not None:
                    zero = [0.0] * len(axes)
                    shift = [t * o + m for t, o, m in zip(shift or zero, outer, moved or zero)]
                scale = [s * o for s, o in zip(scale, outer)]
            version = "0.4" if str(getattr(location, "version", "")) == "0.4" else "0.5"
            return ZarrImage(node.data[0], meta_from_axes(axes, scale), axes, scale, shift,
                             _channels(location.root_attrs), version)
    return None


def _scale_and_shift(transforms: Sequence[Mapping[str, Any]], ndim: int) -> tuple[list[float], list[float] | None]:
    """The scale (ones where none is given) and translation (None) of OME-Zarr transforms."""
    scale = next((t["scale"] for t in transforms if t.get("type") == "scale"), [1.0] * ndim)
    shift = next((t["translation"] for t in transforms if t.get("type") == "translation"), None)
    return [float(v) for v in scale], [float(v) for v in shift] if shift else None


def _declares_multiscales(path: Path) -> bool:
    """Whether the store's group says it is OME-Zarr (``multiscales``, 0.4; or within ``ome``, 0.5)."""
    import zarr

    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # noqa: BLE001 - not a group
        return False
    return "multiscales" in attrs or "multiscales" in (attrs.get("ome") or {})


def _channels(attrs: Mapping[str, Any]) -> list[dict] | None:
    """Each channel's name, colour and display window from OME-Zarr's ``omero`` block, where
    it has them in a form OME-Zarr's writer takes. (The results are in the input's units, so
    its window shows them as the input was shown, and viewers need not scan the data for one.)"""
    channels = (attrs.get("omero") or {}).get("channels")
    if not isinstance(channels, list) or not all(isinstance(c, dict) for c in channels):
        return None
    kept = [{k: v for k, v in (("label", c.get("label")), ("color", _hex_colour(c.get("color"))),
                               ("window", _window(c.get("window")))) if isinstance(v, (str, dict))}
            for c in channels]
    return kept if any(kept) else None


def _window(window: object) -> dict | None:
    """A channel's display window (min, max, start, end: numbers), or None."""
    keys = ("min", "max", "start", "end")
    if not isinstance(window, dict) or not all(isinstance(window.get(k), (int, float)) for k in keys):
        return None
    return {k: window[k] for k in keys}


def _hex_colour(colour: object) -> str | None:
    """A channel colour as OME-Zarr's writer takes it (six hex digits, RRGGBB), from the
    spellings viewers write ("#0000FF"; RRGGBBAA); None for anything else, which is dropped:
    a colour is not worth failing an image for."""
    if not isinstance(colour, str):
        return None
    digits = colour.strip().lstrip("#")
    if len(digits) not in (6, 8) or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    return digits[:6]


def colour_last(image: ZarrImage) -> ZarrImage:
    """An OME-Zarr image read as RGB: its channel axis (the colours) moved last, lazily, as the
    engine and napari hold RGB; one without a channel axis as it is."""
    names = [str(a.get("name", "")).lower() for a in image.axes]
    if "c" not in names:
        return image
    import dask.array as da

    at = names.index("c")
    data = image.data if isinstance(image.data, da.Array) else da.from_array(image.data)
    def others(values: list) -> list:
        return [v for i, v in enumerate(values) if i != at]

    axes, scale = others(image.axes), others(image.scale)
    shift = others(image.translation) if image.translation else None
    return ZarrImage(da.moveaxis(data, at, -1), meta_from_axes(axes, scale), axes, scale, shift, version=image.version)


def default_axes(ndim: int, meta: ImageMeta | None = None) -> list[dict]:
    """OME-Zarr axes for an image: from ``meta``'s axis letters where they are OME's (t, c, z,
    y, x in that order), else z (3D), t z (4D) or t c z (5D) before y x."""
    letters = _letters(meta, ndim)
    if len(letters) != ndim or not _ome_order(letters):
        letters = {**PLAIN_AXES, 5: "TCZYX"}.get(ndim, "").lower()
    if not letters:
        raise ValueError(f"the image has {ndim} axes, and OME-Zarr, which the results of zarr images are "
                         "written as, holds 2 to 5 (t, c, z, y, x); merge or split some first")
    unit = _OME_UNITS.get(meta.unit) if meta and meta.unit else None
    time_unit = _OME_TIME_UNITS.get(meta.time_unit) if meta and meta.time_unit else None
    axes = []
    for name in letters:
        axis = {"name": name, "type": _TYPES[name]}
        if unit and axis["type"] == "space":
            axis["unit"] = unit
        if time_unit and axis["type"] == "time":
            axis["unit"] = time_unit
        axes.append(axis)
    return axes


def _letters(meta: ImageMeta | None, ndim: int) -> str:
    """``meta``'s axis letters, lower case, without the colour axis of RGB (``ndim``: the
    axes other than colour)."""
    letters = (meta.axes or "").lower() if meta else ""
    return letters[:-1] if len(letters) == ndim + 1 and letters.endswith("s") else letters


def _ome_order(letters: str) -> bool:
    order = "tczyx"
    return (set(letters) <= set(order) and letters.endswith("yx") and len(set(letters)) == len(letters)
            and [order.index(c) for c in letters] == sorted(order.index(c) for c in letters))


def scale_from_meta(axes: Sequence[dict], meta: ImageMeta) -> list[float]:
    """The OME-Zarr scale of each axis from ``meta``'s pixel size, z spacing and frame interval
    (1 where unknown). Where ``meta`` names the axes, each is found by its place there:
    axes that OME-Zarr cannot hold in their order (ZCYX, say) are given other names by
    :func:`default_axes`, but their spacing stays where the data has it."""
    scale = [1.0] * len(axes)
    names = [a["name"] for a in axes]
    letters = _letters(meta, len(axes))
    if len(letters) == len(axes):
        names = list(letters)
    if meta.pixel_size:
        y, x = (names.index(a) if a in names else len(axes) - 2 + i for i, a in enumerate("yx"))
        scale[y], scale[x] = (float(v) for v in meta.pixel_size)
    if meta.z_spacing and "z" in names:
        scale[names.index("z")] = float(meta.z_spacing)
    if meta.frame_interval and "t" in names:
        scale[names.index("t")] = float(meta.frame_interval)
    return scale


def meta_from_axes(axes: Sequence[dict], scale: Sequence[float]) -> ImageMeta:
    """What a TIFF output of this image inherits: axis letters, pixel size, z spacing, unit,
    frame interval."""
    names = [str(a.get("name", "")).lower() for a in axes]
    letters = "".join(n.upper() for n in names) if all(len(n) == 1 for n in names) else None
    unit = canonical_unit(next((a.get("unit") for a in axes if a.get("name") == "x"), None))
    pixel_size = None
    if "y" in names and "x" in names:
        y, x = float(scale[names.index("y")]), float(scale[names.index("x")])
        if unit is not None or (y, x) != (1.0, 1.0):
            pixel_size = (y, x)
    z = float(scale[names.index("z")]) if "z" in names else None
    interval = time_unit = None
    if "t" in names:
        interval, time_unit = frame_time(scale[names.index("t")], axes[names.index("t")].get("unit"))
    return ImageMeta(axes=letters, pixel_size=pixel_size, z_spacing=z, unit=unit, frame_interval=interval,
                     time_unit=time_unit)


def chunks_for(shape: Sequence[int], colour: int | None = None) -> tuple[int, ...]:
    """One chunk per plane (at most :data:`CHUNK` pixels a side): planes are written whole,
    with all their colours (the axis ``colour`` of an RGB image stored as OME-Zarr)."""
    chunks = [1] * (len(shape) - 2) + [min(n, CHUNK) for n in shape[-2:]]
    if colour is not None:
        chunks[colour] = int(shape[colour])
    return tuple(chunks)


def colour_as_channel(
    shape: Sequence[int], axes: Sequence[dict], scale: Sequence[float]
) -> tuple[tuple[int, ...], list[dict], list[float], int]:
    """How an RGB image (colour last, as napari and the engine hold it) is stored in OME-Zarr,
    whose axes must end in z, y, x: colour becomes a channel axis after t. ``axes`` and
    ``scale`` describe the axes other than colour. Returns the stored shape, axes and scale,
    and where the channel axis is."""
    names = [str(a.get("name", "")).lower() for a in axes]
    if "c" in names:
        raise ValueError("an RGB image that has a channel axis as well cannot be stored as OME-Zarr")
    at = 1 if names and names[0] == "t" else 0
    stored = tuple(shape[:at]) + (int(shape[-1]),) + tuple(shape[at:-1])
    return (stored, [*axes[:at], {"name": "c", "type": "channel"}, *axes[at:]],
            [*scale[:at], 1.0, *scale[at:]], at)


class ColourLast:
    """A zarr array stored with colour as an OME channel axis, written with colour last (the
    way the engine holds RGB; :func:`open_output` reads it back so). Indices are integers and
    slices over the axes other than colour; colour is always written whole."""

    def __init__(self, array: Any, at: int) -> None:
        self.array, self.at = array, at
        stored = tuple(array.shape)
        self.shape = stored[:at] + stored[at + 1:] + (stored[at],)
        self.dtype = array.dtype
        self.ndim = len(self.shape)

    @property
    def store(self) -> Any:
        return self.array.store

    def _stored(self, index: Any) -> tuple[tuple, int]:
        index = index if isinstance(index, tuple) else (index,)
        if index and index[0] is Ellipsis:
            index = index[1:]
        if len(index) > self.ndim - 1 or not all(isinstance(i, (int, np.integer, slice)) for i in index):
            raise IndexError(f"index {index} of a colour-last view: integers and slices over the axes before colour")
        index = tuple(index) + (slice(None),) * (self.ndim - 1 - len(index))
        # where colour lands among the axes the index keeps
        kept = sum(isinstance(i, slice) for i in index[: self.at])
        return index[: self.at] + (slice(None),) + index[self.at:], kept

    def __setitem__(self, index: Any, values: Any) -> None:
        stored, kept = self._stored(index)
        self.array[stored] = np.moveaxis(np.asarray(values), -1, kept)


def ome_order(meta: ImageMeta, ndim: int) -> tuple[int, ...] | None:
    """Where ``meta`` names an image's axes (``ndim`` of them, colour aside) in an order that
    OME-Zarr cannot hold (ZCYX: it wants t, c, z before y, x), the order of its leading axes
    that it can: stored so, and named and scaled truly. None where no reordering is needed or
    the axes are not all known."""
    letters = _letters(meta, ndim).upper()
    lead = letters[:-2]
    if (len(letters) != ndim or not letters.endswith("YX") or not set(lead) <= set("TCZ")
            or len(set(lead)) != len(lead)):
        return None
    order = tuple(sorted(range(len(lead)), key=lambda i: "TCZ".index(lead[i])))
    return order if order != tuple(range(len(lead))) else None


def in_ome_order(meta: ImageMeta, order: Sequence[int]) -> ImageMeta:
    """``meta`` with its axes named in the order :func:`ome_order` found."""
    letters = meta.axes or ""
    return replace(meta, axes="".join(letters[i] for i in order) + letters[len(order):])


#: Why a colour image whose axes need reordering is refused (OME-Zarr keeps colour as its
#: channel axis, which the reordering would have to move as well).
_COLOUR_REORDERED = ("a colour image whose axes OME-Zarr cannot hold in their order cannot be stored as "
                     "OME-Zarr; transpose it to t, z, y, x first")


def ome_layout(
    meta: ImageMeta, ndim: int, translation: Sequence[float] | None = None, rgb: bool = False,
) -> tuple[list[dict], list[float], list[float] | None, tuple[int, ...] | None]:
    """How an image described by ``meta`` (``ndim`` axes, colour aside) is stored as OME-Zarr:
    its axes, scale and translation as stored, and the order its leading axes are stored in
    (:func:`ome_order`; None: as they are). A colour image that would need reordering is refused."""
    order = ome_order(meta, ndim)
    if order is not None:
        if rgb:
            raise ValueError(_COLOUR_REORDERED)
        meta = in_ome_order(meta, order)
        if translation:
            translation = [translation[i] for i in order] + list(translation[len(order):])
    axes = default_axes(ndim, meta)
    return axes, scale_from_meta(axes, meta), list(translation) if translation else None, order


class LeadingOrder:
    """A zarr array whose leading axes are stored in another order (``order[j]``: the image
    axis stored j-th), written plane by plane in the image's order: indices are an integer
    per leading axis, then anything over the plane."""

    def __init__(self, array: Any, order: Sequence[int]) -> None:
        self.array, self.order = array, tuple(order)
        stored = tuple(array.shape)
        lead = len(self.order)
        self.shape = tuple(stored[self.order.index(i)] for i in range(lead)) + stored[lead:]
        self.dtype, self.ndim = array.dtype, len(self.shape)

    @property
    def store(self) -> Any:
        return self.array.store

    def __setitem__(self, index: Any, values: Any) -> None:
        index = index if isinstance(index, tuple) else (index,)
        lead = len(self.order)
        if len(index) < lead or not all(isinstance(i, (int, np.integer)) for i in index[:lead]):
            raise IndexError(f"index {index} of a reordered store: a plane at a time")
        self.array[tuple(index[i] for i in self.order) + tuple(index[lead:])] = values


@contextmanager
def ome_zarr_outputs(
    paths: Mapping[str, str | os.PathLike], shape: Sequence[int], axes: Sequence[dict],
    scale: Sequence[float], dtype: Any = np.float32, rgb: bool = False,
    translation: Sequence[float] | None = None, channels: Sequence[dict] | None = None,
    source: str | None = None, order: Sequence[int] | None = None, version: str = "0.5",
) -> Iterator[dict[str, Any]]:
    """New OME-Zarr images, one per kind (``{"detail": path, ...}``), as writable zarr arrays
    to fill inside the block. Each is built in a hidden folder and renamed to its path when the
    block ends without error; on an error or a cancel nothing appears under the paths.

    ``shape`` is the image's; with ``rgb`` its last axis is colour, which is stored as an OME
    channel axis (:func:`colour_as_channel`; ``axes`` and ``scale`` then name the other axes)
    and the arrays yielded are :class:`ColourLast` views, written colour-last all the same.
    ``translation`` (one per axis but colour): where the image lies, kept so that viewers place
    the results over their source. ``channels``: the names and colours of the image's channels
    (its ``c`` axis), kept for viewers (see :attr:`ZarrImage.channels`). ``source``: what the
    results are of (a layer's name), recorded so that they are not taken for another's
    (:func:`results_of`). ``order``: the leading axes stored in this order (:func:`ome_order`;
    ``axes``, ``scale`` and ``translation`` then describe them as stored), the arrays yielded
    being :class:`LeadingOrder` views, written in the image's order all the same. ``version``:
    OME-Zarr's, "0.5" (zarr v3) or "0.4" (zarr v2, which older viewers read: that of an input
    in it)."""
    import zarr
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    if version not in ("0.4", "0.5"):
        raise ValueError(f"OME-Zarr version {version!r} is not written; choose 0.4 or 0.5")
    old = version == "0.4"
    shape = tuple(int(n) for n in shape)
    if order is not None and rgb:
        raise ValueError(_COLOUR_REORDERED)
    if order is not None:
        shape = tuple(shape[i] for i in order) + shape[len(order):]
    if len(axes) != len(shape) - rgb:
        raise ValueError(f"{len(axes)} axes for an image of {len(shape) - rgb} dimensions"
                         + (" besides colour" if rgb else ""))
    stored, axes, scale, at = colour_as_channel(shape, axes, scale) if rgb else (shape, list(axes), list(scale), 0)
    transforms = [{"type": "scale", "scale": list(scale)}]
    if translation is not None and any(translation):
        shift = [float(t) for t in translation]
        transforms.append({"type": "translation", "translation": [*shift[:at], 0.0, *shift[at:]] if rgb else shift})
    with ExitStack() as stack:
        arrays = {}
        for kind, path in paths.items():
            temp = stack.enter_context(atomic_directory(path))
            root = zarr.open_group(str(temp), mode="w", zarr_format=2 if old else 3)
            # (OME-Zarr 0.4 keeps zarr v2's chunks in nested folders, "/", as 0.5 does)
            keys = {"chunk_key_encoding": {"name": "v2", "separator": "/"}} if old else {}
            levels = [root.create_array(str(k), shape=level, chunks=chunks_for(level, at if rgb else None),
                                        dtype=dtype, **keys) for k, level in enumerate(level_shapes(stored))]
            array = Pyramid(levels) if len(levels) > 1 else levels[0]  # (huge planes: lower levels too)
            arrays[kind] = ColourLast(array, at) if rgb else LeadingOrder(array, order) if order else array
            datasets = [{"path": str(k), "coordinateTransformations": level_transforms(transforms, k) if k else transforms}
                        for k in range(len(levels))]
            named = [dict(c) for c in _COLOURS[: shape[-1]]] if rgb else _channels_for(axes, stored, channels)
            extra = {"metadata": {"omero": {"channels": named}}} if named else {}
            write_multiscales_metadata(root, datasets=datasets, fmt=FormatV04() if old else FormatV05(), axes=axes,
                                       name=_image_name(path), **extra)
            if source is not None:
                root.attrs[_OURS] = {"source": source}
        yield arrays


_OURS = "napari-noise2detail"


def results_of(path: str | os.PathLike) -> str | None:
    """What the results in the OME-Zarr store at ``path`` are of, as :func:`ome_zarr_outputs`
    recorded it; None if it did not (or there is no such store)."""
    import zarr

    try:
        found = zarr.open_group(str(path), mode="r").attrs.get(_OURS)
    except Exception:  # noqa: BLE001 - no store, or not one of ours
        return None
    return str(found["source"]) if isinstance(found, dict) and "source" in found else None


def _channels_for(axes: Sequence[dict], shape: Sequence[int], channels: Sequence[dict] | None) -> list[dict] | None:
    """``channels`` where they match the image's ``c`` axis, one each; else None."""
    names = [a.get("name") for a in axes]
    if not channels or "c" not in names or shape[names.index("c")] != len(channels):
        return None
    return [dict(c) for c in channels]


def _image_name(path: str | os.PathLike) -> str:
    """The image's name in its metadata (which viewers show): the store's, less ``.ome.zarr``."""
    name = Path(path).name
    for suffix in (".ome.zarr", ".zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def open_output(path: str | os.PathLike, rgb: bool = False, order: Sequence[int] | None = None,
                level: int = 0) -> Any:
    """An array (the full resolution, or a lower ``level``) of an OME-Zarr image written by
    :func:`ome_zarr_outputs`, lazily; an RGB one colour-last, the way napari shows RGB; one
    stored in another ``order`` in the image's own."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    array = group[str(level)]
    if rgb:  # colour is the channel axis: moved last
        import dask.array as da

        at = [str(a.get("name", "")).lower() for a in _multiscales(group)["axes"]].index("c")
        return da.moveaxis(da.from_zarr(array), at, -1)
    if order is None:
        return array
    import dask.array as da

    back = [order.index(i) for i in range(len(order))]
    return da.from_zarr(array).transpose(back + list(range(len(order), array.ndim)))


def output_levels(path: str | os.PathLike, rgb: bool = False, order: Sequence[int] | None = None) -> list[Any]:
    """Every level of an output (see :func:`open_output`), the full resolution first: what a
    napari layer of a huge plane shows, a level for each zoom."""
    import zarr

    count = len(_multiscales(zarr.open_group(str(path), mode="r"))["datasets"])
    return [open_output(path, rgb, order, level) for level in range(count)]


def _multiscales(group: Any) -> dict:
    """The first multiscale image of an OME-Zarr group's metadata (0.5 under "ome", 0.4 not)."""
    attrs = dict(group.attrs)
    return (attrs.get("ome") or attrs)["multiscales"][0]

"""Zarr and OME-Zarr: read lazily, a plane at a time; results written plane by plane into new
OME-Zarr images (zarr v3, OME-Zarr 0.5, through ``ome-zarr``), atomically: a store under its
final name is complete, a killed run leaves only a hidden ``.<name>.<random>.partial`` folder.
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .atomic import atomic_directory
from .meta import ImageMeta, canonical_unit

#: Planes are stored in chunks of at most this many pixels a side.
CHUNK = 2048
#: OME-Zarr's names for units, from ours.
_OME_UNITS = {"µm": "micrometer", "nm": "nanometer", "mm": "millimeter", "cm": "centimeter",
              "m": "meter", "inch": "inch"}
_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def is_zarr(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zarr store (a folder named ``*.zarr`` or holding zarr metadata)."""
    path = Path(path)
    return path.is_dir() and (
        path.suffix.lower() == ".zarr" or any((path / name).exists() for name in ("zarr.json", ".zgroup", ".zarray"))
    )


@dataclass(frozen=True)
class ZarrImage:
    """A zarr image opened for reading: its lazy data and what the outputs inherit."""

    data: Any
    meta: ImageMeta
    #: OME-Zarr axes (name, type, unit) and the scale of the full-resolution level.
    axes: list[dict]
    scale: list[float]


def read_zarr(path: str | os.PathLike) -> ZarrImage:
    """Open the full-resolution level of an OME-Zarr image, or a plain zarr array, lazily
    (nothing is read until a plane is asked for); only ever for reading."""
    import zarr

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no such zarr store: {path}")
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
    return ZarrImage(node, meta_from_axes(axes, [1.0] * len(axes)), axes, [1.0] * len(axes))


def _read_ome(path: Path) -> ZarrImage | None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    try:
        location = parse_url(str(path))
        nodes = list(Reader(location)()) if location is not None else []
    except Exception:  # noqa: BLE001 - not OME-Zarr: read as plain zarr
        return None
    for node in nodes:
        axes = node.metadata.get("axes")
        if node.data and axes:
            axes = [a if isinstance(a, dict) else {"name": str(a)} for a in axes]
            transforms = (node.metadata.get("coordinateTransformations") or [[]])[0]
            scale = next((t["scale"] for t in transforms if t.get("type") == "scale"), [1.0] * len(axes))
            return ZarrImage(node.data[0], meta_from_axes(axes, scale), axes, [float(s) for s in scale])
    return None


def default_axes(ndim: int, meta: ImageMeta | None = None) -> list[dict]:
    """OME-Zarr axes for an image: from ``meta``'s axis letters where they are OME's (t, c, z,
    y, x in that order), else z (3D), t z (4D) or t c z (5D) before y x."""
    letters = (meta.axes or "").lower() if meta else ""
    if len(letters) != ndim or not _ome_order(letters):
        letters = {2: "yx", 3: "zyx", 4: "tzyx", 5: "tczyx"}.get(ndim, "")
    if not letters:
        raise ValueError(f"an OME-Zarr image has 2 to 5 axes; this one has {ndim}")
    unit = _OME_UNITS.get(meta.unit) if meta and meta.unit else None
    axes = []
    for name in letters:
        axis = {"name": name, "type": _TYPES[name]}
        if unit and axis["type"] == "space":
            axis["unit"] = unit
        axes.append(axis)
    return axes


def _ome_order(letters: str) -> bool:
    order = "tczyx"
    return (set(letters) <= set(order) and letters.endswith("yx") and len(set(letters)) == len(letters)
            and [order.index(c) for c in letters] == sorted(order.index(c) for c in letters))


def scale_from_meta(axes: Sequence[dict], meta: ImageMeta) -> list[float]:
    """The OME-Zarr scale of each axis from ``meta``'s pixel size and z spacing (1 where unknown)."""
    scale = [1.0] * len(axes)
    names = [a["name"] for a in axes]
    if meta.pixel_size:
        scale[names.index("y")], scale[names.index("x")] = (float(v) for v in meta.pixel_size)
    if meta.z_spacing and "z" in names:
        scale[names.index("z")] = float(meta.z_spacing)
    return scale


def meta_from_axes(axes: Sequence[dict], scale: Sequence[float]) -> ImageMeta:
    """What a TIFF output of this image inherits: axis letters, pixel size, z spacing, unit."""
    names = [str(a.get("name", "")).lower() for a in axes]
    letters = "".join(n.upper() for n in names) if all(len(n) == 1 for n in names) else None
    unit = canonical_unit(next((a.get("unit") for a in axes if a.get("name") == "x"), None))
    pixel_size = None
    if "y" in names and "x" in names:
        y, x = float(scale[names.index("y")]), float(scale[names.index("x")])
        if unit is not None or (y, x) != (1.0, 1.0):
            pixel_size = (y, x)
    z = float(scale[names.index("z")]) if "z" in names else None
    return ImageMeta(axes=letters, pixel_size=pixel_size, z_spacing=z, unit=unit)


def chunks_for(shape: Sequence[int], rgb: bool = False) -> tuple[int, ...]:
    """One chunk per plane (at most :data:`CHUNK` pixels a side): planes are written whole."""
    lead = len(shape) - (3 if rgb else 2)
    plane = tuple(min(n, CHUNK) for n in shape[lead:])
    return (1,) * lead + plane


@contextmanager
def ome_zarr_outputs(
    paths: Mapping[str, str | os.PathLike], shape: Sequence[int], axes: Sequence[dict],
    scale: Sequence[float], dtype: Any = np.float32,
) -> Iterator[dict[str, Any]]:
    """New OME-Zarr images, one per kind (``{"detail": path, ...}``), as writable zarr arrays
    to fill inside the block. Each is built in a hidden folder and renamed to its path when the
    block ends without error; on an error or a cancel nothing appears under the paths."""
    import zarr
    from ome_zarr.writer import write_multiscales_metadata

    shape = tuple(int(n) for n in shape)
    if len(axes) != len(shape):
        raise ValueError(f"{len(axes)} axes for an image of {len(shape)} dimensions")
    with ExitStack() as stack:
        arrays = {}
        for kind, path in paths.items():
            temp = stack.enter_context(atomic_directory(path))
            root = zarr.open_group(str(temp), mode="w", zarr_format=3)
            arrays[kind] = root.create_array("0", shape=shape, chunks=chunks_for(shape), dtype=dtype)
            datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}]
            write_multiscales_metadata(root, datasets=datasets, axes=list(axes), name=f"{Path(path).name}")
        yield arrays

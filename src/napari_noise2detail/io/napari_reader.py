"""Reading formats other than TIFF and zarr with whatever napari reader plugin is installed."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .meta import ImageMeta, meta_from_scale


@functools.lru_cache(maxsize=None)
def _discover_readers(manager: Any) -> None:
    """Find installed plugins once (napari has done it already; a bare script has not)."""
    manager.discover()


def read_with_napari(path: Path) -> tuple[np.ndarray, ImageMeta]:
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
        if kwargs.get("multiscale") or (isinstance(data, (list, tuple)) and data and hasattr(data[0], "shape")):
            data = data[0]  # the full-resolution level of a pyramid (of one level, too: OME-Zarr)
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

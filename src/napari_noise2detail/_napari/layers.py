"""Between napari layers and the engine's arrays: what to denoise, and where results go."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from napari.layers import Image, Layer
from napari.utils.transforms import CompositeAffine

from ..engine.planes import is_lazy
from ..io import ImageMeta, meta_from_scale

#: Suffixes of the result layers, by DenoiseResult attribute (and of the preview).
SUFFIXES = {"partial": "[N2D stage 1]", "smooth": "[N2D smooth]", "detail": "[N2D detail]",
            "preview": "[N2D preview]"}


def image_data(layer: Layer) -> tuple[Any, bool]:
    """The array to denoise and whether it is RGB; a clear error for what cannot be denoised.

    A lazy array (dask, zarr) is returned as it is, never read whole here."""
    if not isinstance(layer, Image):
        kind = type(layer).__name__
        raise TypeError(f"'{layer.name}' is a {kind} layer; Noise2Detail denoises image layers only")
    # A pyramid is denoised at full resolution, as batch denoising does.
    data = layer.data[0] if layer.multiscale else layer.data
    return (data if is_lazy(data) else np.asarray(data)), bool(layer.rgb)


def layer_meta(layer: Layer) -> tuple[ImageMeta, tuple[float, ...]]:
    """What an output of ``layer`` inherits: its axes, pixel size, spacings and units, and its
    place (translate) in the viewer."""
    meta = meta_from_scale(layer.scale, getattr(layer, "units", None), getattr(layer, "axis_labels", None),
                           rgb=bool(layer.rgb))
    return meta, tuple(float(t) for t in layer.translate)


def result_name(source: Layer, kind: str) -> str:
    return f"{source.name} {SUFFIXES[kind]}"


def placement(source: Image, offset: Sequence[int] | None = None) -> dict[str, Any]:
    """Everything that puts a layer exactly over ``source`` and shows it the same way; with
    ``offset`` (pixels of ``source``, one per axis), over the part of it starting there."""
    translate = np.asarray(source.translate, dtype=float)
    if offset is not None:
        linear = CompositeAffine(scale=source.scale, rotate=source.rotate, shear=source.shear,
                                 ndim=source.ndim).linear_matrix
        translate = translate + linear @ np.asarray(offset, dtype=float)
    kwargs: dict[str, Any] = {
        "scale": source.scale,
        "translate": translate,
        "rotate": source.rotate,
        "shear": source.shear,
        "affine": source.affine.affine_matrix,
        "units": source.units,
        "axis_labels": source.axis_labels,
        "blending": source.blending,
        "opacity": source.opacity,
        "rgb": source.rgb,
    }
    if not source.rgb:
        kwargs["colormap"] = source.colormap
    return kwargs


#: A lazy result's contrast limits come from the middle of its first plane, this many pixels
#: a side at most: never the whole result, whatever its size.
LIMITS_SAMPLE = 1024


def fitted_limits(data: Any) -> tuple[float, float]:
    """Contrast limits for a result: its range; for a lazy one (never read whole), the range of
    the middle of its first plane (napari gives a dask layer with a scale the limits [0, 1],
    which copied to the results showed them saturated)."""
    if is_lazy(data):
        h, w = data.shape[-2:]
        rows, cols = (slice(max(0, n // 2 - LIMITS_SAMPLE // 2), n // 2 + LIMITS_SAMPLE // 2) for n in (h, w))
        data = np.asarray(data[(0,) * (data.ndim - 2) + (rows, cols)])
    low, high = float(np.min(data)), float(np.max(data))
    return (low, high) if high > low else (low, low + 1.0)


def shown(data: Any, source: Image) -> Any:
    """What a result layer holds: the result, except that colour results of an 8-bit colour
    layer are rounded to 8 bits, as napari draws float colour thumbnails plain white."""
    if source.rgb and np.dtype(source.dtype) == np.uint8 and not is_lazy(data):
        return np.clip(np.round(data), 0, 255).astype(np.uint8)
    return data


def put_results(
    viewer: Any, source: Image, arrays: dict[str, Any], metadata: dict[str, Any] | None = None,
    offset: Sequence[int] | None = None,
) -> list[Image]:
    """Add (or refresh) one result layer per array, over ``source`` (over the part starting at
    ``offset``, for a preview); the last one ends on top, selected. ``metadata`` is added to
    each layer's metadata (how it was made). Lazy arrays (zarr) are shown lazily.

    A re-run on the same source replaces the data of its earlier result layers instead of
    piling up copies. All arrays exist before the first layer is touched, and layers added
    here are removed again if a later one fails, so nothing half-made stays in the list.
    """
    where = placement(source, offset)
    added: list[Image] = []
    touched: list[Image] = []
    try:
        for kind, result in arrays.items():
            name = result_name(source, kind)
            levels = isinstance(result, list)  # a multiscale result: its levels, the full resolution first
            data = [shown(level, source) for level in result] if levels else shown(result, source)
            # a preview lies over its source, and is drawn as it is (a patch of its own contrast
            # looked much brighter than the image around it)
            same = source.rgb or offset is not None
            limits = source.contrast_limits if same else fitted_limits(data[-1] if levels else data)
            existing = result_layer(viewer, source, kind)
            if isinstance(existing, Image) and existing.rgb == source.rgb and existing.multiscale == levels:
                existing.name = name  # (the source was renamed since)
                existing.data = data
                for key, value in where.items():
                    if key not in _DISPLAY:  # how the user chose to show it stays
                        setattr(existing, key, value)
                existing.contrast_limits = limits
                existing.visible = True  # refreshed: shown, on top
                layer = existing
            else:
                if existing is not None:
                    viewer.layers.remove(existing)
                layer = viewer.add_image(data, name=name, contrast_limits=limits, **where)
                added.append(layer)
            layer.metadata.update(metadata or {})
            layer.metadata[RESULT_OF] = [source.unique_id, kind]
            touched.append(layer)
    except Exception:
        for layer in added:
            if layer in viewer.layers:
                viewer.layers.remove(layer)
        raise
    top = touched[-1]
    viewer.layers.move(viewer.layers.index(top), len(viewer.layers))
    viewer.layers.selection.active = top
    return touched


#: A result layer's metadata key naming its source layer (napari's ``unique_id``) and its kind:
#: a re-run refreshes it even after the source was renamed.
RESULT_OF = "noise2detail_result_of"
#: What :func:`placement` copies that the user may change on a result; a refresh keeps it.
_DISPLAY = ("rgb", "blending", "opacity", "colormap")


def result_layer(viewer: Any, source: Image, kind: str) -> Any:
    """The layer holding ``source``'s ``kind`` result, if any: by its name, or else the one
    that says it is (named after what the source was called before)."""
    name = result_name(source, kind)
    if name in viewer.layers:
        return viewer.layers[name]
    mine = [source.unique_id, kind]
    return next((layer for layer in viewer.layers if list(layer.metadata.get(RESULT_OF, ())) == mine), None)


def layer_channel_axis(layer: Any) -> int | None:
    """Where a layer's axis labels name a channel axis ("c", one of the axes that index
    planes), if they do: read as the batch reads them (:func:`layer_meta`)."""
    at = (layer_meta(layer)[0].axes or "").find("C")
    return at if 0 <= at < layer.ndim - 2 else None


def shown_index(viewer: Any, layer: Any, axis: int) -> int:
    """The index along ``axis`` of ``layer`` of what the viewer shows (its dims slider)."""
    position = np.asarray(layer.world_to_data(viewer.dims.point))[axis]
    size = (layer.data[0].shape if layer.multiscale else layer.data.shape)[axis]
    return int(np.clip(round(float(position)), 0, size - 1))

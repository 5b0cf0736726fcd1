"""Between napari layers and the engine's arrays: what to denoise, and where results go."""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Layer

#: Suffixes of the result layers, by DenoiseResult attribute.
SUFFIXES = {"partial": "[N2D stage 1]", "smooth": "[N2D smooth]", "detail": "[N2D detail]"}


def image_data(layer: Layer) -> tuple[np.ndarray, bool]:
    """The array to denoise and whether it is RGB; a clear error for what cannot be denoised."""
    if not isinstance(layer, Image):
        kind = type(layer).__name__
        raise TypeError(f"'{layer.name}' is a {kind} layer; Noise2Detail denoises image layers only")
    # A pyramid is denoised at full resolution, as batch denoising does.
    data = layer.data[0] if layer.multiscale else layer.data
    return np.asarray(data), bool(layer.rgb)


def result_name(source: Layer, kind: str) -> str:
    return f"{source.name} {SUFFIXES[kind]}"


def placement(source: Image) -> dict[str, Any]:
    """Everything that puts a layer exactly over ``source`` and shows it the same way."""
    kwargs: dict[str, Any] = {
        "scale": source.scale,
        "translate": source.translate,
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


def fitted_limits(data: np.ndarray) -> tuple[float, float]:
    low, high = float(np.min(data)), float(np.max(data))
    return (low, high) if high > low else (low, low + 1.0)


def put_results(
    viewer: Any, source: Image, arrays: dict[str, np.ndarray], metadata: dict[str, Any] | None = None
) -> list[Image]:
    """Add (or refresh) one result layer per array, over ``source``; the last one ends on top,
    selected. ``metadata`` is added to each layer's metadata (how it was made).

    A re-run on the same source replaces the data of its earlier result layers instead of
    piling up copies. All arrays exist before the first layer is touched, and layers added
    here are removed again if a later one fails, so nothing half-made stays in the list.
    """
    where = placement(source)
    added: list[Image] = []
    touched: list[Image] = []
    try:
        for kind, data in arrays.items():
            name = result_name(source, kind)
            limits = source.contrast_limits if source.rgb else fitted_limits(data)
            existing = viewer.layers[name] if name in viewer.layers else None
            if isinstance(existing, Image) and existing.rgb == source.rgb:
                existing.data = data
                for key, value in where.items():
                    if key != "rgb":
                        setattr(existing, key, value)
                existing.contrast_limits = limits
                layer = existing
            else:
                if existing is not None:
                    viewer.layers.remove(existing)
                layer = viewer.add_image(data, name=name, contrast_limits=limits, **where)
                added.append(layer)
            layer.metadata.update(metadata or {})
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

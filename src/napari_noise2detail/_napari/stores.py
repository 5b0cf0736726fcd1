"""Where the results of a lazy (dask, zarr) layer are written: OME-Zarr stores named after the
layer, in a folder the user chose, else beside the layer's file, else in the user's cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..batch import safe_name
from ..io import write_problem
from ..io.zarr import ome_layout, results_of
from .layers import layer_meta
from .runs import Stores


def default_folder(layer: Any) -> Path:
    """Beside the file (or zarr store) the layer was opened from, else the user's cache."""
    source = getattr(getattr(layer, "source", None), "path", None)
    if source:
        return Path(source).expanduser().resolve().parent
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-noise2detail", appauthor=False)) / "results"


def layer_stores(layer: Any, folder: Path, kinds: tuple[str, ...]) -> Stores:
    """``<folder>/<layer name>_n2d_<kind>.ome.zarr`` for each kind, with the layer's axes,
    pixel size, units and place (translation)."""
    if problem := write_problem(folder):
        raise ValueError(f"{problem}; choose another results folder")
    meta, shift = layer_meta(layer)
    # axes named ZCYX, say: stored CZYX, shown as the layer is; a colour one so is refused now, not after the fit
    axes, scale, translation, order = ome_layout(meta, layer.ndim, list(shift), layer.rgb)
    stem = safe_name(layer.name)
    paths = {kind: folder / f"{stem}_n2d_{kind}.ome.zarr" for kind in kinds}
    for path in paths.values():  # a run replaces its layer's results, never another layer's
        other = results_of(path)
        if other is not None and other != layer.name:
            raise ValueError(f"{path.name} in {folder} holds the results of layer {other!r}; rename this "
                             "layer or choose another results folder")
    return Stores(paths, axes, scale, translation, layer.name, order)

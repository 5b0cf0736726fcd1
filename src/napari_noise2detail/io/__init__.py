"""Reading images (TIFF, zarr and OME-Zarr, anything a napari reader opens) with their
metadata, and writing results atomically (never a truncated file under a final name)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_directory, write_atomic, write_png, write_problem
from .meta import ImageMeta, canonical_unit, meta_from_scale
from .tiff import TIFF_SUFFIXES, read_tiff, write_image, write_tiff

__all__ = [
    "TIFF_SUFFIXES",
    "ImageMeta",
    "atomic_directory",
    "canonical_unit",
    "meta_from_scale",
    "read_image",
    "read_tiff",
    "write_atomic",
    "write_image",
    "write_png",
    "write_problem",
    "write_tiff",
]


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, ImageMeta]:
    """Read the first image of a file and its metadata; the file is only opened for reading.

    TIFF (including ImageJ and OME-TIFF) is read with tifffile, zarr and OME-Zarr stores with
    zarr (whole: :func:`.zarr.read_zarr` reads them lazily); other formats with whatever napari
    reader is installed for them. Raises an exception whose message says what went wrong.
    """
    from .zarr import is_zarr, read_zarr

    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError("the file is empty (0 bytes)")
    if path.suffix.lower() in TIFF_SUFFIXES:
        return read_tiff(path)
    if is_zarr(path):
        image = read_zarr(path)
        return np.asarray(image.data), image.meta
    from .napari_reader import read_with_napari

    return read_with_napari(path)

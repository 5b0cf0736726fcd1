"""Reading images, and writing results atomically (never a truncated file under a final name)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tifffile


def write_atomic(path: str | os.PathLike, write: Any) -> Path:
    """Call ``write(temp_path)`` on a temporary file beside ``path``, then rename it into place.

    The rename is atomic on one file system, so ``path`` is either absent, the old file, or the
    complete new one; an interrupted write leaves only a ``.partial`` temporary behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        write(Path(temp))
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

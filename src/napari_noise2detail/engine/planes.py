"""Images as a sequence of planes: checked without being read, read one plane at a time.

An image is ``(..., Y, X)``, or ``(..., Y, X, C)`` in colour; every index of the leading axes
is a plane. The image may be a numpy array or a lazy one (dask, zarr, anything with ``shape``,
``dtype`` and slicing): only the planes asked for are ever read, so a stack larger than memory
streams through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

#: The smallest plane N2D can denoise (the pair downsampler halves it twice in stage 2).
MIN_SIZE = 8


@dataclass(frozen=True)
class ImageInfo:
    """What is known of an image without reading it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    rgb: bool

    @classmethod
    def of(cls, image: Any, rgb: bool) -> ImageInfo:
        """What ``image``'s shape and dtype say, read from nothing else and checked for nothing
        (:func:`inspect` checks, and may read a whole image in memory to do so)."""
        return cls(tuple(int(n) for n in image.shape), np.dtype(image.dtype), rgb)

    @property
    def lead(self) -> tuple[int, ...]:
        """The shape of the axes that index planes."""
        return self.shape[:-3] if self.rgb else self.shape[:-2]

    @property
    def planes(self) -> int:
        return int(np.prod(self.lead, dtype=np.int64))

    @property
    def height(self) -> int:
        return self.shape[-3] if self.rgb else self.shape[-2]

    @property
    def width(self) -> int:
        return self.shape[-2] if self.rgb else self.shape[-1]

    @property
    def channels(self) -> int:
        """Channels of a plane: 1 (grey), 3 (RGB) or 4 (RGBA)."""
        return self.shape[-1] if self.rgb else 1

    @property
    def fitted(self) -> int:
        """Channels the networks see: the alpha of RGBA is passed through."""
        return 3 if self.channels == 4 else self.channels

    def index(self, plane: int) -> tuple[int, ...]:
        """The leading-axes index of plane number ``plane`` (row-major)."""
        return tuple(int(i) for i in np.unravel_index(plane, self.lead)) if self.lead else ()


def is_lazy(image: Any) -> bool:
    """Whether ``image`` is an array-like that should be read a plane at a time (not a numpy
    array, nor a torch tensor, which is in memory already)."""
    return (not isinstance(image, (np.ndarray, torch.Tensor)) and hasattr(image, "shape")
            and hasattr(image, "dtype"))


def inspect(image: Any, rgb: bool) -> tuple[Any, ImageInfo]:
    """Check that ``image`` can be denoised, without reading a lazy one; returns the image (as
    a numpy array unless it is lazy) and what is known of it. Errors say what is wrong."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()  # a copy where it is on a GPU; the input is left as it is
    if not is_lazy(image):
        image = np.asarray(image)
    dtype = np.dtype(image.dtype)
    shape = tuple(int(n) for n in image.shape)
    if dtype.kind == "b":
        raise TypeError("a boolean (mask) image cannot be denoised; give intensities")
    if dtype.kind == "c":
        raise TypeError("complex images are not supported; denoise the magnitude or each part")
    if dtype.kind not in "iuf":
        raise TypeError(f"image must hold numbers, not {dtype}")
    if int(np.prod(shape, dtype=np.int64)) == 0:
        raise ValueError(f"the image is empty (shape {shape})")
    if rgb:
        if len(shape) < 3 or shape[-1] not in (3, 4):
            raise ValueError(
                f"a colour (RGB) image needs a last axis of 3 (RGB) or 4 (RGBA) channels; got shape {shape}"
            )
    elif len(shape) < 2:
        raise ValueError(f"the image must have at least 2 dimensions (Y, X); got shape {shape}")
    info = ImageInfo(shape, dtype, rgb)
    if info.height < MIN_SIZE or info.width < MIN_SIZE:
        colour = not rgb and len(shape) >= 3 and shape[-1] in (3, 4)  # (a 2D image's last axis is X)
        hint = (" (if its last axis is colour, it is an RGB image: rgb=True, --rgb, or in napari a layer "
                "opened as RGB)" if colour else "")
        raise ValueError(
            f"the image is {info.height}x{info.width} pixels; N2D needs at least {MIN_SIZE}x{MIN_SIZE}{hint}"
        )
    if isinstance(image, np.ndarray):
        _check_finite(image)
    return image, info


def _check_finite(values: np.ndarray, where: str = "") -> None:
    if values.dtype.kind == "f":
        bad = values.size - int(np.count_nonzero(np.isfinite(values)))
        if bad:
            raise ValueError(
                f"the image has {bad} NaN or infinite pixel(s){where}; replace them before denoising"
            )
    if values.dtype.kind == "f" and values.dtype.itemsize > 4:  # the results are float32
        largest = max(float(values.max()), -float(values.min()))  # no copy of the image
        if largest > float(np.finfo(np.float32).max) or 0 < largest < float(np.finfo(np.float32).tiny):
            raise ValueError(f"the image has values{where} beyond float32's range (up to {largest:.3g}), "
                             "which the results are given in; rescale it first")


def read_plane(image: Any, info: ImageInfo, plane: int, rows: slice = slice(None),
               cols: slice = slice(None)) -> np.ndarray:
    """Plane number ``plane`` (or the part ``rows`` x ``cols`` of it) as ``(H, W, C)``; a
    lazy image reads only that part."""
    index = info.index(plane) + (rows, cols)
    data = np.asarray(image[index])
    if is_lazy(image):
        _check_finite(data, f" in plane {plane}")
    return data if info.rgb else data[..., None]


def planes_along(info: ImageInfo, axis: int) -> list[list[int]]:
    """The plane numbers at each index of leading axis ``axis`` (e.g. each channel's)."""
    numbers = np.arange(info.planes).reshape(info.lead)
    return [np.take(numbers, i, axis=axis).ravel().tolist() for i in range(info.lead[axis])]


def channel_groups(info: ImageInfo, axis: int | None) -> list[list[int]]:
    """The plane numbers of each channel, where leading axis ``axis`` holds channels (more
    than one): they are fitted apart. One list of every plane otherwise."""
    if axis is None or not 0 <= axis < len(info.lead) or info.lead[axis] < 2:
        return [list(range(info.planes))]
    return planes_along(info, axis)


def channel_view(image: Any, info: ImageInfo, axis: int | None, planes: Sequence[int]) -> tuple[Any, tuple]:
    """The part of ``image`` that is the channel whose planes are ``planes`` (along leading axis
    ``axis``; a view, not a copy), and its index in the whole; the image itself, at
    ``(Ellipsis,)``, where ``planes`` are all of them."""
    if axis is None or len(planes) == info.planes:
        return image, (Ellipsis,)
    index = (slice(None),) * axis + (info.index(planes[0])[axis],)
    return image[index], index


def spread_planes(count: int, wanted: int) -> list[int]:
    """``wanted`` plane numbers spread evenly over ``count`` planes (all when there are fewer)."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, wanted)})

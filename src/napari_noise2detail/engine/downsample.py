"""The pair downsampler and the polyphase (pixel-shuffle) split, on (N, C, H, W) tensors.

Slicing instead of fixed-filter convolutions: the same numbers, no weights to move between
devices, and it works for any number of channels.
"""

from __future__ import annotations

import torch


def pair_downsample(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (D1(x), D2(x)): the main- and anti-diagonal means of every 2x2 block.

    The two views use disjoint pixels, so their noise is independent (a Noise2Noise pair).
    H and W must be even.
    """
    tl, br = x[..., 0::2, 0::2], x[..., 1::2, 1::2]
    tr, bl = x[..., 0::2, 1::2], x[..., 1::2, 0::2]
    return 0.5 * (tl + br), 0.5 * (tr + bl)


def polyphase_split(x: torch.Tensor, k: int) -> torch.Tensor:
    """Stack the k*k sub-images ``x[..., i::k, j::k]`` along the batch axis.

    (N, C, H, W) -> (k*k*N, C, H/k, W/k), sub-image (i, j) of item n at batch index
    (i*k + j)*N + n. H and W must be divisible by k.
    """
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // k, k, w // k, k)
    return x.permute(3, 5, 0, 1, 2, 4).reshape(k * k * n, c, h // k, w // k)


def polyphase_merge(x: torch.Tensor, k: int) -> torch.Tensor:
    """Exact inverse of :func:`polyphase_split`."""
    kkn, c, h, w = x.shape
    n = kkn // (k * k)
    x = x.reshape(k, k, n, c, h, w)
    return x.permute(2, 3, 4, 0, 5, 1).reshape(n, c, h * k, w * k)

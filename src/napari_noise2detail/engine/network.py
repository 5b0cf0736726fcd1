"""The tiny fully convolutional network N2D fits twice (f and g), and how to apply it."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

#: Pixels of context each side that one application of the network reads (5x5 receptive field).
HALO = 2


def make_network(channels: int, width: int = 48, seed: int = 0) -> nn.Sequential:
    """conv3x3(C->w), LeakyReLU(0.2), conv3x3(w->w), LeakyReLU(0.2), conv1x1(w->C).

    Weights are drawn from a private copy of the RNG so that the same seed gives the same
    network on every device, and the caller's global random state is left alone.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, channels, 1),
        )


def _split(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``t`` as the sum of two bfloat16 tensors: its rounding and what rounding left out."""
    high = t.to(torch.bfloat16)
    return high, (t - high.float()).to(torch.bfloat16)


class _PreciseFirstLayer(nn.Module):
    """A first convolution (odd kernel, 'same' padding) computed in bfloat16 to nearly
    float32's precision, in one convolution: input, weights and bias are each split into a
    bfloat16 rounding and its remainder (the bias enters through two channels of ones, at the
    kernel's centre, which never reads the padding), and ``x w + b`` is summed from the three
    products that matter, ``x_hi w_hi + x_hi w_lo + x_lo w_hi + b_hi + b_lo``. Rounding the
    weights or the bias alone to bfloat16 shifted a bright image's result by 0.16 dB."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        w_high, w_low = _split(conv.weight.detach())
        b_high, b_low = _split(conv.bias.detach())
        k = conv.kernel_size[0]
        biases = torch.zeros(conv.out_channels, 2, k, k, dtype=torch.bfloat16, device=w_high.device)
        biases[:, 0, k // 2, k // 2], biases[:, 1, k // 2, k // 2] = b_high, b_low
        weight = torch.cat([w_high, w_low, w_high, biases], 1)
        self.register_buffer("weight", weight.contiguous(memory_format=torch.channels_last))
        self.padding = conv.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high, low = _split(x)
        one = torch.ones_like(high[:, :1])
        parts = torch.cat([high, high, low, one, one], 1).contiguous(memory_format=torch.channels_last)
        return F.conv2d(parts, self.weight, None, padding=self.padding)


class _Float32(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def bfloat16_copy(net: nn.Sequential) -> nn.Sequential:
    """A copy of a network from :func:`make_network` that computes in bfloat16 (about twice
    as fast where the hardware has it) and returns float32. Its first layer keeps float32's
    precision (:class:`_PreciseFirstLayer`); the rounding of the hidden channels averages out
    in the last layer."""
    rest = copy.deepcopy(net[1:]).to(torch.bfloat16)
    return nn.Sequential(_PreciseFirstLayer(net[0]), *rest, _Float32())


@torch.no_grad()
def apply_tiled(net: nn.Module, x: torch.Tensor, tile: int | None = None) -> torch.Tensor:
    """``net(x)`` computed on at most about ``tile`` x ``tile`` pixels at a time.

    A batch of small images (the polyphase sub-images of stage 2) goes through in chunks of
    that many pixels; a large image in tiles read with a halo of :data:`HALO` pixels, which
    covers the receptive field, so the result equals the untiled one exactly (image borders
    still see zero padding). Only speed and peak memory change: the hidden activations are 48
    channels per pixel, 200 MB for a 1024 x 1024 tile.
    """
    if tile is None:
        return net(x)
    n, _, h, w = x.shape
    if h <= tile and w <= tile:
        per = max(1, (tile * tile) // (h * w))
        return torch.cat([net(x[i : i + per]) for i in range(0, n, per)])
    out = torch.empty_like(x)
    # tiles of equal size, none larger than ``tile``: no thin strip left over at the edge
    rows, cols = (-(-side // -(-side // tile)) for side in (h, w))
    for i in range(n):
        for top in range(0, h, rows):
            for left in range(0, w, cols):
                t0, l0 = max(top - HALO, 0), max(left - HALO, 0)
                bottom, right = min(top + rows, h), min(left + cols, w)
                piece = net(x[i : i + 1, :, t0 : min(bottom + HALO, h), l0 : min(right + HALO, w)])
                out[i : i + 1, :, top:bottom, left:right] = piece[
                    ..., top - t0 : bottom - t0, left - l0 : right - l0
                ]
    return out


#: The dihedral transforms as (quarter turns, flip). The first 2 (a half turn) keep the
#: diagonals that the pair downsampler pairs; the first 4 add the flips along either axis (no
#: axis swap); all 8 are the whole group.
_DIHEDRAL = [(0, False), (2, False), (0, True), (2, True), (1, False), (1, True), (3, False), (3, True)]


@torch.no_grad()
def apply_ensembled(net: nn.Module, x: torch.Tensor, tile: int | None = None, ensemble: int = 1) -> torch.Tensor:
    """The mean of ``T^-1(net(T(x)))`` over the first ``ensemble`` dihedral transforms T.

    The fitted networks are not rotation or flip equivariant, so their errors differ between
    transformed copies of the image and partly average out.
    """
    if ensemble == 1:
        return apply_tiled(net, x, tile)
    total = torch.zeros_like(x)
    for turns, flip in _DIHEDRAL[:ensemble]:
        seen = torch.rot90(x.flip(-1) if flip else x, turns, dims=(-2, -1))
        out = torch.rot90(apply_tiled(net, seen, tile), -turns, dims=(-2, -1))
        total += out.flip(-1) if flip else out
    return total / ensemble

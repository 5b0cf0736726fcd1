"""Collaborative Wiener filtering of the noisy image, guided by N2D's result (`quality`).

N2D's networks see 5x5 pixels, so all the evidence they average is local; BM3D's edge is
nonlocal, and its second step shows how to use a first estimate: groups of similar patches,
matched on that estimate (far more reliable than matching on the noise), are filtered
together. Here the first estimate is N2D's detail output, and the step is BM3D's:

- for reference pixels on a grid every :data:`STRIDE` pixels, the ``members`` pixels of a
  search window whose patches are closest on the guide (:func:`.bank.similar_pixels`), or
  half as many where the farthest of them is not close (BM3D's rule: a group holds only the
  patches within a distance of the reference; see :data:`CLOSE`);
- the noisy image's and the guide's patches at those members (``full_patch`` pixels a side in
  the full groups, of smooth parts, ``patch`` in the halved ones), each group
  transformed (a 2D DCT of every patch, a Haar transform across the group);
- the noisy coefficients scaled by the empirical Wiener gain ``G^2 / (G^2 + variance)`` that
  the guide's coefficients ``G`` give, transformed back;
- every pixel's estimates averaged, weighted by ``1 / (variance * sum of gains^2)`` (groups
  that kept less noise count more) and a Kaiser window over the patch.

The noise variance is ``a * signal + b`` per channel (the estimated noise model, in the
units of the image filtered), the signal being the guide's mean over the group. An RGB image
is filtered in opponent colours (as CBM3D does): brightness and two colour differences, an
orthonormal transform under which the channels' independent noise stays independent, with
variance the squared transform of theirs; the colour differences of a stained tissue are
smooth, so their gains are small and their noise goes (+0.4 to +0.9 dB on the benchmark's
RGB image against filtering R, G and B apart). The work is
done on tiles of :data:`TILE` pixels a side (their banks and groups), so the memory is a few
copies of the plane whatever its size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .bank import similar_pixels
from .colour import OPPONENT

#: Patches per group at most, pixels a side of the search window, of the patches filtered (in
#: the halved groups, see :data:`FULL_PATCH`) and of the patches compared: BM3D's second step
#: (8x8 patches), in N2D's 21-pixel window.
MEMBERS = 64
WINDOW = 21
PATCH = 8
MATCH = 7
#: The patches of the full groups (those of smooth parts, see :data:`CLOSE`) are this large:
#: on both noise draws of the benchmark, +0.05 dB on Gaussian noise and +0.09 on Poisson and
#: mixed over 8x8 (the phase-contrast cell +0.2 to +0.8, the others within 0.07, at worst
#: -0.18 on the electron micrograph's heaviest noise), for 1.3x the filtering's time; 12x12
#: in every group gains as much but takes 2.2x.
FULL_PATCH = 12
#: A group keeps all its members where the farthest one's patch is this close to the
#: reference's on the guide (mean square difference per pixel, as a fraction of the noise
#: variance there), and the nearest half otherwise. Smooth images (the phase-contrast cell)
#: gain up to 0.8 dB from groups of 64 over 32, where a textured one (the electron
#: micrograph) loses up to 0.2 dB: its 64th match is another structure. On the benchmark's
#: cases 0.045 kept 64 members in 0-3 % of the EM's groups and 80-92 % of the phase image's.
CLOSE = 0.045
#: Reference pixels every this many pixels along both axes (every 3: the same results within
#: 0.02 dB on the benchmark, for 1.8x the groups).
STRIDE = 4
#: Side of the tiles whose banks and groups are held at once.
TILE = 256
#: The gains are computed as if the noise had this many times its variance: the guide's
#: coefficients hold its own errors besides the signal, so their power overstates the
#: signal's and plain gains keep too much noise. Chosen on the benchmark's 32 cases and a
#: second noise draw of each: 2 against 1.5, +0.05 dB on Gaussian noise and +0.07 on Poisson
#: and mixed on both draws (at worst -0.15, heavy noise on the electron micrograph); 2.5 adds
#: 0.01-0.02 more on average and loses up to 0.27; 1.5 was +0.07 / +0.18 over 1 with the
#: groups of 32 of the first version.
VARIANCE_MARGIN = 2.0
#: Pixels of patches transformed at once (in groups of one kind): the working memory of the
#: filtering.
PIXELS = 65536 * 64
#: Pixels of context each side that a pixel's result reads, of the image and of the guide:
#: the references whose groups can hold it lie within half the largest patch (6) and a
#: search window (10) of it, and their groups' patches as far again (their searches read
#: 10 + 3 around them); a piece read with this margin gives its inner pixels' results.
HALO = 2 * (max(PATCH, FULL_PATCH) // 2 + WINDOW // 2)


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II of length ``n`` as an ``(n, n)`` matrix (rows: frequencies)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.float()


def haar_matrix(n: int) -> torch.Tensor:
    """The orthonormal Haar transform of length ``n`` (a power of two) as a matrix."""
    if n & (n - 1):
        raise ValueError(f"a Haar transform needs a power of two, got {n}")
    m = torch.ones(1, 1, dtype=torch.float64)
    while m.shape[0] < n:
        half = m.shape[0]
        m = torch.cat([torch.kron(m, torch.tensor([[1.0, 1.0]], dtype=torch.float64)),
                       torch.kron(torch.eye(half, dtype=torch.float64), torch.tensor([[1.0, -1.0]], dtype=torch.float64))])
    return (m / m.norm(dim=1, keepdim=True)).float()


@torch.no_grad()
def collaborative_wiener(
    y: torch.Tensor,
    guide: torch.Tensor,
    noise: tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    members: int = MEMBERS,
    close: float = CLOSE,
    window: int = WINDOW,
    patch: int = PATCH,
    full_patch: int = FULL_PATCH,
    match: int = MATCH,
    stride: int = STRIDE,
    tile: int = TILE,
    origin: tuple[int, int] = (0, 0),
    colour: bool = False,
) -> torch.Tensor:
    """``y`` ``(N, C, H, W)`` filtered as described in the module, with groups matched on
    ``guide`` (same shape; a first estimate of the clean image). Returns ``(N, C, H, W)``.

    members: patches per group at most (a power of two): the nearest half where the farthest
        is not within ``close`` (see :data:`CLOSE`; ``float("inf")``: always all of them).
    patch, full_patch: pixels a side of the patches filtered in the halved and in the full
        groups; ``match``: of the patches compared; ``window``: of the search window.
    noise: ``(a, b)``, each ``(C,)``: the noise variance is ``a * signal + b`` in ``y``'s
        units. None: a constant variance per channel, :func:`residual_variance` of each
        plane. Either way the gains take :data:`VARIANCE_MARGIN` times it.
    origin: where ``y``'s first pixel lies in a larger image that is filtered in pieces:
        reference pixels are those whose row and column *there* divide by ``stride``, so
        that the pieces agree with the whole.
    colour: ``y`` is RGB (3 channels): filter it in opponent colours (see the module).
    """
    if y.shape != guide.shape:
        raise ValueError(f"the image {tuple(y.shape)} and its guide {tuple(guide.shape)} differ in shape")
    if colour and y.shape[1] != 3:
        raise ValueError(f"opponent colours need 3 channels, got {y.shape[1]}")
    if members < 2 or members & (members - 1):
        raise ValueError(f"members must be a power of two (the Haar transform across a group), got {members}")
    # the two kinds of group, full and halved: (members, patch side) -> the 2D DCT of a
    # flattened patch, the transform across the group and the patch's aggregation window,
    # made on the CPU and moved (not every device has kron or kaiser_window)
    kinds = []
    for size, side in ((members, full_patch), (members // 2, patch)):
        window1d = torch.kaiser_window(side, periodic=False, beta=2.0)
        kinds.append((size, side, tuple(t.to(y.device) for t in (
            torch.kron(dct_matrix(side), dct_matrix(side)), haar_matrix(size), (window1d[:, None] * window1d).reshape(-1)))))
    # the channels the groups are filtered in, as rows of y's channels (identity, or RGB ->
    # opponent colours); orthonormal, so its transpose takes them back
    mix = torch.from_numpy(OPPONENT).float() if colour else torch.eye(y.shape[1])
    mix = mix.to(y.device)
    out = torch.empty_like(y)
    for n in range(y.shape[0]):
        yn, gn = y[n].float(), guide[n].float()
        if noise is None:
            a, b = torch.zeros(y.shape[1], device=y.device), residual_variance(yn[None], gn[None])
        else:
            a, b = (v.to(y.device, torch.float32) for v in noise)
        if colour:
            yn, gn = _mix(mix, yn), _mix(mix, gn)
        filtered = _plane(yn, gn, a, b, mix, kinds, close, window, match, stride, tile, origin)
        out[n] = (_mix(mix.T, filtered) if colour else filtered).clamp_(0, 1)
    return out


def _mix(mix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The channels of ``x`` ``(C, H, W)`` mixed by ``mix`` ``(C, C)`` (rows: new channels)."""
    return torch.einsum("kc,chw->khw", mix, x)


def residual_variance(y: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Per channel, the mean of ``(y - guide)^2`` over ``(N, C, H, W)``: the noise variance
    where no noise model could be estimated (a little more than the noise: it holds the
    guide's error too)."""
    return ((y.float() - guide.float()) ** 2).mean(dim=(0, 2, 3))


def _plane(
    y: torch.Tensor, guide: torch.Tensor, a: torch.Tensor, b: torch.Tensor, mix: torch.Tensor,
    kinds: list[tuple[int, int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]], close: float, window: int,
    match: int, stride: int, tile: int, origin: tuple[int, int],
) -> torch.Tensor:
    """:func:`collaborative_wiener` of one plane ``(C, H, W)`` whose channels are ``mix``
    times those the noise model ``a``, ``b`` describes; ``kinds``: the full and the halved
    groups, ``(members, patch side, their transforms)`` (on the plane's device)."""
    channels, h, w = y.shape
    device = y.device
    (members, _, _), (halved, _, _) = kinds
    largest = max(side for _, side, _ in kinds)
    lo, hi = (largest - 1) // 2, largest // 2  # the largest patch's rows and columns around its pixel
    mode = "reflect" if max(lo, hi) < min(h, w) else "replicate"
    # the image and its guide side by side (one gather reads both), padded for the patches
    both = F.pad(torch.cat([y, guide])[None], (lo, hi, lo, hi), mode=mode)[0].reshape(2 * channels, -1)
    wp = w + largest - 1
    # per kind, a patch's pixels relative to pixel (r, c) at (r + lo, c + lo) in the padded image
    offsets = []
    for _, side, _ in kinds:
        span = torch.arange(side, device=device) - (side - 1) // 2
        offsets.append((span[:, None] * wp + span).reshape(-1))
    # the weighted estimates and, in the last row, their weights (one scatter adds both)
    sums = torch.zeros(channels + 1, both.shape[1], device=device)
    reach = window // 2 + match // 2  # what a reference's search reads around it
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            # the first reference pixels in this tile, on the grid of the whole image
            bottom, right = min(top + tile, h), min(left + tile, w)
            r0 = top + (-(top + origin[0])) % stride
            c0 = left + (-(left + origin[1])) % stride
            if r0 >= bottom or c0 >= right:
                continue
            rt, rl = max(top - reach, 0), max(left - reach, 0)
            rb, rr = min(bottom + reach, h), min(right + reach, w)
            region = guide[None, :, rt:rb, rl:rr]
            bank, distance = similar_pixels(region, members, window, match, step=stride,
                                            first=(r0 - rt, c0 - rl), distances=True)
            rows = torch.arange(bank.shape[2], device=device) * stride + r0
            cols = torch.arange(bank.shape[3], device=device) * stride + c0
            rows, cols = rows[rows < bottom], cols[cols < right]
            bank = bank[0, :, : len(rows), : len(cols)].reshape(members, -1)
            # the farthest member's mean square difference per pixel, against the noise
            # variance at the reference (its mean over channels, which mixing keeps)
            far = distance[0, -1, : len(rows), : len(cols)].reshape(-1) / (channels * match * match)
            here = guide[:, rows[:, None], cols].reshape(channels, -1)
            full = far <= close * group_variance(here, a, b, mix).mean(0)
            rw = rr - rl
            # region indices -> each member's pixel in the padded image
            centres = ((bank // rw + rt + lo) * wp + bank % rw + rl + lo).T  # (refs, members)
            for (size, side, transforms), around, chosen in zip(kinds, offsets, (centres[full], centres[~full, :halved])):
                step = max(1, PIXELS // (size * side * side))
                for first in range(0, len(chosen), step):
                    index = chosen[first : first + step, :, None] + around  # (refs, size, side^2)
                    _filter_groups(both, index, a, b, mix, *transforms, sums)
    hp = h + largest - 1
    return (sums[:-1] / sums[-1].clamp_min(1e-20)).reshape(channels, hp, wp)[:, lo : lo + h, lo : lo + w]


def group_variance(means: torch.Tensor, a: torch.Tensor, b: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """The noise variance of groups whose guide has the mean ``means`` ``(C, refs)`` in channels
    that are ``mix`` ``(C, C)`` times those the noise model ``a * signal + b`` describes: the
    model's variance at the group's signal, mixed by the squared weights (independent noise)."""
    signal = mix.T @ means  # back in the model's channels (mix is orthonormal)
    return (mix**2) @ (a[:, None] * signal + b[:, None]).clamp_min(0)


def _filter_groups(
    both: torch.Tensor, index: torch.Tensor, a: torch.Tensor, b: torch.Tensor, mix: torch.Tensor,
    spatial: torch.Tensor, across: torch.Tensor, kaiser: torch.Tensor, sums: torch.Tensor,
) -> None:
    """Wiener-filter the groups of patches at ``index`` ``(refs, members, patch^2)`` of the
    image and guide ``both`` ``(2C, pixels)``, and add their weighted estimates and (last row)
    their weights to ``sums`` ``(C + 1, pixels)``."""
    noisy, guide = both[:, index].chunk(2)  # (C, refs, members, patch^2) each
    variance = VARIANCE_MARGIN * group_variance(guide.mean(dim=(2, 3)), a, b, mix).clamp_min(1e-12)[..., None, None]
    coefficients = across @ noisy @ spatial.T
    power = (across @ guide @ spatial.T) ** 2
    gain = power / (power + variance)
    estimate = across.T @ (gain * coefficients) @ spatial
    weight = 1.0 / (variance[..., 0, 0] * (gain ** 2).sum(dim=(2, 3))).sum(0).clamp_min(1e-20)  # (refs,)
    weights = (weight[:, None, None] * kaiser).expand(index.shape)
    sums.index_add_(1, index.reshape(-1), torch.cat([estimate * weights, weights[None]]).reshape(len(sums), -1))

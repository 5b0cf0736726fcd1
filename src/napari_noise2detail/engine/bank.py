"""Nonlocal pairs: every pixel's bank of its most similar pixels, and noisy pairs drawn from it.

N2D's pairs are neighbouring pixels (the two diagonals of a 2x2 block): all the evidence it
averages is local. BM3D, Noise2Sim and Pixel2Pixel find pixels whose *neighbourhoods* look
alike anywhere in a search window; two different such pixels hold (nearly) the same signal
with independent noise, so they are a Noise2Noise pair at full resolution.

:func:`similar_pixels` finds, for every pixel, the ``members`` pixels of a ``window`` x
``window`` search window whose ``patch`` x ``patch`` neighbourhoods are closest (squared
distance) on a guide image: the noisy image itself, or a first estimate, whose matches are
far more reliable (BM3D's second step). It runs a few vectorised passes over chunks of the
window's offsets, keeping a running top-k, so its memory is a few images' worth per chunk.
:func:`draw_members` picks two *different* members per pixel; :class:`BankPairs` gives the
fit its (input, target) crops drawn that way, with the banks of a bounded set of tiles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .fitting import crop_table, whole_image

#: Offsets of the search window handled in one vectorised pass.
CHUNK = 64
#: The banks a fit uses cover at most this many pixels (tiles of :data:`BANK_TILE` spread
#: over the planes): 8 members of int64 indices over 1024 x 1024 pixels are 64 MiB.
BANK_PIXELS = 1024 * 1024
#: Side of the tiles a large image's banks are computed on.
BANK_TILE = 256
#: Member draws held for the fit's steps at most (bytes): steps beyond reuse them cyclically,
#: at other crop positions.
DRAW_BYTES = 16 * 1024 * 1024


def _window_offsets(window: int, device: torch.device) -> torch.Tensor:
    """(O, 2) offsets (dy, dx) of a window x window search window, row by row."""
    r = window // 2
    span = torch.arange(-r, r + 1, device=device)
    return torch.stack(torch.meshgrid(span, span, indexing="ij"), dim=-1).reshape(-1, 2)


def _box_sum(x: torch.Tensor, size: int) -> torch.Tensor:
    """Sums over ``size`` x ``size`` windows (valid positions only) of ``(N, H, W, O)`` (the
    offsets last, contiguous), by running sums along each axis: a few passes whatever the
    size, and a window of zeros sums to exactly 0 (repeated patterns tie exactly)."""
    rows = F.pad(x.cumsum(2), (0, 0, 1, 0))
    x = rows[:, :, size:] - rows[:, :, :-size]
    cols = F.pad(x.cumsum(1), (0, 0, 0, 0, 1, 0))
    return cols[:, size:] - cols[:, :-size]


@torch.no_grad()
def similar_pixels(
    guide: torch.Tensor, members: int = 8, window: int = 21, patch: int = 7, chunk: int = CHUNK,
    step: int = 1, first: tuple[int, int] = (0, 0), distances: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """For every pixel of ``guide`` ``(N, C, H, W)``, the flat indices (into its own H x W plane)
    of the ``members`` pixels within the search window whose patches are closest to its own,
    nearest first: ``(N, members, H, W)``, int64. Member 0 is the pixel itself.
    ``distances``: also their squared distances (same shape, float32; the pixel's own is -1).

    ``step``, ``first``: only for the pixels of rows ``first[0], first[0] + step, ...`` and
    columns ``first[1], first[1] + step, ...`` (a grid of reference pixels), whose banks come
    out as ``(N, members, H', W')``; the search itself still looks at every pixel.

    Distances are summed over channels and over a ``patch`` x ``patch`` neighbourhood, read
    with reflected borders; candidates outside the image are never chosen. The planes are
    searched one at a time, so the working memory is a few times ``chunk`` copies of one
    plane, whatever N (a big image's banks are built on tiles stacked as planes, see
    :func:`fit_tiles`).
    """
    if window % 2 == 0 or patch % 2 == 0:
        raise ValueError(f"window and patch must be odd, got {window} and {patch}")
    _n, _c, h, w = guide.shape
    if members > min(window * window, h * w):
        raise ValueError(f"{members} members do not fit in a {window}x{window} window of a {h}x{w} image")
    banks, far = zip(*[_plane_bank(plane[None], members, window, patch, chunk, step, first) for plane in guide])
    return (torch.cat(banks), torch.cat(far)) if distances else torch.cat(banks)


def _plane_bank(
    guide: torch.Tensor, members: int, window: int, patch: int, chunk: int, step: int, first: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`similar_pixels` of one plane ``(1, C, H, W)``: the bank and its distances."""
    _n, _c, h, w = guide.shape
    picked = (slice(first[0], None, step), slice(first[1], None, step))
    r, q = window // 2, patch // 2
    pad = r + q
    mode = "reflect" if pad < min(h, w) else "replicate"
    # (1, H + 2 pad, W + 2 pad, C): the offsets of a chunk are stacked last, contiguous, so
    # that the running sums and the top-k run along memory
    padded = F.pad(guide.float(), (pad, pad, pad, pad), mode=mode).permute(0, 2, 3, 1)
    centre = padded[:, r : r + h + 2 * q, r : r + w + 2 * q, :, None]
    offsets = _window_offsets(window, guide.device)
    rows = torch.arange(h, device=guide.device)[picked[0], None, None]
    cols = torch.arange(w, device=guide.device)[None, picked[1], None]
    best = torch.full((1, len(rows), cols.shape[1], members), float("inf"), device=guide.device)
    found = torch.zeros_like(best, dtype=torch.int32)
    for start in range(0, len(offsets), chunk):
        part = offsets[start : start + chunk]
        shifted = torch.stack(
            [padded[:, r + dy : r + dy + h + 2 * q, r + dx : r + dx + w + 2 * q] for dy, dx in part.tolist()],
            dim=-1,
        )  # (1, H + 2q, W + 2q, C, o)
        distance = _box_sum(((shifted - centre) ** 2).sum(3), patch)[:, picked[0], picked[1]]  # (1, H', W', o)
        del shifted
        src_rows, src_cols = rows + part[:, 0], cols + part[:, 1]
        outside = (src_rows < 0) | (src_rows >= h) | (src_cols < 0) | (src_cols >= w)  # (H', W', o)
        distance = distance.masked_fill(outside, float("inf"))
        # the pixel itself is always member 0, even where other pixels tie with it
        distance = distance.masked_fill((part == 0).all(-1), -1.0)
        index = (src_rows.clamp(0, h - 1) * w + src_cols.clamp(0, w - 1)).int().expand(1, -1, -1, -1)
        best, which = torch.cat([best, distance], dim=-1).topk(members, dim=-1, largest=False, sorted=False)
        found = torch.cat([found, index], dim=-1).gather(-1, which)
    best, order = best.sort(dim=-1, stable=True)
    return found.gather(-1, order).long().permute(0, 3, 1, 2).contiguous(), best.permute(0, 3, 1, 2).contiguous()


def draw_members(
    members: int, shape: tuple[int, ...], generator: torch.Generator, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two member numbers per position of ``shape``, never the same one: independent noise.

    The second is the first plus a uniform 1..members-1 (mod members), so every ordered pair
    of different members is equally likely.
    """
    if members < 2:
        raise ValueError(f"a pair needs at least 2 members, got {members}")
    first = torch.randint(0, members, shape, generator=generator)
    second = (first + torch.randint(1, members, shape, generator=generator)) % members
    return first.to(device), second.to(device)


def gather_pixels(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` read at flat pixel indices ``index`` ``(N, h, w)`` of each plane:
    ``(N, C, h, w)``."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    return flat.gather(2, index.reshape(n, 1, -1).expand(-1, c, -1)).reshape(n, c, *index.shape[1:])


def fit_tiles(
    images: list[torch.Tensor], generator: torch.Generator, pixels: int = BANK_PIXELS, tile: int = BANK_TILE
) -> list[torch.Tensor]:
    """The part of ``images`` (each ``(K, C, H, W)``, same size) that a fit with banks draws
    its crops from: all of it when it has at most ``pixels`` pixels; otherwise that many
    pixels' worth of ``tile`` x ``tile`` tiles, drawn at random (the same ones from every
    image), stacked as planes. The banks, the fit's memory, then stay bounded on any image.
    """
    planes, _c, height, width = images[0].shape
    if planes * height * width <= pixels or (height <= tile and width <= tile):
        return images
    th, tw = min(tile, height), min(tile, width)
    grid = torch.cartesian_prod(
        torch.arange(planes), torch.arange(0, height - th + 1, th), torch.arange(0, width - tw + 1, tw)
    )
    count = max(1, min(len(grid), pixels // (th * tw)))
    chosen = grid[torch.randperm(len(grid), generator=generator)[:count]].tolist()
    return [torch.cat([image[k : k + 1, :, top : top + th, left : left + tw] for k, top, left in chosen])
            for image in images]


class BankPairs:
    """The (input, target) pair of every fitting step, drawn from the banks: a batch of random
    square crops (or the whole planes) of ``x`` and ``target`` ``(K, C, H, W)`` in which every
    pixel is read at a member of its bank ``(K, members, H, W)``.

    ``from_self=False``: input and target are two different members (both drawn), the pairs of
    Pixel2Pixel. ``from_self=True``: the input is the pixel itself (``x`` as it is) and the
    target another member, never the pixel itself: for a network that must see its input
    image unchanged (stage 3 sees the smooth image). Calling the table gives the next pair;
    crop positions and member draws are made before the fit, on the CPU generator (a seed
    gives the same pairs everywhere), and picked on the device by a counter.
    """

    def __init__(
        self, x: torch.Tensor, target: torch.Tensor, bank: torch.Tensor, crop: int | None, batch: int,
        steps: int, generator: torch.Generator, from_self: bool = False,
    ) -> None:
        planes, channels, height, width = x.shape
        members = bank.shape[1]
        whole = whole_image(crop, height, width)
        self.batch = planes if whole else batch
        if whole:  # every plane, whole, at every step
            ch, cw = height, width
            which = torch.arange(planes).expand(max(steps, 1), planes)
            table = torch.stack([which, torch.zeros_like(which), torch.zeros_like(which)], dim=-1)
        else:
            table, (ch, cw) = crop_table(x.shape, crop, batch, steps, generator)
        device = x.device
        self.table = table.to(device)  # (steps, batch, 3)
        # member draws for at most DRAW_BYTES: later steps reuse them at other crops
        held = max(1, min(max(steps, 1), DRAW_BYTES // (2 * self.batch * ch * cw)))
        if from_self:
            first = torch.zeros((held, self.batch, ch, cw), dtype=torch.long)
            second = torch.randint(1, members, (held, self.batch, ch, cw), generator=generator)
        else:
            first, second = draw_members(members, (held, self.batch, ch, cw), generator)
        self.draws = torch.stack([first, second], dim=1).to(device, torch.uint8)  # (held, 2, batch, ch, cw)
        self.counter = torch.zeros(1, dtype=torch.long, device=device)
        self.channels = channels
        # (K, H * W, 2C): both images' values of a pixel side by side, one gather for both
        self.values = torch.cat([x, target], dim=1).permute(0, 2, 3, 1).reshape(planes, height * width, 2 * channels)
        self.bank = bank.reshape(planes, members, height * width)
        self.width = width
        self.rows = torch.arange(ch, device=device)
        self.cols = torch.arange(cw, device=device)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        where = self.table.index_select(0, self.counter)[0]  # (batch, 3)
        draws = self.draws.index_select(0, self.counter % len(self.draws))[0].long()  # (2, batch, ch, cw)
        self.counter += 1
        plane = where[:, 0, None, None]
        pos = (where[:, 1, None] + self.rows)[:, :, None] * self.width + (where[:, 2, None] + self.cols)[:, None, :]
        source = self.bank[plane, draws, pos]  # (2, batch, ch, cw): flat pixel of each member
        c = self.channels
        x = self.values[plane, source[0], :c].permute(0, 3, 1, 2)
        target = self.values[plane, source[1], c:].permute(0, 3, 1, 2)
        return x, target

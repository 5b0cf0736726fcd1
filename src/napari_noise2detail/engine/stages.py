"""The three N2D stages, as a generator that reports progress.

Everything here works on ``(K, C, H, W)`` tensors (K planes fitted together) in [0, 1] with H
and W divisible by 4, on whatever device they live on; :mod:`.model` and :mod:`.denoise` deal
with arrays, shapes and intensities.
"""

from __future__ import annotations

import copy
from typing import Callable, Generator

import torch
import torch.nn.functional as F
from torch import nn

from .device import resolve_precision
from .downsample import pair_downsample, polyphase_merge, polyphase_split
from .fitting import GUARD_EVERY, fit
from .network import apply_ensembled, bfloat16_copy, make_network
from .pairs import training_pairs
from .presets import Settings
from .results import HeldOut
from .threads import AdaptiveThreads
from .wiener import HALO as WIENER_HALO

#: (stage, step, total steps of the stage, loss or None, the stage-3 guard's check or None)
StageEvent = tuple[int, int, int, float | None, HeldOut | None]


def held_out_error(
    g: nn.Module, f: nn.Module, y: torch.Tensor, tile: int | None, size: int = 256
) -> Callable[[], torch.Tensor]:
    """The error of g on pairs it is never fitted to: f's estimate from one diagonal view of y
    against the other view (the centre of the views, at most ``size`` x ``size`` pixels in
    all, shared among the planes of ``y``: a fixed cost however many planes are fitted).

    Stage 3 feeds g the smooth image, which holds a trace of the noise of *both* views, so g
    can learn to pull the target's noise out of its input; on these pairs that only adds
    error. It falls while g learns the image and rises once g learns the noise.
    """
    y1, y2 = pair_downsample(y)
    h, w = y1.shape[-2:]
    # one plane keeps size x size; K planes each about size / sqrt(K) a side (the check ran
    # every plane's full centre before, which cost a 5-plane fit 8 s more than a 1-plane one)
    size = max(int(size / len(y) ** 0.5) // 2 * 2, 16)
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    y1, y2 = (v[..., top : top + size, left : left + size] for v in (y1, y2))
    x1, x2 = denoise_residual(f, y1, tile), denoise_residual(f, y2, tile)

    @torch.no_grad()
    def error() -> torch.Tensor:  # stays on the device: the guard reads it there
        p1, p2 = g(torch.cat([x1, x2])).chunk(2)
        return 0.5 * (F.mse_loss(p1, y2) + F.mse_loss(p2, y1))

    return error


class CheckedError:
    """The held-out error as the guard checks it (every ``GUARD_EVERY`` steps), the latest
    kept on the device so that progress can report it: it is read back only then."""

    def __init__(self, error: Callable[[], torch.Tensor]) -> None:
        self.error = error
        self.checks = 0
        self.last: torch.Tensor | None = None

    def __call__(self) -> torch.Tensor:
        self.last = self.error()
        self.checks += 1
        return self.last

    def report(self, step: int, total: int) -> HeldOut | None:
        """The latest check, at a reported ``step`` of ``total``. A fit the guard stops reports
        ``total`` as its step early, having checked fewer times than a full fit does."""
        if self.last is None:
            return None
        stopped = step == total and self.checks < total // GUARD_EVERY
        return HeldOut(self.checks * GUARD_EVERY, float(self.last), stopped)


@torch.no_grad()
def denoise_residual(f: nn.Module, x: torch.Tensor, tile: int | None, ensemble: int = 1) -> torch.Tensor:
    """``clamp(x - f(x), 0, 1)``: f predicts the noise."""
    return (x - apply_ensembled(f, x, tile, ensemble)).clamp_(0, 1)


@torch.no_grad()
def refine(f: nn.Module, y: torch.Tensor, s1: torch.Tensor, tile: int | None) -> torch.Tensor:
    """Stage 2: average s1 with f applied to pixel-shuffled copies of y (k = 2, 4), no training.

    Splitting y into its k*k polyphase sub-images breaks the spatial correlation of the noise
    that a fit on this very image leaves behind.
    """
    total = s1.clone()
    for k in (2, 4):
        q = polyphase_merge(denoise_residual(f, polyphase_split(y, k), tile), k)
        total += denoise_residual(f, q, tile)
    return total / 3


def _new_network(
    channels: int, seed: int, settings: Settings, like: torch.Tensor, start: nn.Module | None = None,
    zero_output: bool = False,
) -> nn.Module:
    """A fresh network (seeded), or a copy of ``start``, on ``like``'s device."""
    if start is not None:
        net = copy.deepcopy(start)
    else:
        net = make_network(channels, settings.width, seed)
        if zero_output:
            nn.init.zeros_(net[-1].weight)
            nn.init.zeros_(net[-1].bias)
    net = net.to(like.device)
    if settings.channels_last and like.device.type != "mps":
        net = net.to(memory_format=torch.channels_last)
    return net


def n2d_plane(
    y: torch.Tensor,
    settings: Settings,
    seed: int = 0,
    start: tuple[nn.Module, nn.Module] | None = None,
    threads: AdaptiveThreads | None = None,
) -> Generator[StageEvent, None, tuple[tuple[torch.Tensor, ...], tuple[nn.Module, nn.Module]]]:
    """The three stages on a noisy plane; yields StageEvents, returns ((s1, s2, s3), (f, g)).

    ``y`` is ``(K, C, H, W)``: one plane, or several planes that one pair of networks is
    fitted to (crops are drawn from all of them) and that are all denoised.
    ``start``: networks fitted on a neighbouring plane to continue from (stacks), with the
    shorter warm fit of ``settings.fits(warm=True)``; their weights are copied, not changed.
    ``threads``: chooses the CPU thread count of the fitting steps (see :mod:`.threads`).
    """
    channels = y.shape[1]
    fit1, fit3 = settings.fits(warm=start is not None)
    crops = torch.Generator().manual_seed(seed)
    graph = settings.cuda_graph
    how = dict(threads=threads, precision=settings.precision, graph=graph)

    f = _new_network(channels, 2 * seed, settings, y, start and start[0], settings.zero_noise_init)
    sample, loss_of = training_pairs(settings.pairs, y, y, y, fit1, crops, settings)
    for step, loss in fit(f, lambda u: u - f(u), sample, fit1, settings.report_every, loss=loss_of, **how):
        yield 1, step, fit1.steps, loss, None
    s1, s2 = smooth(f, y, settings)
    yield 2, 1, 1, None, None

    g = _new_network(channels, 2 * seed + 1, settings, y, start and start[1])
    sample, loss_of = training_pairs(settings.detail_pairs, s2, y, s2, fit3, crops, settings, from_self=True)
    guard = CheckedError(held_out_error(g, f, y, settings.tile)) if settings.detail_guard else None
    for step, loss in fit(g, g, sample, fit3, settings.report_every, guard, loss=loss_of,
                          keep_best=settings.detail_keep_best, **how):
        yield 3, step, fit3.steps, loss, guard and guard.report(step, fit3.steps)
    return (s1, s2, detail(g, s2, settings)), (f, g)


def applied(net: nn.Sequential, settings: Settings, device: torch.device) -> nn.Sequential:
    """The network as it is applied to whole images: with ``settings.apply_precision``
    bfloat16 ("auto": where ``device`` computes it natively) a copy that computes in
    bfloat16, about twice as fast on such hardware for a change far below the noise
    (docs/benchmarks.md); otherwise ``net`` itself."""
    if resolve_precision(settings.apply_precision, device) == "bfloat16":
        return bfloat16_copy(net)
    return net


@torch.no_grad()
def smooth(f: nn.Module, y: torch.Tensor, settings: Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """Stages 1 and 2 with a fitted f: (s1, s2)."""
    f = applied(f, settings, y.device)
    s1 = denoise_residual(f, y, settings.tile)
    s2 = refine(f, y, s1, settings.tile)
    if settings.ensemble > 1:
        s1 = denoise_residual(f, y, settings.tile, settings.ensemble)
    return s1, s2


@torch.no_grad()
def detail(g: nn.Module, s2: torch.Tensor, settings: Settings) -> torch.Tensor:
    """Stage 3 with a fitted g: s3."""
    return apply_ensembled(applied(g, settings, s2.device), s2, settings.tile, settings.ensemble).clamp_(0, 1)


#: Pixels of context each side that stages 1-3 together read: f sees 2 pixels each side,
#: which in the 4x4 polyphase sub-images of stage 2 are 8 pixels of the image, then f once
#: more (2) and g (2). A tile read with this margin, at a multiple of 4 (so that its
#: polyphase sub-images are the image's), gives the same results as the whole image.
PIPELINE_HALO = 12


def halo(settings: Settings) -> int:
    """The context each side that the stages read with ``settings``: :data:`PIPELINE_HALO`,
    and, with ``settings.wiener``, what the filtering reads around stage 3's result (a
    multiple of 4 either way)."""
    return PIPELINE_HALO + (-(-WIENER_HALO // 4) * 4 if settings.wiener else 0)

"""The three N2D stages on one plane, as a generator that reports progress.

Everything here works on ``(1, C, H, W)`` tensors in [0, 1] with H and W divisible by 4, on
whatever device they live on; :mod:`.denoise` deals with arrays, shapes and intensities.
"""

from __future__ import annotations

from typing import Callable, Generator, Iterator

import torch
from torch import nn

from .downsample import polyphase_merge, polyphase_split
from .losses import pair_loss
from .network import apply_tiled, make_network
from .presets import Settings

#: (stage, step, total steps of the stage, loss or None)
StageEvent = tuple[int, int, int, float | None]


def fit(
    net: nn.Module,
    predict: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target: torch.Tensor,
    settings: Settings,
) -> Iterator[tuple[int, float]]:
    """Adam on the pair loss, learning rate halved half-way; yields (step, loss) every few steps.

    The loss is read back (a device sync) only when it is reported.
    """
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=settings.halve_lr_at, gamma=0.5)
    net.train()
    with torch.enable_grad():
        for step in range(1, settings.steps + 1):
            opt.zero_grad(set_to_none=True)
            loss = pair_loss(predict, x, target)
            loss.backward()
            opt.step()
            schedule.step()
            if step % settings.report_every == 0 or step == settings.steps:
                yield step, float(loss.detach())
    net.requires_grad_(False)
    net.eval()


@torch.no_grad()
def denoise_residual(f: nn.Module, x: torch.Tensor, tile: int | None) -> torch.Tensor:
    """``clamp(x - f(x), 0, 1)``: f predicts the noise."""
    return (x - apply_tiled(f, x, tile)).clamp_(0, 1)


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


def _new_network(channels: int, seed: int, settings: Settings, like: torch.Tensor) -> nn.Module:
    net = make_network(channels, settings.width, seed).to(like.device)
    if settings.channels_last and like.device.type != "mps":
        net = net.to(memory_format=torch.channels_last)
    return net


def n2d_plane(
    y: torch.Tensor, settings: Settings, seed: int = 0
) -> Generator[StageEvent, None, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Run N2D on one noisy plane; yields StageEvents, returns (s1, s2, s3)."""
    channels = y.shape[1]

    f = _new_network(channels, 2 * seed, settings, y)
    for step, loss in fit(f, lambda u: u - f(u), y, y, settings):
        yield 1, step, settings.steps, loss
    s1 = denoise_residual(f, y, settings.tile)

    s2 = refine(f, y, s1, settings.tile)
    del f
    yield 2, 1, 1, None

    g = _new_network(channels, 2 * seed + 1, settings, y)
    for step, loss in fit(g, g, s2, y, settings):
        yield 3, step, settings.steps, loss
    with torch.no_grad():
        s3 = apply_tiled(g, s2, settings.tile).clamp_(0, 1)
    return s1, s2, s3

"""The three N2D stages on one plane, as a generator that reports progress.

Everything here works on ``(1, C, H, W)`` tensors in [0, 1] with H and W divisible by 4, on
whatever device they live on; :mod:`.denoise` deals with arrays, shapes and intensities.
"""

from __future__ import annotations

import copy
from typing import Callable, Generator, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .downsample import pair_downsample, polyphase_merge, polyphase_split
from .losses import pair_loss
from .network import apply_ensembled, make_network
from .presets import Fit, Settings

#: (stage, step, total steps of the stage, loss or None)
StageEvent = tuple[int, int, int, float | None]


Sampler = Callable[[], tuple[torch.Tensor, torch.Tensor]]


def crop_sampler(
    x: torch.Tensor, target: torch.Tensor, crop: int | None, batch: int, generator: torch.Generator
) -> Sampler:
    """Returns a function giving (input, target) for one step: the whole pair, or a batch of
    random crops taken at the same place in both, at even coordinates so that the pair
    downsampler sees the same 2x2 blocks as on the whole image."""
    height, width = x.shape[-2:]
    if crop is None or (crop >= height and crop >= width):
        return lambda: (x, target)
    ch, cw = min(crop, height), min(crop, width)
    channels = x.shape[1]
    both = x if target is x else torch.cat([x, target], dim=1)

    def sample() -> tuple[torch.Tensor, torch.Tensor]:
        # Offsets are drawn on the CPU generator: no device round trip, same crops everywhere.
        tops = (torch.randint(0, (height - ch) // 2 + 1, (batch,), generator=generator) * 2).tolist()
        lefts = (torch.randint(0, (width - cw) // 2 + 1, (batch,), generator=generator) * 2).tolist()
        pieces = torch.stack([both[0, :, t : t + ch, l : l + cw] for t, l in zip(tops, lefts)])
        if target is x:
            return pieces, pieces
        return pieces[:, :channels], pieces[:, channels:]

    return sample


def _schedule(opt: torch.optim.Optimizer, steps: int, kind: str) -> torch.optim.lr_scheduler.LRScheduler:
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    # the paper's: halved once, half-way (after 1000 of 2000 steps)
    return torch.optim.lr_scheduler.StepLR(opt, step_size=max(steps // 2, 1), gamma=0.5)


#: Stage 3's guard: every this many steps, the held-out error of g is checked ...
GUARD_EVERY = 25
#: ... and when it stays this much above its best for two checks in a row, g has started to
#: learn the noise: the fit stops and g goes back to its best state.
GUARD_RISE = 0.2


def fit(
    net: nn.Module,
    predict: Callable[[torch.Tensor], torch.Tensor],
    sample: Sampler,
    how: Fit,
    report_every: int,
    held_out: Callable[[], float] | None = None,
) -> Iterator[tuple[int, float]]:
    """Adam on the pair loss; yields (step, loss) every ``report_every`` steps.

    The loss is read back (a device sync) only when it is reported. ``held_out``: an error
    of ``net`` on data it is not fitted to, for the guard (:data:`GUARD_RISE`); a fit it
    stops reports its last step as the final one.
    """
    steps = how.steps
    if steps == 0:  # a warm start used as it is
        net.requires_grad_(False).eval()
        return
    net.requires_grad_(True)
    opt = torch.optim.Adam(net.parameters(), lr=how.lr)
    schedule = _schedule(opt, steps, how.schedule)
    best, best_state, rising = float("inf"), None, 0
    net.train()
    with torch.enable_grad():
        for step in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            loss = pair_loss(predict, *sample())
            loss.backward()
            opt.step()
            schedule.step()
            if held_out is not None and step % GUARD_EVERY == 0:
                error = held_out()
                if error < best:
                    best, best_state, rising = error, copy.deepcopy(net.state_dict()), 0
                else:
                    rising = rising + 1 if error > best * (1 + GUARD_RISE) else 0
                if rising == 2:
                    net.load_state_dict(best_state)
                    yield steps, float(loss.detach())
                    break
            if step % report_every == 0 or step == steps:
                yield step, float(loss.detach())
    net.requires_grad_(False)
    net.eval()


def held_out_error(
    g: nn.Module, f: nn.Module, y: torch.Tensor, tile: int | None, size: int = 256
) -> Callable[[], float]:
    """The error of g on pairs it is never fitted to: f's estimate from one diagonal view of y
    against the other view (at most ``size`` x ``size`` of their centre, a fixed cost).

    Stage 3 feeds g the smooth image, which holds a trace of the noise of *both* views, so g
    can learn to pull the target's noise out of its input; on these pairs that only adds
    error. It falls while g learns the image and rises once g learns the noise.
    """
    y1, y2 = pair_downsample(y)
    h, w = y1.shape[-2:]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    y1, y2 = (v[..., top : top + size, left : left + size] for v in (y1, y2))
    x1, x2 = denoise_residual(f, y1, tile), denoise_residual(f, y2, tile)

    @torch.no_grad()
    def error() -> float:
        p1, p2 = g(torch.cat([x1, x2])).chunk(2)
        return float(0.5 * (F.mse_loss(p1, y2) + F.mse_loss(p2, y1)))

    return error


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
) -> Generator[StageEvent, None, tuple[tuple[torch.Tensor, ...], tuple[nn.Module, nn.Module]]]:
    """Run N2D on one noisy plane; yields StageEvents, returns ((s1, s2, s3), (f, g)).

    ``start``: networks fitted on a neighbouring plane to continue from (stacks), with the
    shorter warm fit of ``settings.fits(warm=True)``; their weights are copied, not changed.
    """
    channels = y.shape[1]
    fit1, fit3 = settings.fits(warm=start is not None)
    crops = torch.Generator().manual_seed(seed)

    f = _new_network(channels, 2 * seed, settings, y, start and start[0], settings.zero_noise_init)
    sample = crop_sampler(y, y, fit1.crop, fit1.batch, crops)
    for step, loss in fit(f, lambda u: u - f(u), sample, fit1, settings.report_every):
        yield 1, step, fit1.steps, loss
    s1 = denoise_residual(f, y, settings.tile)
    s2 = refine(f, y, s1, settings.tile)
    if settings.ensemble > 1:
        s1 = denoise_residual(f, y, settings.tile, settings.ensemble)
    yield 2, 1, 1, None

    g = _new_network(channels, 2 * seed + 1, settings, y, start and start[1])
    sample = crop_sampler(s2, y, fit3.crop, fit3.batch, crops)
    guard = held_out_error(g, f, y, settings.tile) if settings.detail_guard else None
    for step, loss in fit(g, g, sample, fit3, settings.report_every, guard):
        yield 3, step, fit3.steps, loss
    with torch.no_grad():
        s3 = apply_ensembled(g, s2, settings.tile, settings.ensemble).clamp_(0, 1)
    return (s1, s2, s3), (f, g)

"""The one-call path: every plane fitted and denoised, numpy in, numpy out, any shape and dtype.

A plane of a stack is fitted on its own, as the paper treats every image; with the preset's
``plane_steps`` it continues from the networks of the plane before (a warm start). To fit
once and apply to every plane (long stacks, time-lapses), see :mod:`.model`.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Generator

import numpy as np
import torch

from .device import describe_device, resolve_device
from .model import drive, fit_planes, fit_progress, is_constant, noise_of, plane_from_tensor, prepare, resolve_for
from .planes import ImageInfo, inspect, read_plane, spread_planes
from .presets import Settings, check_seed, resolve_settings
from .results import Cancelled, DenoiseResult, Progress
from .threads import check_threads, fitting_threads, torch_threads

__all__ = ["Cancelled", "DenoiseResult", "Progress", "denoise", "denoise_iter"]

#: Planes of a stack the noise is estimated from, spread evenly.
NOISE_PLANES = 16


def denoise_iter(
    image: Any,
    *,
    rgb: bool = False,
    preset: str | Settings = "fast",
    device: str | torch.device = "auto",
    seed: int = 0,
    threads: int | None = None,
    **settings: object,
) -> Generator[Progress, None, DenoiseResult]:
    """Like :func:`denoise`, as a generator: yields :class:`Progress`, returns the result.

    The input is checked before the generator is returned, so bad input raises at once.
    Stopping iteration (or ``close()``) cancels the run between two steps.
    """
    image, info = inspect(image, rgb)
    chosen = resolve_settings(preset, **settings)
    dev = resolve_device(device)
    return _run(image, info, chosen, dev, check_seed(seed), check_threads(threads))


def _run(
    image: Any, info: ImageInfo, settings: Settings, device: torch.device, seed: int, threads: int | None,
) -> Generator[Progress, None, DenoiseResult]:
    began = time.perf_counter()
    settings = resolve_for(settings, device)
    most, tuner = fitting_threads(threads, device)
    fitted, n = info.fitted, info.planes
    with torch_threads(most):
        sample = [read_plane(image, info, i)[..., :fitted] for i in spread_planes(n, NOISE_PLANES)]
        noise = noise_of(np.stack(sample), settings)
        del sample
        # fresh copies; the input is never changed (and constant planes, and alpha, stay as they are)
        outputs = [np.array(image, dtype=np.float32) for _ in range(3)]
        first, later = (sum(f.steps for f in settings.fits(warm=w)) or 1 for w in (False, True))
        total = first + later * (n - 1)
        done, start, clipping = 0, None, None
        stabilising = noise if noise is not None and noise.stabilised else None
        decorrelate = settings.decorrelate and fitted == 3
        for index in range(n):
            raw = read_plane(image, info, index)
            share = (first if start is None else later) / total
            # a constant plane has nothing to denoise and stays as it is
            if not is_constant(prepare(raw[..., :fitted], stabilising, decorrelate), decorrelate):
                run = fit_planes(raw[None, ..., :fitted], noise, settings, device, seed, [index], start, tuner)
                model, stages = yield from fit_progress(run, settings, start is not None, index, n, done, share)
                clipping = clipping or model.clipping
                for out, stage in zip(outputs, stages):
                    values = model.restore(plane_from_tensor(stage, 0, info.height, info.width), model.low, model.high)
                    plane = out[info.index(index)]  # a view
                    if info.rgb:
                        plane[..., :fitted] = values
                    else:
                        plane[...] = values[..., 0]
                if settings.plane_steps is not None:
                    start = model
                del run, stages
            done += share
    if device.type == "cuda":
        torch.cuda.empty_cache()  # hand the GPU memory back to the user's other tools
    return DenoiseResult(*outputs, describe_device(device, threads), settings, time.perf_counter() - began, noise,
                         clipping)


def denoise(
    image: Any,
    *,
    rgb: bool = False,
    preset: str | Settings = "fast",
    device: str | torch.device = "auto",
    seed: int = 0,
    threads: int | None = None,
    progress: Callable[[Progress], object] | None = None,
    **settings: object,
) -> DenoiseResult:
    """Denoise ``image`` with Noise2Detail.

    image: ``(Y, X)`` or a stack ``(..., Y, X)``; with ``rgb=True``, ``(..., Y, X, C)`` with
        C = 3, or 4 (the alpha channel is passed through). Any numeric dtype; Y, X >= 8.
    preset: ``"fast"`` (default) or ``"paper"`` (the published settings), or a Settings.
    device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    seed: same input, seed and settings give the same output on the same device (on the
        CPU, with a fixed ``threads``).
    threads: CPU threads. None (default): all of them for applying the networks, and for
        fitting as many as are fastest at the moment (one when other programs keep the
        cores busy), found by timing the steps; a number fixes it.
    progress: called with a :class:`Progress` every few steps; return ``False`` (or raise
        :class:`Cancelled`) to stop the run, which then raises :class:`Cancelled`.
    settings: any :class:`Settings` field, overriding the preset (e.g. ``steps=200``).

    Returns a :class:`DenoiseResult` with ``partial`` (stage 1), ``smooth`` (stage 2) and
    ``detail`` (stage 3) arrays, float32, shaped like the input, in its intensity units.
    """
    run = denoise_iter(image, rgb=rgb, preset=preset, device=device, seed=seed, threads=threads, **settings)
    return drive(run, progress, "denoising was cancelled")

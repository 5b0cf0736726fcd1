"""The public entry points: numpy arrays in, numpy arrays out, any shape, any dtype."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Generator

import numpy as np
import torch
import torch.nn.functional as F

from .colour import from_opponent, to_opponent
from .device import describe_device, inference_tile, resolve_device, resolve_precision
from .normalize import from_unit, to_unit, unit_range
from .presets import Settings, resolve_settings
from .stabilise import NoiseModel, estimate_noise, forward, inverse
from .stages import n2d_plane
from .threads import AdaptiveThreads, check_threads, torch_threads

MIN_SIZE = 8
STAGE_NAMES = {1: "partial denoising", 2: "smoothing", 3: "detail recovery"}


class Cancelled(Exception):
    """The caller stopped a denoise run; no result was produced."""


@dataclass(frozen=True)
class Progress:
    """Where a run is. ``plane`` is 0-based; ``fraction`` covers the whole run (0..1)."""

    plane: int
    planes: int
    stage: int
    step: int
    total: int
    loss: float | None
    fraction: float

    @property
    def stage_name(self) -> str:
        return STAGE_NAMES[self.stage]

    def describe(self) -> str:
        """One line for people, e.g. ``"plane 2/5, stage 1/3 (partial denoising), step 40/1200"``."""
        plane = f"plane {self.plane + 1}/{self.planes}, " if self.planes > 1 else ""
        return f"{plane}stage {self.stage}/3 ({self.stage_name}), step {self.step}/{self.total}"


@dataclass(frozen=True)
class DenoiseResult:
    """The three N2D outputs, float32, same shape and intensity units as the input."""

    partial: np.ndarray  # stage 1
    smooth: np.ndarray  # stage 2
    detail: np.ndarray  # stage 3: the denoised image
    device: str
    settings: Settings
    seconds: float
    #: The noise found in the image (variance = a * signal + b, in its intensity units),
    #: whether it is shot noise and whether N2D was fitted on the variance-stabilised image;
    #: None if it could not be estimated (a flat or tiny image, one clipped almost everywhere).
    noise: NoiseModel | None = None


def _check_image(image: object, rgb: bool) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype.kind == "b":
        raise TypeError("a boolean (mask) image cannot be denoised; give intensities")
    if arr.dtype.kind == "c":
        raise TypeError("complex images are not supported; denoise the magnitude or each part")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"image must hold numbers, not {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"the image is empty (shape {arr.shape})")
    if rgb:
        if arr.ndim < 3 or arr.shape[-1] not in (3, 4):
            raise ValueError(
                f"rgb=True needs a last axis of 3 (RGB) or 4 (RGBA) channels; got shape {arr.shape}"
            )
        height, width = arr.shape[-3:-1]
    else:
        if arr.ndim < 2:
            raise ValueError(f"the image must have at least 2 dimensions (Y, X); got shape {arr.shape}")
        height, width = arr.shape[-2:]
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(
            f"the image is {height}x{width} pixels; N2D needs at least {MIN_SIZE}x{MIN_SIZE}"
        )
    if arr.dtype.kind == "f":
        bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ValueError(
                f"the image has {bad} NaN or infinite pixel(s); replace them before denoising"
            )
    return arr


def _to_tensor(unit: np.ndarray, device: torch.device, settings: Settings) -> torch.Tensor:
    """(H, W, C) float32 -> (1, C, H', W') on device, reflect-padded so H', W' divide by 4."""
    x = torch.from_numpy(np.ascontiguousarray(unit)).permute(2, 0, 1)[None].to(device)
    pad_h, pad_w = (-x.shape[-2]) % 4, (-x.shape[-1]) % 4
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    if settings.channels_last and device.type != "mps":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _to_numpy(x: torch.Tensor, height: int, width: int) -> np.ndarray:
    return x[0, :, :height, :width].permute(1, 2, 0).float().cpu().numpy()


def denoise_iter(
    image: np.ndarray,
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
    arr = _check_image(image, rgb)
    chosen = resolve_settings(preset, **settings)
    dev = resolve_device(device)
    return _run(arr, rgb, chosen, dev, seed, check_threads(threads))


def _run(
    arr: np.ndarray, rgb: bool, settings: Settings, device: torch.device, seed: int,
    threads: int | None,
) -> Generator[Progress, None, DenoiseResult]:
    # CPU threads: all of them (or the count asked for) for inference; the fitting steps
    # adapt to the load unless a count was asked for (see .threads).
    most = threads or torch.get_num_threads()
    tuner = AdaptiveThreads(most) if threads is None and device.type == "cpu" else None
    settings = replace(settings, tile=inference_tile(settings.tile, device, settings.width),
                       precision=resolve_precision(settings.precision, device))
    with torch_threads(most):
        where = describe_device(device, threads)
        return (yield from _planes(arr, rgb, settings, device, seed, tuner, where))


def _planes(
    arr: np.ndarray, rgb: bool, settings: Settings, device: torch.device, seed: int,
    tuner: AdaptiveThreads | None, where: str,
) -> Generator[Progress, None, DenoiseResult]:
    began = time.perf_counter()
    height, width = (arr.shape[-3:-1] if rgb else arr.shape[-2:])
    planes = arr.reshape(-1, height, width, arr.shape[-1]) if rgb else arr.reshape(-1, height, width, 1)
    n_planes = planes.shape[0]
    fitted = planes.shape[-1] if planes.shape[-1] != 4 else 3  # alpha is passed through
    outputs = [planes.astype(np.float32) for _ in range(3)]  # fresh copies; input untouched
    noise = estimate_noise(np.moveaxis(planes[..., :fitted], -1, 1))
    if noise is not None and settings.stabilise and noise.signal_dependent:
        noise = replace(noise, stabilised=True)
    stabilised = noise is not None and noise.stabilised
    decorrelate = settings.decorrelate and fitted == 3

    def work(fits: tuple) -> int:  # a plane's share of the progress fraction
        return sum(fit.steps for fit in fits) or 1

    total_work = work(settings.fits()) + work(settings.fits(warm=True)) * (n_planes - 1)
    done_before = 0
    start = None  # networks of the previous plane, for a warm start (stacks)

    for index, plane in enumerate(planes):
        data = plane[..., :fitted].astype(np.float64)
        # N2D runs where the noise suits it best: stabilised, then in opponent colours
        if stabilised:
            data = forward(data, noise)
        if decorrelate:
            data = to_opponent(data)
        low, high = unit_range(data, per_channel=decorrelate)
        fits = settings.fits(warm=start is not None)
        share = work(fits)
        if np.all(high > low):  # a constant plane has nothing to denoise and stays as it is
            y = _to_tensor(to_unit(data, low, high), device, settings)
            run = n2d_plane(y, settings, seed, start, tuner)
            while True:
                try:
                    stage, step, total, loss = next(run)
                except StopIteration as done:
                    stages, networks = done.value
                    break
                within = step if stage == 1 else fits[0].steps + (step if stage == 3 else 0)
                if stage == 2 and fits[1].steps == 0:
                    within = share  # nothing left to fit: the plane is done
                yield Progress(
                    index, n_planes, stage, step, total, loss,
                    min((done_before + within) / total_work, 1.0),
                )
            for out, result in zip(outputs, stages):
                back = from_unit(_to_numpy(result, height, width), low, high)
                if decorrelate:
                    back = from_opponent(back)
                if stabilised:
                    back = inverse(back, noise)
                out[index, ..., :fitted] = back
            if settings.plane_steps is not None:
                start = networks
            del y, run, stages, networks
        done_before += share
    if device.type == "cuda":
        torch.cuda.empty_cache()  # hand the GPU memory back to the user's other tools

    partial, smooth, detail = (out.reshape(arr.shape) for out in outputs)
    return DenoiseResult(
        partial, smooth, detail, where, settings, time.perf_counter() - began, noise
    )


def denoise(
    image: np.ndarray,
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
    run = denoise_iter(image, rgb=rgb, preset=preset, device=device, seed=seed, threads=threads,
                       **settings)
    while True:
        try:
            event = next(run)
        except StopIteration as done:
            return done.value
        if progress is not None and progress(event) is False:
            run.close()
            raise Cancelled("denoising was cancelled")

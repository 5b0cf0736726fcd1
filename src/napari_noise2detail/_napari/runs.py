"""What one run of the Noise2Detail dock does, chosen from the data, without Qt or napari:

- a saved model given: applied to every plane, no fitting;
- a lazy image (dask, zarr): fitted on a few planes (only those are read), then applied a
  plane at a time, the results written plane by plane into new OME-Zarr stores;
- one plane, or a stack that :func:`~napari_noise2detail.engine.model.fits_once`: fitted once
  (on a few planes of a stack), then applied to every plane;
- a shorter stack: every plane fitted in turn (:func:`~napari_noise2detail.denoise_iter`).

A layer whose axis labels name a channel axis (``c``) is denoised a channel at a time, each
channel the way its own planes call for, with its own fit (as the batch does: channels differ
in structure, brightness and gain), unless a saved model is applied to all of them. The
run itself is the batch's (:func:`~napari_noise2detail.engine.stack.denoise_stack_iter`).

:func:`start_run` checks everything it can and returns a generator of :class:`Step` that
returns an :class:`Outcome`; closing the generator cancels the run and leaves no store behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Mapping, Sequence

import numpy as np

from ..engine import Denoiser, DenoiseResult, denoise_iter, fit_iter
from ..engine.model import fits_once
from ..engine.planes import ImageInfo, channel_groups, is_lazy
from ..engine.results import relabelled
from ..engine.stack import FITTING, Step, denoise_stack_iter, results_note
from ..io.zarr import colour_as_channel, ome_zarr_outputs, output_levels


@dataclass(frozen=True)
class Stores:
    """Where a lazy image's results go: one OME-Zarr store per kind, with its axes, scale and
    translation."""

    paths: Mapping[str, Path]
    axes: Sequence[dict]
    scale: Sequence[float]
    translation: Sequence[float] | None = None
    #: The layer they are the results of, recorded in them.
    source: str | None = None
    #: The layer's leading axes in the order they are stored in (``io.zarr.ome_order``; the
    #: axes, scale and translation above are as stored), or None: as the layer has them.
    order: Sequence[int] | None = None


@dataclass(frozen=True)
class Job:
    """What to denoise and how. ``settings`` override the preset (e.g. ``{"steps": 300}``);
    ``kinds`` are the results to keep ("partial", "smooth", "detail")."""

    image: Any
    rgb: bool
    preset: str = "fast"
    settings: Mapping[str, Any] = field(default_factory=dict)
    kinds: tuple[str, ...] = ("smooth", "detail")
    device: str = "auto"
    #: Apply this model instead of fitting one.
    model: Denoiser | None = None
    #: Lazy images only: where their results are written (required for them).
    stores: Stores | None = None
    #: Where its channel axis lies among the axes that index planes (a "c" axis label), if it
    #: has one: each channel is fitted on its own.
    channel_axis: int | None = None


@dataclass(frozen=True)
class Outcome:
    """The results by kind (numpy arrays, or zarr arrays read from their final stores), what
    the engine reported, the model (None when every plane was fitted on its own) and how the
    run went, in words."""

    arrays: dict[str, Any]
    result: DenoiseResult
    model: Denoiser | None
    how: str
    seconds: float
    stores: Mapping[str, Path] = field(default_factory=dict)
    #: A layer fitted a channel at a time: each channel's result (``result`` is the first's,
    #: its arrays the whole image's) and model (None where its planes were fitted in turn).
    channels: tuple[tuple[DenoiseResult, Denoiser | None], ...] = ()
    #: What the user should know of how it went, if anything (planes fitted on their own).
    note: str = ""
    #: The preset fitted with; None where a saved model was applied (its settings are its own).
    preset: str | None = None


def channel_planes(job: Job) -> list[list[int]]:
    """The plane numbers of each of the job's channels, fitted apart; one list of every plane
    where it has no channel axis of several channels, or a saved model is applied to all."""
    info = ImageInfo.of(job.image, job.rgb)
    return channel_groups(info, None if job.model is not None else job.channel_axis)


def way(job: Job) -> str:
    """How ``job`` will run: "apply", "stream", "fit once" or "every plane" (each channel's
    planes, for a layer with a channel axis)."""
    if job.model is not None:
        return "apply"
    if is_lazy(job.image):
        return "stream"
    planes = len(channel_planes(job)[0])
    return "fit once" if planes == 1 or fits_once(planes) else "every plane"


def fitted_on_several_planes(job: Job) -> bool:
    """Whether denoising the whole image of ``job`` fits a model on several of its planes (of
    a channel), where the engine stabilises shot noise unless told not to: what a preview of a
    part of it must do as well to show what the whole run will give."""
    planes = len(channel_planes(job)[0])
    return planes > 1 and (is_lazy(job.image) or fits_once(planes))


def start_run(job: Job) -> Generator[Step, None, Outcome]:
    """Check ``job`` (ValueError/TypeError: what is wrong) and return its run."""
    how = way(job)
    if how in ("apply", "stream") and is_lazy(job.image):
        if job.stores is None:
            raise ValueError("a lazy (dask or zarr) image needs a folder for its results")
        if job.rgb:  # stored with colour as an OME channel axis: refused now, not after the fit
            colour_as_channel(job.image.shape, job.stores.axes, job.stores.scale)
    if how == "apply":
        job.model.apply_iter(job.image, rgb=job.rgb, out={})  # checks the channels, allocates nothing
    else:  # the engine checks the image and settings as it makes a run: made, and dropped, now
        make = denoise_iter if how == "every plane" else fit_iter
        make(job.image, rgb=job.rgb, preset=job.preset, device=job.device, **job.settings)
    return _run(job, how)


def _run(job: Job, how: str) -> Generator[Step, None, Outcome]:
    """The job's run: each channel (see :func:`channel_planes`) filled into the outputs in
    turn, with its share of the progress (see :func:`~..engine.stack.denoise_stack_iter`)."""
    began = time.perf_counter()
    groups = channel_planes(job)
    info = ImageInfo.of(job.image, job.rgb)
    arrays, stores, results = yield from _into_outputs(job, lambda out: denoise_stack_iter(
        job.image, info, groups, out, axis=job.channel_axis, rgb=job.rgb, preset=job.preset, device=job.device,
        models=[job.model] if job.model is not None else None, keep_models=True, **job.settings))
    note = results_note(results, info)
    return Outcome(arrays, results[0][0], results[0][1] if len(results) == 1 else None,
                   _how(how, groups, results) + (f"; {note}" if note else ""), time.perf_counter() - began,
                   stores, tuple(results) if len(results) > 1 else (), note,
                   None if job.model is not None else job.preset)


def _how(how: str, groups: list[list[int]], results: list) -> str:
    """How the run went, in words."""
    planes, channels = len(groups[0]), len(groups)
    if how == "apply":
        return "saved model applied, no fitting"
    each = f"each of its {channels} channels on its own, " if channels > 1 else ""
    if how == "every plane":
        return f"{each}every plane fitted in turn ({planes} planes{' each' if channels > 1 else ''})"
    if planes == 1:
        return f"{each}fitted and applied"
    fitted = len(results[0][1].planes)
    return f"{each}fitted once on {fitted} of {planes} planes, applied to every plane"


def _into_outputs(job: Job, fill: Any) -> Generator[Step, None, tuple[dict[str, Any], Mapping[str, Path], Any]]:
    """``fill(out)`` run into the job's outputs: numpy arrays, or (lazy images) new stores,
    shown once complete. Returns the arrays to show, the stores, and what ``fill`` returned."""
    shape = tuple(int(n) for n in job.image.shape)
    if job.stores is None or not is_lazy(job.image):
        out = {kind: np.zeros(shape, np.float32) for kind in job.kinds}
        filled = yield from fill(out)
        return out, {}, filled
    paths = {kind: job.stores.paths[kind] for kind in job.kinds}
    with ome_zarr_outputs(paths, shape, job.stores.axes, job.stores.scale, rgb=job.rgb,
                          translation=job.stores.translation, source=job.stores.source,
                          order=job.stores.order) as out:
        filled = yield from fill(out)
    # The stores were filled under temporary names; what is shown is read from the final ones
    # (every level of huge planes, so that napari reads what suits the zoom)
    arrays = {kind: _shown_levels(output_levels(path, job.rgb, job.stores.order)) for kind, path in paths.items()}
    return arrays, paths, filled


def _shown_levels(levels: list[Any]) -> Any:
    """One array, or the levels of a multiscale one (napari's list of levels)."""
    return levels if len(levels) > 1 else levels[0]


def fit_only(job: Job, channel: int = 0) -> Generator[Step, None, Denoiser]:
    """Fit a model to ``job``'s image (a few planes of a stack; of ``channel``'s planes, for a
    layer with a channel axis), to save; checked at once."""
    groups = channel_planes(job)
    settings = dict(job.settings)
    if len(groups) > 1:
        settings["among"] = groups[channel]
    fit = fit_iter(job.image, rgb=job.rgb, preset=job.preset, device=job.device, **settings)
    return relabelled(fit, lambda event: Step(FITTING, event, event.fraction))

"""What one run of the Noise2Detail dock does, chosen from the data, without Qt or napari:

- a saved model given: applied to every plane, no fitting;
- a lazy image (dask, zarr): fitted on a few planes (only those are read), then applied a
  plane at a time, the results written plane by plane into new OME-Zarr stores;
- one plane, or a stack that :func:`~napari_noise2detail.engine.model.fits_once`: fitted once
  (on a few planes of a stack), then applied to every plane;
- a shorter stack: every plane fitted in turn (:func:`~napari_noise2detail.denoise_iter`).

A layer whose axis labels name a channel axis (``c``) is denoised a channel at a time, each
channel the way its own planes call for, with its own fit (as the batch does: channels differ
in structure, brightness and gain), unless a saved model is applied to all of them.

:func:`start_run` checks everything it can and returns a generator of :class:`Step` that
returns an :class:`Outcome`; closing the generator cancels the run and leaves no store behind.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Mapping, Sequence

import numpy as np

from ..engine import Denoiser, DenoiseResult, Progress, denoise_iter, fit_iter
from ..engine.model import fits_once, planes_to_fit, refit_note
from ..engine.planes import ImageInfo, channel_groups, channel_view, is_lazy
from ..engine.results import relabelled
from ..io.zarr import colour_as_channel, ome_zarr_outputs, output_levels

#: Roughly how many planes' application one fit costs, to share the progress bar between
#: fitting and applying (a fit of ``fast`` takes as long as applying it to some tens of
#: planes of a few hundred pixels a side). Only the bar and the time left depend on it.
FIT_COST_IN_PLANES = 30


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
class Step:
    """One event of a run: what it is doing (``phase``), the engine's event, and how far the
    whole run is (0..1)."""

    phase: str
    progress: Progress
    fraction: float
    #: The channel it is of, for a layer denoised a channel at a time.
    channel: int | None = None


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


#: One channel's run, filling the outputs given: its events, then its result and model.
Fill = Generator[Step, None, tuple[DenoiseResult, Denoiser | None]]


def _run(job: Job, how: str) -> Generator[Step, None, Outcome]:
    """The job's run: each channel (see :func:`channel_planes`) filled into the outputs in
    turn, with its share of the progress bar."""
    began = time.perf_counter()
    groups = channel_planes(job)
    share = 1 / len(groups)
    done = []
    outcome = yield from _into_outputs(job, lambda out: _channels(job, how, groups, share, out, done))
    results = tuple(done)
    return Outcome(outcome.arrays, results[0][0], results[0][1] if len(results) == 1 else None,
                   _how(job, how, groups, results), time.perf_counter() - began, outcome.stores,
                   results if len(results) > 1 else ())


def _channels(job: Job, how: str, groups: list[list[int]], share: float, out: dict[str, Any],
              done: list) -> Generator[Step, None, None]:
    for number, planes in enumerate(groups):
        start, end = number * share, (number + 1) * share
        if how == "apply":
            fill = _apply(job, job.model, planes, out, start, end)
        elif how == "every plane":
            fill = _every_plane(job, planes, out, start, end)
        else:
            fill = _fit_then_apply(job, planes, len(groups) > 1, out, start, end)
        if len(groups) > 1:  # its steps say which channel they are of
            fill = relabelled(fill, lambda step, c=number: dataclasses.replace(step, channel=c))
        done.append((yield from fill))


def _how(job: Job, how: str, groups: list[list[int]], results: tuple) -> str:
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
    note = refit_note(sorted(plane for result, _model in results for plane in result.refitted),
                      ImageInfo.of(job.image, job.rgb))
    return f"{each}fitted once on {fitted} of {planes} planes, applied to every plane" + (f"; {note}" if note else "")


def _every_plane(job: Job, planes: list[int], out: dict[str, Any], start: float, end: float) -> Fill:
    """Every plane of one channel (or of the image) fitted in turn, its results put in ``out``."""
    info = ImageInfo.of(job.image, job.rgb)
    image, index = channel_view(job.image, info, job.channel_axis, planes)  # one channel: a view of it
    run = denoise_iter(image, rgb=job.rgb, preset=job.preset, device=job.device, **job.settings)
    # its planes numbered in the whole image, as the other ways number them
    run = relabelled(run, lambda event: dataclasses.replace(event, plane=planes[event.plane], planes=info.planes))
    result = yield from _steps(run, "denoising", start, end)
    for kind in job.kinds:
        if index == (Ellipsis,):
            out[kind] = getattr(result, kind)  # as it is, not copied
        else:
            out[kind][index] = getattr(result, kind)
    return result, None


def _fit_then_apply(job: Job, planes: list[int], apart: bool, out: dict[str, Any], start: float, end: float) -> Fill:
    """One channel's planes (or the image's) fitted once, on a few of them, then applied to them."""
    settings = dict(job.settings)
    if apart:
        settings["planes"] = planes_to_fit(planes)
    fit = fit_iter(job.image, rgb=job.rgb, preset=job.preset, device=job.device, **settings)
    middle = start + (end - start) * FIT_COST_IN_PLANES / (FIT_COST_IN_PLANES + len(planes))
    model = yield from _steps(fit, "fitting", start, middle)
    return (yield from _apply(job, model, planes, out, middle, end, refit=True))


def _apply(job: Job, model: Denoiser, planes: list[int], out: dict[str, Any], start: float, end: float,
           refit: bool = False) -> Fill:
    """``model`` applied to one channel's planes; ``refit``: it was fitted on them, and fits
    those it does not cover on their own (see ``Denoiser.apply``)."""
    run = model.apply_iter(job.image, rgb=job.rgb, out=out, planes=planes, refit=refit)
    steps = relabelled(_steps(run, "applying", start, end), lambda step: step if step.progress.stage == 0
                       else dataclasses.replace(step, phase=FITTED_ALONE))
    return (yield from steps), model


#: The phase of the steps of a plane that the model fitted once does not cover, fitted on its
#: own while the model is applied (see ``Denoiser.apply``'s ``refit``).
FITTED_ALONE = "fitting a plane on its own"


def _into_outputs(job: Job, fill: Any) -> Generator[Step, None, Outcome]:
    """``fill(out)`` run into the job's outputs: numpy arrays, or (lazy images) new stores,
    shown once complete."""
    shape = tuple(int(n) for n in job.image.shape)
    if job.stores is None or not is_lazy(job.image):
        out = {kind: np.zeros(shape, np.float32) for kind in job.kinds}
        yield from fill(out)
        return Outcome(out, None, None, "", 0.0)
    paths = {kind: job.stores.paths[kind] for kind in job.kinds}
    with ome_zarr_outputs(paths, shape, job.stores.axes, job.stores.scale, rgb=job.rgb,
                          translation=job.stores.translation, source=job.stores.source,
                          order=job.stores.order) as out:
        yield from fill(out)
    # The stores were filled under temporary names; what is shown is read from the final ones
    # (every level of huge planes, so that napari reads what suits the zoom)
    arrays = {kind: _shown_levels(output_levels(path, job.rgb, job.stores.order)) for kind, path in paths.items()}
    return Outcome(arrays, None, None, "", 0.0, paths)


def _steps(
    run: Generator[Progress, None, Any], phase: str, start: float, end: float
) -> Generator[Step, None, Any]:
    """The engine's events as Steps, its fraction mapped onto ``start..end`` of the whole run."""
    return relabelled(run, lambda event: Step(phase, event, start + (end - start) * event.fraction))


def _shown_levels(levels: list[Any]) -> Any:
    """One array, or the levels of a multiscale one (napari's list of levels)."""
    return levels if len(levels) > 1 else levels[0]


def fit_only(job: Job, channel: int = 0) -> Generator[Step, None, Denoiser]:
    """Fit a model to ``job``'s image (a few planes of a stack; of ``channel``'s planes, for a
    layer with a channel axis), to save; checked at once."""
    groups = channel_planes(job)
    settings = dict(job.settings)
    if len(groups) > 1:
        settings["planes"] = planes_to_fit(groups[channel])
    fit = fit_iter(job.image, rgb=job.rgb, preset=job.preset, device=job.device, **settings)
    return _steps(fit, "fitting", 0.0, 1.0)

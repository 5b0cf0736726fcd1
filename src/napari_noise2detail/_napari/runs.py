"""What one run of the Noise2Detail dock does, chosen from the data, without Qt or napari:

- a saved model given: applied to every plane, no fitting;
- a lazy image (dask, zarr): fitted on a few planes (only those are read), then applied a
  plane at a time, the results written plane by plane into new OME-Zarr stores;
- one plane, or a stack that :func:`~napari_noise2detail.engine.model.fits_once`: fitted once
  (on a few planes of a stack), then applied to every plane;
- a shorter stack: every plane fitted in turn (:func:`~napari_noise2detail.denoise_iter`).

:func:`start_run` checks everything it can and returns a generator of :class:`Step` that
returns an :class:`Outcome`; closing the generator cancels the run and leaves no store behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator, Mapping, Sequence

import numpy as np

from ..engine import Denoiser, DenoiseResult, Progress, denoise_iter, fit_iter
from ..engine.model import fits_once
from ..engine.planes import is_lazy
from ..engine.results import relabelled
from ..io.zarr import colour_as_channel, ome_zarr_outputs, open_output

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
    #: The channels its axis labels name (a "c" axis): fitted together here, which the outcome says.
    channels: int = 1


@dataclass(frozen=True)
class Step:
    """One event of a run: what it is doing (``phase``), the engine's event, and how far the
    whole run is (0..1)."""

    phase: str
    progress: Progress
    fraction: float


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


def planes_of(image: Any, rgb: bool) -> int:
    """The number of planes of an image, from its shape alone."""
    shape = tuple(np.shape(image)) if not hasattr(image, "shape") else tuple(image.shape)
    return int(np.prod(shape[:-3] if rgb else shape[:-2], dtype=np.int64))


def way(job: Job) -> str:
    """How ``job`` will run: "apply", "stream", "fit once" or "every plane"."""
    if job.model is not None:
        return "apply"
    if is_lazy(job.image):
        return "stream"
    planes = planes_of(job.image, job.rgb)
    return "fit once" if planes == 1 or fits_once(planes) else "every plane"


def fitted_on_several_planes(image: Any, rgb: bool) -> bool:
    """Whether denoising the whole ``image`` fits one model on several of its planes, where
    the engine stabilises shot noise unless told not to: what a preview of a part of it must
    do as well to show what the whole run will give."""
    planes = planes_of(image, rgb)
    return planes > 1 and (is_lazy(image) or fits_once(planes))


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
        return _apply_only(job)
    if how == "every plane":
        run = denoise_iter(job.image, rgb=job.rgb, preset=job.preset, device=job.device, **job.settings)
        return _every_plane(job, run)
    fit = fit_iter(job.image, rgb=job.rgb, preset=job.preset, device=job.device, **job.settings)
    return _fit_then_apply(job, fit)


def _every_plane(job: Job, run: Generator[Progress, None, DenoiseResult]) -> Generator[Step, None, Outcome]:
    began = time.perf_counter()
    result = yield from _steps(run, "denoising", 0.0, 1.0)
    arrays = {kind: getattr(result, kind) for kind in job.kinds}
    how = f"every plane fitted in turn ({planes_of(job.image, job.rgb)} planes)" + _together(job)
    return Outcome(arrays, result, None, how, time.perf_counter() - began)


def _together(job: Job) -> str:
    """What to say of a layer whose channels were fitted together (the batch fits them apart)."""
    if job.channels < 2:
        return ""
    return (f"; its {job.channels} channels were fitted together: split the layer, or use Batch "
            "denoise..., to fit each on its own")


def _fit_then_apply(job: Job, fit: Generator[Progress, None, Denoiser]) -> Generator[Step, None, Outcome]:
    began = time.perf_counter()
    planes = planes_of(job.image, job.rgb)
    share = FIT_COST_IN_PLANES / (FIT_COST_IN_PLANES + planes)
    model = yield from _steps(fit, "fitting", 0.0, share)
    outcome = yield from _apply(job, model, share)
    how = ("fitted and applied" if planes == 1 else
           f"fitted once on {len(model.planes)} of {planes} planes, applied to every plane") + _together(job)
    return Outcome(outcome.arrays, outcome.result, model, how, time.perf_counter() - began, outcome.stores)


def _apply_only(job: Job) -> Generator[Step, None, Outcome]:
    began = time.perf_counter()
    outcome = yield from _apply(job, job.model, 0.0)
    return Outcome(outcome.arrays, outcome.result, job.model, "saved model applied, no fitting",
                   time.perf_counter() - began, outcome.stores)


def _apply(job: Job, model: Denoiser, before: float) -> Generator[Step, None, Outcome]:
    """Apply ``model`` to the job's image, into numpy arrays or (lazy images) new stores."""
    shape = tuple(int(n) for n in job.image.shape)
    if job.stores is None or not is_lazy(job.image):
        out = {kind: np.zeros(shape, np.float32) for kind in job.kinds}
        result = yield from _steps(model.apply_iter(job.image, rgb=job.rgb, out=out), "applying", before, 1.0)
        return Outcome(out, result, model, "", 0.0)
    paths = {kind: job.stores.paths[kind] for kind in job.kinds}
    with ome_zarr_outputs(paths, shape, job.stores.axes, job.stores.scale, rgb=job.rgb,
                          translation=job.stores.translation, source=job.stores.source,
                          order=job.stores.order) as out:
        result = yield from _steps(model.apply_iter(job.image, rgb=job.rgb, out=out), "applying", before, 1.0)
    # The stores were filled under temporary names; what is shown is read from the final ones.
    arrays = {kind: open_output(path, job.rgb, job.stores.order) for kind, path in paths.items()}
    return Outcome(arrays, result, model, "", 0.0, paths)


def _steps(
    run: Generator[Progress, None, Any], phase: str, start: float, end: float
) -> Generator[Step, None, Any]:
    """The engine's events as Steps, its fraction mapped onto ``start..end`` of the whole run."""
    return relabelled(run, lambda event: Step(phase, event, start + (end - start) * event.fraction))


def fit_only(job: Job) -> Generator[Step, None, Denoiser]:
    """Fit a model to ``job``'s image (a few planes of a stack), to save; checked at once."""
    fit = fit_iter(job.image, rgb=job.rgb, preset=job.preset, device=job.device, **job.settings)
    return _steps(fit, "fitting", 0.0, 1.0)

"""A stack denoised as the batch and the dock denoise it, a channel at a time.

Each group of planes (a channel's, see :func:`.planes.channel_groups`; or every plane) is
denoised one of three ways: a model given for it is applied, no fitting; a lazy image, or a
stack that :func:`.model.fits_once`, is fitted once on a few of its planes and the model applied
to them all (a plane it does not cover fitted on its own); anything else has every plane
fitted in turn, warm-started (:func:`.denoise.denoise_iter`). The results are written into
the arrays given, so the caller decides where they live (numpy, or zarr on disk).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Generator, MutableMapping, Sequence

import numpy as np

from .denoise import denoise_iter
from .model import Denoiser, NotCovered, fit_iter, fits_once, refit_note
from .planes import ImageInfo, channel_view, is_lazy
from .results import DenoiseResult, Progress, relabelled

#: Roughly how many planes' application one fit costs, to share the progress between fitting
#: and applying (a fit of ``fast`` takes as long as applying it to some tens of planes of a
#: few hundred pixels a side). Only progress bars and the time left depend on it.
FIT_COST_IN_PLANES = 30

#: What a :class:`Step` is doing.
FITTING, APPLYING, DENOISING = "fitting", "applying", "denoising"
#: A plane the model fitted once does not cover, fitted on its own while it is applied.
FITTED_ALONE = "fitting a plane on its own"


@dataclass(frozen=True)
class Step:
    """One event of a stack's run: what it is doing (``phase``), the engine's event, and how
    far the whole run is (0..1)."""

    phase: str
    progress: Progress
    fraction: float


#: Each group's result, and its model (None where its planes were fitted in turn).
Results = list[tuple[DenoiseResult, "Denoiser | None"]]


def denoise_stack_iter(
    image: Any,
    info: ImageInfo,
    groups: Sequence[Sequence[int]],
    out: MutableMapping[str, Any],
    *,
    axis: int | None,
    rgb: bool,
    preset: Any,
    device: Any,
    seed: int = 0,
    threads: int | None = None,
    models: Sequence[Denoiser] | None = None,
    keep_models: bool = False,
    **settings: object,
) -> Generator[Step, None, Results]:
    """Denoise ``image`` a group of planes at a time (see the module's description), writing
    its results into ``out`` (arrays by kind, shaped like the image; None: made here, float32
    zeros; a stack fitted plane by plane as a whole puts its own arrays there).

    axis: where the channel axis lies among the leading axes (for a channel's view), if any.
    models: one per group, applied instead of fitting.
    keep_models: a single plane is fitted and its model applied (the same results as
        denoising it, and a model to keep) rather than denoised.
    preset, device, seed, threads, settings: as for :func:`~.denoise.denoise`.
    """
    share = 1 / len(groups)
    results: Results = []
    for number, planes in enumerate(groups):
        start, end = number * share, (number + 1) * share
        channel = number if len(groups) > 1 else None
        model = models[number] if models else None
        fit_here = model is None and (is_lazy(image) or fits_once(len(planes)) or (keep_models and len(planes) == 1))
        if fit_here:
            fit = fit_iter(image, rgb=rgb, preset=preset, among=planes, device=device, seed=seed, threads=threads,
                           **settings)
            middle = start + (end - start) * FIT_COST_IN_PLANES / (FIT_COST_IN_PLANES + len(planes))
            model = yield from _steps(fit, FITTING, channel, start, middle, planes)
            start = middle
        if model is not None:
            _made(out, info.shape)
            # a plane the model fitted here does not cover is fitted on its own; a given one refuses it
            run = model.apply_iter(image, rgb=rgb, threads=threads, out=out, planes=planes, refit=fit_here)
            try:
                result = yield from _steps(run, APPLYING, channel, start, end, planes)
            except NotCovered as refused:
                if models is None or len(models) < 2:
                    raise
                raise NotCovered(f"{refused.finding} (this is channel {number}'s model: one model per "
                                 "channel, in channel order)") from None
            results.append((result, model))
            continue
        view, index = channel_view(image, info, axis, planes)  # one channel: a view of it
        run = denoise_iter(view, rgb=rgb, preset=preset, device=device, seed=seed, threads=threads, **settings)
        result = yield from _steps(run, DENOISING, channel, start, end)  # numbered in the view: the channel's own
        if index == (Ellipsis,):  # the whole image: its results as they are, not copied
            out.update({kind: getattr(result, kind) for kind in out})
        else:
            _made(out, info.shape)
            for kind in out:
                out[kind][index] = getattr(result, kind)
        results.append((result, None))
    return results


def results_note(results: Results, info: ImageInfo) -> str:
    """For people: the planes of every group fitted on their own (see :func:`.model.refit_note`)."""
    return refit_note(sorted(plane for result, _model in results for plane in result.refitted), info)


def _steps(
    run: Generator[Progress, None, Any], phase: str, channel: int | None, start: float, end: float,
    planes: Sequence[int] = (),
) -> Generator[Step, None, Any]:
    """The engine's events as Steps, their fraction mapped onto ``start..end`` of the whole
    run; a ``channel``'s events say so, with its ``planes`` (numbered in the image) numbered
    among its own ("channel 1, plane 2/3"); while a model is applied, the steps of a plane
    fitted on its own are said to be so."""
    own = {plane: number for number, plane in enumerate(planes)}

    def step(event: Progress) -> Step:
        if channel is not None:
            event = replace(event, channel=channel, **(
                {"plane": own[event.plane], "planes": len(own)} if event.plane in own else {}))
        what = FITTED_ALONE if phase == APPLYING and event.stage != 0 else phase
        return Step(what, event, start + (end - start) * event.fraction)

    return relabelled(run, step)


def _made(out: MutableMapping[str, Any], shape: tuple[int, ...]) -> None:
    """The outputs not made yet (None in ``out``) made: float32 zeros shaped ``shape``."""
    out.update({kind: np.zeros(shape, np.float32) for kind, array in out.items() if array is None})

"""A fitted model: fit once, apply to any image of the same kind, keep it in a file.

:func:`fit` fits N2D's two networks to an image, or to chosen planes of a stack (the crops
of every step are drawn from all of them), and returns a :class:`Denoiser`: the networks and
everything that reproduces their results (the intensity range mapped to [0, 1], the noise
model, the settings, the seed, the package version). :meth:`Denoiser.apply` runs them on any
image with the same channels, a plane at a time: a lazy image (dask, zarr) is read a plane at
a time and, given ``out`` arrays (zarr on disk, say), the results are written a plane at a
time, so memory does not grow with the number of planes. Planes larger than
:data:`PLANE_TILE` a side go through in tiles read with the margin the stages need
(``stages.halo``), which gives the same numbers as the whole plane.

:meth:`Denoiser.save` writes it to one file (see :mod:`.model_file`, which also loads it).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Generator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._version import __version__
from .clipping import Clipping, declip
from .clipping import find as find_clipping
from .colour import from_opponent, to_opponent
from .device import describe_device, inference_tile, resolve_device, resolve_precision
from .normalize import from_unit, to_unit, unit_range
from .planes import ImageInfo, inspect, read_plane, spread_planes
from .presets import Settings, check_seed, resolve_settings
from .results import KINDS, Cancelled, DenoiseResult, Progress, relabelled
from .stabilise import NoiseModel, estimate_noise, floor, forward, inverse
from .stages import StageEvent, detail, halo, n2d_plane, smooth
from .threads import AdaptiveThreads, check_threads, fitting_threads, torch_threads
from .wiener import collaborative_wiener, residual_variance

#: Planes of a stack that :func:`fit` fits on when none are chosen, spread evenly.
FIT_PLANES = 5
#: Stacks of at least this many planes are fitted once and the model applied to every plane
#: in the widget and the batch (shorter ones: every plane fitted, warm-started). See
#: docs/benchmarks.md for the comparison that sets it.
FIT_ONCE_FROM = 8


def planes_to_fit(planes: Sequence[int]) -> list[int]:
    """The few of ``planes`` (:data:`FIT_PLANES`, spread evenly) a model for them all is fitted on."""
    return [planes[i] for i in spread_planes(len(planes), FIT_PLANES)]


def _not_constant(
    image: Any, info: ImageInfo, among: Sequence[int], chosen: list[int], raw: list[np.ndarray],
) -> tuple[list[int], list[np.ndarray]]:
    """The planes to fit on, ``chosen`` (read: ``raw``) from ``among``, each constant one (a
    dropped frame of zeros) swapped for the nearest plane that is not: fitted on, it would set
    the model's darkest level and be denoised rather than kept as it is. All constant: left as
    they are (the fit then says so). Returns them in order, with their data."""
    planes, order = dict(zip(chosen, raw)), list(among)
    for plane in chosen:
        if not is_constant(planes[plane]):
            continue
        at = order.index(plane)
        for i in sorted(range(len(order)), key=lambda i: abs(i - at)):  # nearest first
            if order[i] in planes:
                continue
            other = read_plane(image, info, order[i])
            if not is_constant(other):
                del planes[plane]
                planes[order[i]] = other
                break
    kept = sorted(planes)
    return kept, [planes[p] for p in kept]


def is_constant(data: np.ndarray, per_channel: bool = False) -> bool:
    """Whether ``(H, W, C)`` data holds one value (per channel, with ``per_channel``; isolated
    outliers, hot pixels, aside)."""
    low, high = unit_range(data, per_channel=per_channel)
    return not np.all(np.asarray(high) > np.asarray(low))


def fits_once(planes: int) -> bool:
    """Whether a stack of ``planes`` planes is better fitted once than plane by plane."""
    return planes >= FIT_ONCE_FROM


#: Planes larger than this many pixels a side are applied in tiles of this size.
PLANE_TILE = 4096
#: A stabilised model refuses a plane with more than this share of its pixels below the
#: darkest value its noise model tells apart (``stabilise.floor``), which would come out
#: flattened: an image much dimmer than the model's, or from a camera with another offset. On
#: the confocal z-stack of ../shared/data (offset about 1.7k grey levels), its own fitting
#: planes have 0.04 % there and every plane under a model fitted on 5 of them at most 0.02 %;
#: a dim 2D image given a model of that stack had all of its pixels there. Plain background
#: can have some: the floor lies (read noise variance / gain) below the camera's offset, so
#: with 1 electron of read noise about 8 % of a plane of background lies under it, flattened
#: but harmless. Refused: most of the plane, where the result no longer follows the image.
UNCOVERED_LIMIT = 0.5
#: A model also refuses a plane with most of it darker than nearly all of what it was fitted
#: on: below this percentile of the fitted planes (after the noise-aware transforms). The
#: networks have never seen such values, and lift them to the darkest they saw: a model of a
#: confocal stack (camera offset about 1.7k) applied to the same planes divided by 3 put their
#: background at the stack's, a mean of 3200 for 2100. Every plane of that 60-plane stack
#: has at most 2.2 % of its pixels below the 1st percentile of the 5 planes a model is fitted on.
DARK_PERCENTILE = 1.0
#: Planes of at most this many pixels in all go through the networks together.
BATCH_PIXELS = 1024 * 1024


class NotCovered(ValueError):
    """A model refuses a plane it does not cover (see ``Denoiser._uncovered``): ``finding``
    says what is wrong, the message adds what to do in Python and on the command line (the
    dock says it in its own words)."""

    def __init__(self, finding: str) -> None:
        self.finding = finding
        super().__init__(f"{finding}. Fit a model on this image or on planes that include this one (fit "
                         "--planes, or fit(planes=...)), or denoise it without a model, which fits such a "
                         "plane on its own")


@dataclass
class Denoiser:
    """Two fitted networks and what reproduces their results; see the module's description."""

    f: nn.Module
    g: nn.Module
    settings: Settings
    #: Channels the networks take: 1 (grey) or 3 (colour; the alpha of RGBA is passed through).
    channels: int
    #: The intensities mapped to 0 and 1, per channel (after the noise-aware transforms).
    low: np.ndarray
    high: np.ndarray
    noise: NoiseModel | None = None
    seed: int = 0
    #: The planes it was fitted on (numbers of the flattened leading axes).
    planes: tuple[int, ...] = (0,)
    version: str = __version__
    #: With ``settings.wiener`` and no noise model: the variance the filtering takes instead,
    #: per channel, in the units of the data before the [0, 1] map (``wiener.residual_variance``
    #: of the planes fitted on), so that every plane and tile it is applied to gets the same.
    residual: tuple[float, ...] | None = None
    #: With ``settings.declip``, where the image it was fitted on was clipped and its noise is
    #: Gaussian or could not be estimated: the noise's sigma and the clipping limits, whose
    #: bias every result is freed of (see :mod:`.clipping`).
    clipping: Clipping | None = None
    #: The :data:`DARK_PERCENTILE` of the planes fitted on, after the noise-aware transforms,
    #: per channel (opponent colours: of their luminance only, the colour ones vary from image
    #: to image): what a plane to apply it to must mostly lie above. None: not known (a file
    #: saved by an older version), not checked.
    dark: tuple[float, ...] | None = None

    @property
    def rgb(self) -> bool:
        return self.channels == 3

    @property
    def device(self) -> torch.device:
        return next(self.f.parameters()).device

    def to(self, device: str | torch.device) -> Denoiser:
        """Move the networks to ``device`` (in place); returns the model."""
        dev = resolve_device(device)
        for net in (self.f, self.g):
            net.to(dev)
            if self.settings.channels_last and dev.type != "mps":
                net.to(memory_format=torch.channels_last)
        return self

    def describe(self) -> str:
        """One line for people."""
        kind = "colour" if self.rgb else "grey"
        planes = f"{len(self.planes)} plane{'s' if len(self.planes) != 1 else ''}"
        return f"N2D model for {kind} images, fitted on {planes} (napari-noise2detail {self.version})"

    # -- applying ---------------------------------------------------------------------------
    def apply_iter(
        self,
        image: Any,
        *,
        rgb: bool | None = None,
        device: str | torch.device | None = None,
        threads: int | None = None,
        out: Mapping[str, Any] | None = None,
        planes: Sequence[int] | None = None,
        refit: bool = False,
    ) -> Generator[Progress, None, DenoiseResult]:
        """Like :meth:`apply`, as a generator: yields :class:`Progress`, returns the result.

        The image, ``out`` and ``planes`` are checked before the generator is returned.
        """
        if rgb is None and self.rgb and not (np.ndim(image) >= 3 and np.shape(image)[-1] in (3, 4)):
            raise ValueError(_channel_mismatch(self.channels, 1))
        image, info = inspect(image, self.rgb if rgb is None else rgb)
        if info.fitted != self.channels:
            raise ValueError(_channel_mismatch(self.channels, info.fitted))
        check_threads(threads)
        chosen = list(range(info.planes)) if planes is None else _check_planes(planes, info.planes, "to apply to")
        if device is not None:
            self.to(device)
        outputs = _outputs(info, out)
        return self._apply(image, info, outputs, threads, chosen, refit)

    def apply(
        self,
        image: Any,
        *,
        rgb: bool | None = None,
        device: str | torch.device | None = None,
        threads: int | None = None,
        out: Mapping[str, Any] | None = None,
        planes: Sequence[int] | None = None,
        refit: bool = False,
        progress: Callable[[Progress], object] | None = None,
    ) -> DenoiseResult:
        """Denoise ``image`` with the fitted networks, without fitting.

        image: ``(..., Y, X)``, or ``(..., Y, X, C)`` for a model fitted on colour images;
            a numpy array or a lazy array (dask, zarr), read a plane at a time.
        rgb: whether the last axis is colour; None: as the images the model was fitted on.
        device: where to run (the model moves there); None: where the model is.
        threads: CPU threads (None: all of them).
        out: arrays to write the results into, by kind (``"partial"``, ``"smooth"``,
            ``"detail"``), shaped like the image: e.g. zarr arrays, so that nothing is held
            in memory. Kinds left out are not kept. None: new float32 numpy arrays.
        planes: only these planes of a stack (numbers of the flattened leading axes), e.g. a
            block of a long stack on one worker of a cluster; the outputs keep the image's
            shape and their other planes are not written. None: every plane.
        refit: a plane the model does not cover (mostly darker than nearly all it was fitted
            on: a blank frame, a plane beyond the sample) is fitted on its own, warm-started
            from this model, as denoising plane by plane would, instead of refused (which
            planes: ``DenoiseResult.refitted``). For a model fitted on a few planes of this
            same stack; a model fitted on other images refuses them, as it should.
        progress: called after every plane; return False to cancel (raises
            :class:`Cancelled`).
        """
        run = self.apply_iter(image, rgb=rgb, device=device, threads=threads, out=out, planes=planes, refit=refit)
        return drive(run, progress, "applying the model was cancelled")

    def _apply(
        self, image: Any, info: ImageInfo, outputs: dict[str, Any], threads: int | None, planes: list[int],
        refit: bool = False,
    ) -> Generator[Progress, None, DenoiseResult]:
        began = time.perf_counter()
        device = self.device
        settings = tiled_for(self.settings, device)
        most = threads or torch.get_num_threads()
        with torch_threads(most):
            count = len(planes)
            yield Progress(planes[0], info.planes, 0, 0, count, None, 0.0)
            tiled = max(info.height, info.width) > PLANE_TILE
            per = 1 if tiled else max(1, min(16, BATCH_PIXELS // (info.height * info.width)))
            refitted: list[int] = []
            for first in range(0, count, per):
                batch = planes[first : first + per]
                if tiled:
                    alone = [] if self._apply_tiled(image, info, batch[0], outputs, settings, refit) else batch
                else:
                    raw = [read_plane(image, info, i) for i in batch]
                    prepared = [self._prepare(plane) for plane in raw]  # for the check and the stages alike
                    covered = [self._covers(self._uncovered(plane, ready), plane[..., 0].size,
                                            _plane_name(info, i), refit)
                               for i, plane, ready in zip(batch, raw, prepared)]
                    kept = [k for k, ok in enumerate(covered) if ok]
                    if kept:
                        stages = self._stages([raw[k] for k in kept], settings, prepared=[prepared[k] for k in kept])
                        for k, planes_stages in zip(kept, stages):
                            _write(outputs, info, batch[k], planes_stages, raw[k])
                    alone = [i for i, ok in zip(batch, covered) if not ok]
                done = first + len(batch)
                for number, i in enumerate(alone):  # each its share of the batch's progress
                    share = len(batch) / count / len(alone)
                    fitted = yield from self._fitted_alone(image, info, i, outputs, threads,
                                                           first / count + number * share, share, done / count)
                    refitted += [i] if fitted else []
                yield Progress(batch[-1], info.planes, 0, done, count, None, done / count)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # hand the GPU memory back to the user's other tools
        return DenoiseResult(
            *(outputs.get(kind) for kind in KINDS), describe_device(device, threads), self.settings,
            time.perf_counter() - began, self.noise, self.clipping, tuple(refitted),
        )

    def _fitted_alone(
        self, image: Any, info: ImageInfo, plane: int, outputs: dict[str, Any], threads: int | None,
        before: float, share: float, most: float,
    ) -> Generator[Progress, None, bool]:
        """A plane this model does not cover, fitted on its own (warm-started from this model,
        with its settings and seed: what denoising the stack plane by plane does) and written;
        its fit's events cover ``share`` of the run from ``before`` (never past ``most``, the
        fraction of the event that follows). False: a constant plane (a blank frame of zeros,
        say), written as it is, as plane by plane does, for there is nothing to fit."""
        raw = read_plane(image, info, plane)
        # as it is (its own fit estimates its noise afresh: under this model's stabilising
        # transform a blank frame below the camera's offset would be constant)
        if is_constant(prepare(raw[..., : self.channels], None, self._decorrelate), self._decorrelate):
            _write(outputs, info, plane, [raw[..., : self.channels]] * len(KINDS), raw)
            return False
        run = _fit_run(image, info, self.settings, self.device, self.seed, threads, [plane], self)
        model = yield from relabelled(run, lambda event: replace(
            event, plane=plane, planes=info.planes, fraction=min(before + share * event.fraction, most)))
        drive(model._apply(image, info, outputs, threads, [plane]), None)
        return True

    def _stages(
        self, raw: Sequence[np.ndarray], settings: Settings, ranges: Sequence[tuple] | None = None,
        origin: tuple[int, int] = (0, 0), prepared: Sequence[np.ndarray] | None = None,
    ) -> list[list[np.ndarray]]:
        """s1, s2, s3 of each raw ``(H, W, C)`` plane (or tile), in its intensity units. Each
        is mapped to [0, 1] with the model's range, widened to take in the plane's own where
        that reaches further (``ranges``: given for tiles, which must share their plane's;
        ``origin``: a tile's place in its plane; ``prepared``: the planes made ready already)."""
        prepared = prepared if prepared is not None else [self._prepare(plane) for plane in raw]
        if ranges is None:
            ranges = [union_range((self.low, self.high), self._range(p), self._decorrelate) for p in prepared]
        units = [to_unit(p, low, high) for p, (low, high) in zip(prepared, ranges)]
        y = _to_tensor(units, self.device, settings)
        with torch.no_grad():
            s1, s2 = smooth(self.f, y, settings)
            s3 = finish(y, detail(self.g, s2, settings), self.noise, ranges, settings, origin, self.residual)
        height, width = raw[0].shape[:2]
        return [
            [self.restore(plane_from_tensor(s, i, height, width), *ranges[i]) for s in (s1, s2, s3)]
            for i in range(len(raw))
        ]

    def _apply_tiled(
        self, image: Any, info: ImageInfo, plane: int, outputs: dict[str, Any], settings: Settings,
        refit: bool = False,
    ) -> bool:
        """One plane in tiles of :data:`PLANE_TILE`, each read with the context the stages
        need (``stages.halo``); the plane's range is gathered from its tiles first. False:
        not written, the model does not cover it (see :meth:`_covers`)."""
        tiles = [(top, left) for top in range(0, info.height, PLANE_TILE)
                 for left in range(0, info.width, PLANE_TILE)]
        plane_range = (self.low, self.high)
        uncovered = 0
        for top, left in tiles:
            part = read_plane(image, info, plane, slice(top, top + PLANE_TILE), slice(left, left + PLANE_TILE))
            ready = self._prepare(part)
            plane_range = union_range(plane_range, self._range(ready), self._decorrelate)
            uncovered += self._uncovered(part, ready)
        if not self._covers(uncovered, info.height * info.width, _plane_name(info, plane), refit):
            return False
        margin = halo(settings)
        for top, left in tiles:
            t0, l0 = max(top - margin, 0), max(left - margin, 0)
            bottom, right = min(top + PLANE_TILE, info.height), min(left + PLANE_TILE, info.width)
            rows = slice(t0, min(bottom + margin, info.height))
            cols = slice(l0, min(right + margin, info.width))
            part = read_plane(image, info, plane, rows, cols)
            (stages,) = self._stages([part], settings, [plane_range], (t0, l0))
            inner = (slice(top - t0, bottom - t0), slice(left - l0, right - l0))
            _write(outputs, info, plane, [s[inner] for s in stages], part[inner],
                   (slice(top, bottom), slice(left, right)))
        return True

    # -- the noise-aware transforms around the networks ------------------------------------
    @property
    def _decorrelate(self) -> bool:
        return self.settings.decorrelate and self.channels == 3

    @property
    def _stabilised(self) -> bool:
        return self.noise is not None and self.noise.stabilised

    def _uncovered(self, plane: np.ndarray, prepared: np.ndarray | None = None) -> int:
        """Values of a raw ``(H, W, C)`` plane that the model does not cover: below what the
        stabilising transform tells apart, or darker than nearly all it was fitted on
        (:attr:`dark`; ``prepared``: the plane made ready already, see :meth:`_prepare`)."""
        raw = plane[..., : self.channels]
        below = raw < floor(self.noise) if self._stabilised else np.zeros(raw.shape, bool)
        if self.dark is not None:
            prepared = self._prepare(plane) if prepared is None else prepared
            dark = prepared[..., : len(self.dark)] < np.asarray(self.dark)
            if len(self.dark) < self.channels:  # opponent colours: their luminance stands for all the pixel's values
                dark = dark.any(axis=-1, keepdims=True)
            below = below | dark
        return int(np.count_nonzero(below))

    def _covers(self, uncovered: int, pixels: int, plane: str, refit: bool = False) -> bool:
        """Whether the model covers a plane with ``uncovered`` values of its ``pixels`` (see
        :meth:`_uncovered`); where it does not, False with ``refit``, else ValueError."""
        if uncovered > UNCOVERED_LIMIT * pixels * self.channels:
            if refit:
                return False
            share = 100 * uncovered / (pixels * self.channels)
            level = self._darkest()
            below = f" (below {level:.4g})" if level is not None else ""
            raise NotCovered(
                f"{share:.0f} % of {plane} is darker than nearly all of what this model was fitted "
                f"on{below}: it was fitted on brighter images (or brighter planes of this stack), or on a "
                "camera with another offset, and would lift or flatten those pixels")
        return True

    def _darkest(self) -> float | None:
        """The level :meth:`_uncovered` counts below, in the data's units (grey images)."""
        levels = [floor(self.noise)] if self._stabilised else []
        if self.dark is not None and not self._decorrelate:
            dark = self.dark[0]
            if self._stabilised:  # forward() undone: 2/a sqrt(a z + 3/8 a^2 + b) = dark
                a, b = self.noise.a, self.noise.b
                dark = ((dark * a / 2) ** 2 - 0.375 * a * a - b) / a
            levels.append(dark)
        return max(levels) if levels and self.channels == 1 else None

    def _prepare(self, plane: np.ndarray) -> np.ndarray:
        """A raw ``(H, W, C)`` plane as the networks' float64 data (before the [0, 1] map)."""
        return prepare(plane[..., : self.channels], self.noise if self._stabilised else None, self._decorrelate)

    def restore(self, unit: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        back = from_unit(unit, low, high)
        if self._decorrelate:
            back = from_opponent(back)
        if self._stabilised:
            back = inverse(back, self.noise)
        if self.clipping is not None:
            back = declip(back, self.clipping)
        return back

    def _range(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return data_range(data, self._decorrelate)

    # -- saving (the file format: see :mod:`.model_file`) --------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to one file (safetensors: weights and a JSON header), atomically."""
        from .model_file import save

        return save(self, path)

    def to_bytes(self) -> bytes:
        """The contents of the model file, e.g. to send to other processes."""
        from .model_file import to_bytes

        return to_bytes(self)


# --- fitting ------------------------------------------------------------------------------


def fit_iter(
    image: Any,
    *,
    rgb: bool = False,
    preset: str | Settings = "fast",
    planes: Sequence[int] | None = None,
    among: Sequence[int] | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    threads: int | None = None,
    start: Denoiser | None = None,
    **settings: object,
) -> Generator[Progress, None, Denoiser]:
    """Like :func:`fit`, as a generator: yields :class:`Progress`, returns the model.

    Everything is checked before the generator is returned, so bad input raises at once.
    """
    image, info = inspect(image, rgb)
    if planes is not None and among is not None:
        raise ValueError("choose the planes to fit on, or the planes to choose them among, not both")
    if planes is None:  # constant ones are swapped as the run starts: nothing is read before
        among = _check_planes(range(info.planes) if among is None else among, info.planes, "to choose among")
    planes = _check_planes(planes_to_fit(among) if planes is None else planes, info.planes)
    if len(planes) > 1 and settings.get("stabilise") is None:
        # One model for planes of different brightness: with shot noise their noise differs
        # in kind, unless stabilised (docs/benchmarks.md: -0.24 and -0.38 dB against fitting
        # plane by plane without, -0.12 and -0.14 with).
        settings = {**settings, "stabilise": True}
    chosen = resolve_settings(preset, **settings)
    dev = resolve_device(device)
    check_threads(threads)
    if start is not None and start.channels != info.fitted:
        raise ValueError(_channel_mismatch(start.channels, info.fitted))
    return _fit_run(image, info, chosen, dev, check_seed(seed), threads, planes, start, among)


def fit(
    image: Any,
    *,
    rgb: bool = False,
    preset: str | Settings = "fast",
    planes: Sequence[int] | None = None,
    among: Sequence[int] | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    threads: int | None = None,
    start: Denoiser | None = None,
    progress: Callable[[Progress], object] | None = None,
    **settings: object,
) -> Denoiser:
    """Fit N2D to ``image`` and return the fitted :class:`Denoiser`, to apply and to save.

    image: ``(Y, X)``, a stack ``(..., Y, X)``, or with ``rgb=True`` ``(..., Y, X, C)``;
        numpy or lazy (dask, zarr: only the planes fitted on are read).
    planes: the planes of a stack to fit on (numbers of the flattened leading axes); one
        pair of networks is fitted to all of them. None: :data:`FIT_PLANES` spread evenly
        (all, for fewer planes; a constant one, a dropped frame, swapped for the nearest
        plane that is not). Fitted on several planes, shot noise is stabilised unless
        ``stabilise=False`` is given: one model then suits planes of any brightness.
    among: instead of ``planes``, the planes to spread them over (a channel's, say; the
        same choice, made among these).
    start: a model to continue fitting from (a neighbouring acquisition, say), with the
        shorter warm fit of the preset; it is not changed.
    preset, device, seed, threads, progress, settings: as for :func:`denoise`.
    """
    run = fit_iter(image, rgb=rgb, preset=preset, planes=planes, among=among, device=device, seed=seed,
                   threads=threads, start=start, **settings)
    return drive(run, progress, "fitting was cancelled")


def _fit_run(
    image: Any, info: ImageInfo, settings: Settings, device: torch.device, seed: int,
    threads: int | None, planes: list[int], start: Denoiser | None, among: Sequence[int] | None = None,
) -> Generator[Progress, None, Denoiser]:
    """``among``: the planes ``planes`` were spread over, for a constant one to be swapped
    (see :func:`_not_constant`); None: chosen by hand, fitted on as they are."""
    settings = resolve_for(settings, device)
    most, tuner = fitting_threads(threads, device)
    with torch_threads(most):
        raw = [read_plane(image, info, i) for i in planes]
        if among is not None:
            planes, raw = _not_constant(image, info, among, planes, raw)
        raw = np.stack(raw)
        noise = noise_of(raw[..., : info.fitted], settings)
        run = fit_planes(raw[..., : info.fitted], noise, settings, device, seed, planes, start, tuner)
        model, _stages = yield from fit_progress(run, settings, start is not None, planes[0], info.planes, 0.0, 1.0,
                                                 len(planes))
    return model


def fit_planes(
    raw: np.ndarray, noise: NoiseModel | None, settings: Settings, device: torch.device, seed: int,
    planes: Sequence[int], start: Denoiser | None = None, tuner: AdaptiveThreads | None = None,
) -> Generator[StageEvent, None, tuple[Denoiser, tuple[torch.Tensor, ...]]]:
    """Fit the networks to the raw planes ``(K, H, W, C)``: yields the stages' events, returns
    the model and its stage outputs on these planes (as tensors in [0, 1])."""
    channels = raw.shape[-1]
    decorrelate = settings.decorrelate and channels == 3
    stabilising = noise if noise is not None and noise.stabilised else None
    prepared = [prepare(plane, stabilising, decorrelate) for plane in raw]
    low, high = data_range(prepared[0], decorrelate)
    for data in prepared[1:]:
        low, high = union_range((low, high), data_range(data, decorrelate), decorrelate)
    if not np.all(high > low):
        raise ValueError("the image is constant (isolated outlying pixels, taken for hot pixels, "
                         "aside): there is nothing to fit")
    y = _to_tensor([to_unit(p, low, high) for p in prepared], device, settings)
    warm = (start.f, start.g) if start is not None else None
    tiled = tiled_for(settings, device)  # the model keeps the setting
    (s1, s2, s3), (f, g) = yield from n2d_plane(y, tiled, seed, warm, tuner)
    residual = None
    if settings.wiener:
        yield 4, 0, 1, None, None  # the filtering takes a while on big planes: say so
        if noise is None:  # the filtering's variance, in the data's units
            scale = np.broadcast_to(np.asarray(high, np.float64) - np.asarray(low, np.float64), (channels,))
            residual = tuple(float(v) for v in residual_variance(y, s3).cpu().numpy() * scale**2)
    stages = (s1, s2, finish(y, s3, noise, [(low, high)] * len(raw), tiled, residual=residual))
    model = Denoiser(f, g, settings, channels, low, high, noise, seed, tuple(int(p) for p in planes),
                     residual=residual, dark=darkest(prepared, 1 if decorrelate else channels))
    if settings.declip and not decorrelate:  # the clipping's bias, measured against the result
        height, width = raw.shape[1:3]
        model.clipping = find_clipping(raw, noise, lambda: np.stack(
            [model.restore(plane_from_tensor(stages[2], i, height, width), low, high) for i in range(len(raw))]))
    return model, stages


def finish(
    y: torch.Tensor, s3: torch.Tensor, noise: NoiseModel | None, ranges: Sequence[tuple], settings: Settings,
    origin: tuple[int, int] = (0, 0), residual: Sequence[float] | None = None,
) -> torch.Tensor:
    """Stage 3's result ``s3`` of the planes ``y`` (in [0, 1], mapped with ``ranges``), or,
    with ``settings.wiener``, ``y`` filtered in groups matched on it (see :mod:`.wiener`),
    with the noise model, or else the ``residual`` variance (see :attr:`Denoiser.residual`)."""
    if not settings.wiener:
        return s3
    out = torch.empty_like(s3)
    decorrelated = settings.decorrelate and y.shape[1] == 3
    for i, (low, high) in enumerate(ranges):
        variance = _unit_noise(noise, low, high, decorrelated, residual)
        # RGB is filtered in opponent colours, unless it was fitted in them already
        out[i : i + 1] = collaborative_wiener(y[i : i + 1], s3[i : i + 1], variance, origin=origin,
                                              colour=y.shape[1] == 3 and not decorrelated)
    return out


def _unit_noise(
    noise: NoiseModel | None, low: np.ndarray, high: np.ndarray, decorrelate: bool,
    residual: Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The noise variance ``a * signal + b`` in the [0, 1] units the networks work in, per
    channel (``low``, ``high``: the intensities mapped to 0 and 1): from the noise model, or
    else the constant ``residual`` variance (in the data's units); None where neither is
    known (then the residual of each plane, see :func:`.wiener.collaborative_wiener`)."""
    scale = np.asarray(high, np.float64) - np.asarray(low, np.float64)
    if noise is None:
        if residual is None:
            return None
        b = np.asarray(residual, np.float64) / scale**2
        return torch.zeros(len(b)), torch.from_numpy(b.astype(np.float32))
    if noise.stabilised:  # the variance-stabilised image has noise of variance 1
        a, b = np.zeros_like(scale), 1.0 / scale**2
    elif decorrelate:  # opponent colours mix the channels: their variance at a typical signal
        a, b = np.zeros_like(scale), np.full_like(scale, float(noise.variance(noise.level))) / scale**2
    else:  # signal = low + unit * scale
        a, b = noise.a / scale, (noise.a * np.asarray(low, np.float64) + noise.b) / scale**2
    return torch.from_numpy(np.asarray(a, np.float32)), torch.from_numpy(np.clip(b, 0, None).astype(np.float32))


def resolve_for(settings: Settings, device: torch.device) -> Settings:
    """The settings as they will run on ``device``: "auto" precision decided."""
    return replace(settings, precision=resolve_precision(settings.precision, device))


def tiled_for(settings: Settings, device: torch.device) -> Settings:
    """The settings with the tile that ``device`` applies the networks fastest in (see
    ``device.inference_tile``): for running only, never kept in a model."""
    return replace(settings, tile=inference_tile(settings.tile, device, settings.width, settings.apply_precision))


def noise_of(raw: np.ndarray, settings: Settings) -> NoiseModel | None:
    """The noise estimated from raw planes ``(K, H, W, C)``, marked stabilised when the
    settings ask for it and it is shot noise."""
    noise = estimate_noise(np.moveaxis(raw, -1, 1))
    if noise is not None and settings.stabilise and noise.signal_dependent:
        noise = replace(noise, stabilised=True)
    return noise


# --- shared pieces ------------------------------------------------------------------------


def prepare(plane: np.ndarray, stabilising: NoiseModel | None, decorrelate: bool) -> np.ndarray:
    """``(H, W, C)`` raw data as float64 in the space N2D is fitted in: variance-stabilised
    (shot noise), then opponent colours, where asked for."""
    data = plane.astype(np.float64)
    if stabilising is not None:
        data = forward(data, stabilising)
    if decorrelate:
        data = to_opponent(data)
    return data


def _plane_name(info: ImageInfo, plane: int) -> str:
    """``plane``, for people: with its index along each leading axis where there are several."""
    if len(info.lead) < 2:
        return f"plane {plane}"
    return f"plane {plane} (index {', '.join(map(str, info.index(plane)))} of the axes before Y and X)"


def refit_note(planes: Sequence[int], info: ImageInfo) -> str:
    """For people: the planes of a stack (``DenoiseResult.refitted``) fitted on their own
    because the model fitted once on a few of its planes did not cover them; "" for none."""
    if not planes:
        return ""
    several = len(info.lead) > 1
    names = [f"{p} (index {', '.join(map(str, info.index(p)))})" if several else str(p) for p in planes[:5]]
    shown = ", ".join(names) + (f" and {len(planes) - 5} more" if len(planes) > 5 else "")
    which = f"plane {shown} was fitted on its own" if len(planes) == 1 else f"planes {shown} were fitted on their own"
    numbered = "numbered from 0" + (", the index along the axes before Y and X" if several else "")
    return f"{which}: mostly darker than the planes the model was fitted on ({numbered})"


def darkest(prepared: Sequence[np.ndarray], channels: int) -> tuple[float, ...]:
    """:attr:`Denoiser.dark` of the prepared ``(H, W, C)`` planes, for the first ``channels``."""
    return tuple(float(np.percentile(np.concatenate([p[..., c].ravel() for p in prepared]), DARK_PERCENTILE))
                 for c in range(channels))


def data_range(data: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`unit_range` as arrays with one value per channel."""
    low, high = unit_range(data, per_channel=per_channel)
    channels = data.shape[-1]
    return (np.broadcast_to(np.asarray(low, np.float64), (channels,)).copy(),
            np.broadcast_to(np.asarray(high, np.float64), (channels,)).copy())


def union_range(a: tuple, b: tuple, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """The range that holds both ranges; per-channel ranges keep one width for all channels
    (see :func:`unit_range`)."""
    low, high = np.minimum(a[0], b[0]), np.maximum(a[1], b[1])
    if per_channel:
        high = low + float((high - low).max())
    return low, high


def _to_tensor(units: Sequence[np.ndarray], device: torch.device, settings: Settings) -> torch.Tensor:
    """``(H, W, C)`` float32 planes -> ``(B, C, H', W')`` on ``device``, reflect-padded so
    that H' and W' divide by 4."""
    x = torch.from_numpy(np.ascontiguousarray(np.stack(units))).permute(0, 3, 1, 2).to(device)
    pad_h, pad_w = (-x.shape[-2]) % 4, (-x.shape[-1]) % 4
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    if settings.channels_last and device.type != "mps":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def plane_from_tensor(x: torch.Tensor, index: int, height: int, width: int) -> np.ndarray:
    return x[index, :, :height, :width].permute(1, 2, 0).float().cpu().numpy()


def _outputs(info: ImageInfo, out: Mapping[str, Any] | None) -> dict[str, Any]:
    """Where results go: the arrays given (checked), or new float32 arrays."""
    if out is None:
        return {kind: np.zeros(info.shape, np.float32) for kind in KINDS}
    unknown = sorted(set(out) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown output(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    for kind, array in out.items():
        if tuple(array.shape) != info.shape:
            raise ValueError(f"the {kind} output is shaped {tuple(array.shape)}, the image {info.shape}")
    return dict(out)


def _write(
    outputs: dict[str, Any], info: ImageInfo, plane: int, stages: Sequence[np.ndarray], raw: np.ndarray,
    where: tuple[slice, slice] = (slice(None), slice(None)),
) -> None:
    """Write a plane's (or a tile's) stages; an alpha channel is passed through."""
    index = info.index(plane) + where
    for kind, values in zip(KINDS, stages):
        if kind not in outputs:
            continue
        block = values.astype(np.float32)
        if raw.shape[-1] > block.shape[-1]:  # RGBA: the alpha as it was
            block = np.concatenate([block, raw[..., block.shape[-1]:].astype(np.float32)], axis=-1)
        outputs[kind][index] = block if info.rgb else block[..., 0]


def _check_planes(planes: Sequence[int], count: int, what: str = "to fit on") -> list[int]:
    chosen = [int(p) for p in planes]
    if not chosen:
        raise ValueError(f"choose at least one plane {what}")
    bad = [p for p in chosen if not 0 <= p < count]
    if bad:
        raise ValueError(f"plane(s) {', '.join(map(str, bad))} do not exist: the image has {count} plane(s)")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"each plane {what} may be chosen once")
    return chosen


def _channel_mismatch(model: int, image: int) -> str:
    def kind(n: int) -> str:
        return "grey (1 channel)" if n == 1 else f"colour ({n} channels)"

    return f"this model was fitted on {kind(model)} images; this image is {kind(image)}"


def fit_progress(
    run: Generator[StageEvent, None, Any], settings: Settings, warm: bool, plane: int, planes: int,
    before: float, share: float, fitted_on: int = 1,
) -> Generator[Progress, None, Any]:
    """The stages' events of one fit (of ``fitted_on`` planes together, from ``plane`` of
    ``planes``) as :class:`Progress`; the fit covers ``share`` of the run's fraction, starting
    at ``before``."""
    fit1, fit3 = settings.fits(warm=warm)
    work = (fit1.steps + fit3.steps) or 1
    while True:
        try:
            stage, step, total, loss, held_out = next(run)
        except StopIteration as done:
            return done.value
        within = step if stage == 1 else fit1.steps + (step if stage == 3 else 0)
        if (stage == 2 and fit3.steps == 0) or stage == 4:
            within = work
        fraction = min(before + share * within / work, 1.0)
        yield Progress(plane, planes, stage, step, total, loss, fraction, held_out, fitted_on)


def drive(
    run: Generator[Progress, None, Any], progress: Callable[[Progress], object] | None,
    cancelled: str = "cancelled",
) -> Any:
    """Run a generator to its end, passing its events to ``progress``; returning False
    cancels the run (:class:`Cancelled` with the message ``cancelled``)."""
    while True:
        try:
            event = next(run)
        except StopIteration as done:
            return done.value
        if progress is not None and progress(event) is False:
            run.close()
            raise Cancelled(cancelled)

"""Denoise many images in one go: files, folders, globs or in-memory arrays (layers).

Qt-free and napari-free. :func:`run_batch` is a generator, like the engine's ``denoise_iter``:
it yields :class:`BatchProgress` events and returns a :class:`BatchSummary`; closing it cancels
between two fitting steps. The command line and the napari "Batch denoise..." widget both drive
it, so what is skipped, how outputs are named and written, and how failures are reported is
decided here only.

Each input ``<stem>.<ext>`` gives ``<stem>_n2d_detail.tif`` (and ``<stem>_n2d_smooth.tif`` when
asked) in the output folder, written under a temporary name and renamed when complete. A zarr
or OME-Zarr input, and a lazy (dask, zarr) array, gives OME-Zarr outputs
(``<stem>_n2d_detail.ome.zarr``) written plane by plane, so that it is never loaded whole.
Inputs are only ever opened for reading, and an output that would land on an input is refused.

How each image is denoised: with a saved model (``BatchOptions.model``) when one is given, no
fitting; otherwise a channel at a time (a stack with a channel axis: see :func:`channel_planes`),
a lazy input, or a channel of enough planes (``engine.model.fits_once``), fitted once on a few
planes and the model applied to all; anything else plane by plane.
"""

from __future__ import annotations

import glob
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generator, Iterable, Mapping, Sequence, Union

import numpy as np

from .engine import Cancelled, Denoiser, Progress, fit_iter, load_model
from .engine.device import resolve_device
from .engine.model import drive
from .engine.planes import ImageInfo, channel_groups, inspect, is_lazy
from .engine.presets import Settings, resolve_settings
from .engine.results import relabelled
from .engine.stack import denoise_stack_iter, results_note
from .engine.threads import check_threads
from .io import TIFF_SUFFIXES, ImageMeta, read_image, write_image, write_problem
from .io.atomic import making_folder
from .io.zarr import ZarrImage, colour_last, is_zarr, ome_layout, ome_zarr_outputs, enclosing_store, read_zarr, zarr_images

#: What a folder scan picks up. TIFFs are read with tifffile, the rest with napari's readers.
IMAGE_SUFFIXES = (*TIFF_SUFFIXES, ".png", ".jpg", ".jpeg", ".bmp", ".jp2", ".czi", ".nd2", ".lif",
                  ".ims", ".oib", ".oif", ".vsi", ".npy")
#: The output kinds, in the order they are written.
OUTPUT_KINDS = ("detail", "smooth")
#: Output dtypes: float32 (the engine's output, exact), or the input's (rounded and clipped).
DTYPES = ("float32", "input")

_OUTPUT_NAME = re.compile(r"_n2d_(detail|smooth)\.(tif|ome\.zarr)$", re.IGNORECASE)
# \w keeps letters of any script; drops / \ : * ? " < > | and napari's brackets ("zs [1]" -> "zs_1"),
# with the spaces around them
_UNSAFE = re.compile(r"\s*[^\w.\- ]+\s*")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}


@dataclass(frozen=True)
class ArrayItem:
    """An image already in memory (e.g. a napari layer), denoised like a file."""

    #: Shown in progress and summaries; the output stem is its sanitised form.
    name: str
    #: Array-like. A lazy one (dask, zarr: a layer too large for memory) is read a plane at a
    #: time and its results written plane by plane into OME-Zarr outputs, as for a zarr input.
    data: Any
    meta: ImageMeta = ImageMeta()
    rgb: bool = False
    #: Where it lies (a layer's translate, one per axis but colour): kept in OME-Zarr outputs,
    #: which viewers then place over it.
    translation: tuple[float, ...] | None = None


Item = Union[str, os.PathLike, ArrayItem]


@dataclass(frozen=True)
class BatchOptions:
    """How to denoise and what to write; shared by every item of a batch."""

    preset: str = "fast"
    device: str = "auto"
    save_smooth: bool = False
    overwrite: bool = False
    #: "float32" or "input" (the input's dtype, rounded and clipped to its range).
    dtype: str = "float32"
    #: Colour images: None reads it from each file (a TIFF's sample axis, a layer's rgb flag).
    rgb: bool | None = None
    seed: int = 0
    #: A saved model (``.n2d`` file, see ``Denoiser.save``) to apply to every image, without
    #: fitting; or a Denoiser; or one per channel (a sequence of them, in channel order, e.g.
    #: from ``fit --channel N``), each applied to its channel. None: each image is fitted.
    #: (:func:`run_batch` makes it a tuple of Denoisers.)
    model: str | os.PathLike | Denoiser | Sequence[str | os.PathLike | Denoiser] | None = None
    #: CPU threads: None adapts the fitting to the load (see ``engine.threads``); a number fixes it.
    threads: int | None = None
    #: Engine settings overriding the preset, e.g. ``{"steps": 5}``.
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemResult:
    """What happened to one item: ``status`` is "done", "skipped" or "failed"; ``reason``: why it
    failed, or a note on how a done one went (planes fitted on their own, say)."""

    name: str
    source: str
    status: str
    reason: str = ""
    outputs: tuple[Path, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True)
class BatchProgress:
    """One event of a batch. ``index`` is 0-based; ``fraction`` covers the whole batch (0..1).

    ``progress`` is the engine's event while an item is being denoised (None while it is read);
    ``result`` is set on the one event that ends each item.
    """

    index: int
    total: int
    name: str
    fraction: float
    seconds_left: float | None
    progress: Progress | None = None
    result: ItemResult | None = None
    #: On a cluster: how many of its tasks are running (an image, or a long stack's fit or block).
    running: int = 0
    #: On a cluster: how many images have ended. They end in any order, so this is what the
    #: status counts, rather than the place of the image an event names.
    done: int | None = None

    def describe(self) -> str:
        """One line for a status bar, e.g. ``"2/5 a.tif: stage 3/3 (detail recovery), step 40/800, 3 min 10 s left"``."""
        left = "" if self.seconds_left is None else f", {format_duration(self.seconds_left)} left"
        running = f" ({self.running} running)" if self.running else ""
        if not self.name:  # on a cluster, while no image ends
            return f"{self.done or 0}/{self.total} done{running}{left}"
        if self.result is not None:
            what = self.result.status + (f" ({self.result.reason})" if self.result.reason else "")
        elif self.progress is not None:
            what = self.progress.describe()
        else:
            what = "reading"
        if self.done is not None:
            return f"{self.done}/{self.total} done, {self.name}: {what}{running}{left}"
        return f"{self.index + 1}/{self.total} {self.name}: {what}{running}{left}"


@dataclass(frozen=True)
class BatchSummary:
    """The results of a batch, in input order; ``total`` counts the items asked for."""

    results: tuple[ItemResult, ...]
    total: int
    seconds: float = 0.0
    cancelled: bool = False

    def _with(self, status: str) -> list[ItemResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> list[ItemResult]:
        return self._with("done")

    @property
    def skipped(self) -> list[ItemResult]:
        return self._with("skipped")

    @property
    def failed(self) -> list[ItemResult]:
        return self._with("failed")

    @property
    def ok(self) -> bool:
        """Every item was denoised or already had its outputs."""
        return not self.cancelled and not self.failed and len(self.results) == self.total

    def report(self) -> str:
        """A few lines for people: counts, then each failure with its reason."""
        head = "Batch cancelled" if self.cancelled else "Batch finished"
        counts = (f"{len(self.done)} denoised, {len(self.skipped)} skipped (outputs exist), "
                  f"{len(self.failed)} failed, of {self.total} image(s)")
        left = self.total - len(self.results)
        if left:
            counts += f"; {left} not processed"
        lines = [f"{head}: {counts}, in {format_duration(self.seconds)}."]
        if self.failed:
            lines.append("Failed:")
            lines += [f"  {r.source}: {r.reason}" for r in self.failed]
        notes = [r for r in self.done if r.reason]
        if notes:
            lines.append("Notes:")
            lines += [f"  {r.source}: {r.reason}" for r in notes]
        return "\n".join(lines)


def format_duration(seconds: float) -> str:
    """``"8 s"``, ``"3 min 05 s"``, ``"2 h 10 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def safe_name(name: str) -> str:
    """``name`` as a file-name stem on any file system (for layer names)."""
    cleaned = _UNSAFE.sub("_", name).strip(" ._")[:120]  # no hidden files, no trailing dots
    if not cleaned:
        return "image"
    if cleaned.split(".")[0].upper() in _WINDOWS_RESERVED:
        cleaned = f"_{cleaned}"
    return cleaned


def output_stem(path: str | os.PathLike) -> str:
    """``a.tif`` -> ``a``; ``a.ome.tif`` -> ``a``; ``a.ome.zarr`` -> ``a``; an image inside a
    store (``a.ome.zarr/0``, bioformats2raw's layout) -> ``a_0``; ``plate.zarr/A/1/0`` -> ``plate_A_1_0``."""
    path = Path(os.path.abspath(path))  # ("." is the folder it names)
    store = enclosing_store(path)
    parts = (store.name, *path.relative_to(store).parts) if store is not None else (path.name,)
    return "_".join(_name_stem(part) for part in parts)


def _name_stem(name: str) -> str:
    """A file or store name without its suffix (both of ``.ome.tif``)."""
    for double in (".ome.tif", ".ome.tiff", ".ome.zarr"):
        if name.lower().endswith(double):
            return name[: -len(double)]
    return Path(name).stem


def output_paths(stem: str, outdir: str | os.PathLike, save_smooth: bool = False,
                 zarr: bool = False) -> dict[str, Path]:
    """The outputs of one item: ``{"detail": <stem>_n2d_detail.tif[, "smooth": ...]}``
    (``.ome.zarr`` for a zarr input)."""
    kinds = OUTPUT_KINDS if save_smooth else OUTPUT_KINDS[:1]
    suffix = ".ome.zarr" if zarr else ".tif"
    return {kind: Path(outdir) / f"{stem}_n2d_{kind}{suffix}" for kind in kinds}


def is_output_name(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like an output of this batch (never taken as an input)."""
    return bool(_OUTPUT_NAME.search(Path(path).name))


def is_image_file(path: Path) -> bool:
    """What a folder scan or glob takes: visible image files (and zarr stores) that are not
    earlier outputs."""
    return (
        not path.name.startswith(".")  # temporaries of interrupted writes, macOS ._ files
        and not is_output_name(path)
        and ((path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()) or is_zarr(path))
    )


def collect_inputs(specs: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files, folders (not recursive) and globs into a list of input files.

    A file named explicitly is taken whatever its name; folders and globs give image files only
    (see :func:`is_image_file`). A zarr store is one input, not a folder to scan; one in
    bioformats2raw's layout gives each of its images (:func:`~.io.zarr.zarr_images`).
    Duplicates are dropped. Raises ``FileNotFoundError`` for a
    path or a glob that matches nothing, so a typo is not a silently empty batch.
    """
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir() and not is_zarr(path):
            found += sorted(p for p in path.iterdir() if is_image_file(p))
        elif path.exists():
            found.append(path)
        elif glob.has_magic(str(spec)):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(str(spec)), recursive=True))
            if not matches:
                raise FileNotFoundError(f"no files match {str(spec)!r}")
            found += [m for m in matches if is_image_file(m)]
        else:
            raise FileNotFoundError(f"no such file or folder: {str(spec)!r}")
    found = [image for path in found for image in (zarr_images(path) if is_zarr(path) else []) or [path]]
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


@dataclass
class _Job:
    name: str
    source: str
    item: Path | ArrayItem
    outputs: dict[str, Path]  # the outputs to write (existing ones are left alone)
    verdict: ItemResult | None = None  # decided without denoising: skipped or failed


def run_batch(
    items: Sequence[Item],
    outdir: str | os.PathLike | None = None,
    options: BatchOptions = BatchOptions(),
    client: Any = None,
) -> Generator[BatchProgress, None, BatchSummary]:
    """Denoise ``items`` (paths or :class:`ArrayItem`) into ``outdir``, one at a time, or, given
    a Dask ``client``, as tasks on its cluster (see :mod:`.cluster`).

    ``outdir`` None writes each file's outputs beside it (arrays then need an ``outdir``).
    Options, device and outdir are checked at once (ValueError/TypeError), before the generator
    is returned. Afterwards nothing raises for one bad item: it is reported failed, with its
    reason, and the batch goes on. Close the generator to cancel: the item being denoised is
    dropped, and no output is ever left incomplete under its final name.
    """
    settings = resolve_settings(options.preset, **dict(options.settings))
    device = resolve_device(options.device)
    check_threads(options.threads)
    if options.model is not None:
        options = replace(options, model=_models(options.model, device))  # a bad file: refused now
    if options.dtype not in DTYPES:
        raise ValueError(f"unknown output dtype {options.dtype!r}; choose one of {', '.join(DTYPES)}")
    if outdir is None and any(isinstance(item, ArrayItem) for item in items):
        raise ValueError("images from memory (layers) need an output folder")
    if outdir is not None and (problem := write_problem(outdir)):
        raise ValueError(problem)  # before any image is denoised for nothing
    jobs = _plan(items, outdir, options)
    if client is not None:
        from .cluster import run_on_cluster

        return _in_folder(outdir, run_on_cluster(client, jobs, settings, options))
    return _run(jobs, settings, device, options)


def _in_folder(outdir: str | os.PathLike | None, run: Generator[BatchProgress, None, BatchSummary],
               ) -> Generator[BatchProgress, None, BatchSummary]:
    """``run`` with ``outdir`` made first, once, here: left to the workers, one whose write
    failed would remove the folder it made, still empty, under another that had just made sure
    of it. Removed again at the end if it is still empty."""
    if outdir is None:
        return (yield from run)
    with making_folder(Path(outdir), keep=False):  # (a folder holding outputs is not removed)
        return (yield from run)


def _models(given: Any, device: Any) -> tuple[Denoiser, ...]:
    """The models of :attr:`BatchOptions.model`, loaded: one, or one per channel."""
    one = isinstance(given, (str, os.PathLike, Denoiser))
    models = tuple(m if isinstance(m, Denoiser) else load_model(m, device) for m in ([given] if one else given))
    if not models:
        raise ValueError("no model given: give one model, or one per channel")
    return models


def _plan(items: Sequence[Item], outdir: str | os.PathLike | None, options: BatchOptions) -> list[_Job]:
    """Name every output and decide up front what is skipped, or refused for a name clash."""
    inputs = {Path(i).resolve() for i in items if not isinstance(i, ArrayItem)}
    claimed: dict[Path, str] = {}
    problems: dict[Path, str | None] = {}  # folders beside the inputs that cannot be written
    jobs = []
    for item in items:
        if isinstance(item, ArrayItem):
            name, source, stem = item.name, f"layer {item.name!r}", safe_name(item.name)
            folder = Path(outdir)  # type: ignore[arg-type]  # checked in run_batch
        else:
            # absolute: the workers of a cluster may start in another folder
            item = Path(item)
            whole = Path(os.path.abspath(item))
            name, source, stem, beside = whole.name, str(item), output_stem(item), whole.parent
            if (store := enclosing_store(item)) is not None:  # an image inside a store: named, and written beside, as the store
                name, beside = "/".join((store.name, *whole.relative_to(store).parts)), store.parent
            folder = Path(outdir) if outdir is not None else beside
            item = item.absolute()
        folder = folder.absolute()
        wanted = output_paths(stem, folder, options.save_smooth, zarr=_streamed(item))
        job = _Job(name, source, item, wanted)
        for path in wanted.values():
            target = path.resolve()
            if target in inputs:
                job.verdict = _failed(job, f"its output {path.name} would overwrite an input file")
            elif target in claimed:
                job.verdict = _failed(job, f"its output {path.name} is also the output of "
                                           f"{claimed[target]}")
            if job.verdict:
                break
        if job.verdict is None:
            claimed.update({p.resolve(): source for p in wanted.values()})
            if not options.overwrite:
                job.outputs = {k: p for k, p in wanted.items() if not p.exists()}
                if not job.outputs:
                    job.verdict = ItemResult(name, source, "skipped", "outputs exist",
                                             tuple(wanted.values()))
        if job.verdict is None and outdir is None:
            if folder not in problems:
                problems[folder] = write_problem(folder)
            if problems[folder]:
                job.verdict = _failed(job, problems[folder])
        jobs.append(job)
    return jobs


def _failed(job: _Job, reason: str) -> ItemResult:
    return ItemResult(job.name, job.source, "failed", reason)


class _ItemFailed(Exception):
    """One item cannot be done; the message is the reason shown to people."""


def _run(
    jobs: list[_Job], settings: Settings, device: Any, options: BatchOptions
) -> Generator[BatchProgress, None, BatchSummary]:
    start = time.perf_counter()
    total = len(jobs)
    results: list[ItemResult] = []
    work_total = sum(job.verdict is None for job in jobs)  # items that need denoising
    work_done = 0

    def event(index: int, name: str, current: float, working: float = 0.0,
              **extra: Any) -> BatchProgress:
        # Time left from the pace of the denoising so far (``working``: the part of the current
        # item denoised); skipped items take no time and must not count.
        done = work_done + working
        elapsed = time.perf_counter() - start
        left = elapsed * (work_total - done) / done if done > 0 else None
        return BatchProgress(index, total, name, (index + current) / total, left, **extra)

    for index, job in enumerate(jobs):
        if job.verdict is not None:
            results.append(job.verdict)
            yield event(index, job.name, 1.0, result=job.verdict)
            continue
        yield event(index, job.name, 0.0)
        run = _item(job, settings, device, options)  # closed on cancel: the engine stops between two steps
        result = yield from relabelled(run, lambda step: event(index, job.name, step.fraction, step.fraction,
                                                               progress=step))
        work_done += 1
        results.append(result)
        yield event(index, job.name, 1.0, result=result)
    return BatchSummary(tuple(results), total, time.perf_counter() - start)


def _item(
    job: _Job, settings: Settings, device: Any, options: BatchOptions
) -> Generator[Progress, None, ItemResult]:
    """Denoise one planned item: yields the engine's progress, returns what happened. Nothing
    raises for one bad item: it is a failed result, with its reason."""
    began = time.perf_counter()
    try:
        outputs, note = yield from _process(job, settings, device, options)
    except Exception as err:  # one bad item must not stop the batch
        return ItemResult(job.name, job.source, "failed", failure_reason(err), (), time.perf_counter() - began)
    return ItemResult(job.name, job.source, "done", note, outputs, time.perf_counter() - began)


def failure_reason(error: BaseException) -> str:
    """Why an item failed, for people: the batch's own reasons (and bad input's) as they are,
    anything else with its kind."""
    if isinstance(error, (_ItemFailed, ValueError, TypeError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def run_job(job: _Job, settings: Settings, options: BatchOptions, models: Sequence[bytes] | None = None) -> ItemResult:
    """One item from start to end, as a task on a Dask worker: the device is the worker's
    (``options.device``), ``models`` the saved models' bytes when they are applied."""
    from .engine.model_file import model_from_bytes

    device = _ready_worker(options)
    if models is not None:
        options = replace(options, model=tuple(model_from_bytes(model, device) for model in models))
    return drive(_item(job, settings, device, options), None)


def _ready_worker(options: BatchOptions) -> Any:
    """Ready a Dask worker's process for a task (see :func:`~.cluster.undo_malloc_trim`); its device."""
    from .cluster import undo_malloc_trim

    undo_malloc_trim()
    return resolve_device(options.device)


class _ReadHere:
    """An OME-Zarr input (a dask array over its store) read in this process. Left to Dask's
    defaults, a plane read in a task on a Dask worker became two tasks of its own on another
    worker, its pixels sent back (117 tasks for 3 stacks of 12 planes in 16 blocks, instead of
    15). The scheduler is given to each ``compute``: ``dask.config`` would change it for every
    thread of the process, the client's too. (Not for a layer's dask array: that may hold
    results persisted on a cluster, which only the cluster can read.)"""

    def __init__(self, data: Any) -> None:
        self.data, self.shape, self.dtype = data, data.shape, data.dtype

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.data[index].compute(scheduler="threads")  # the chunks of a plane side by side


def _streamed(item: Path | ArrayItem) -> bool:
    """Whether an item is read a plane at a time into OME-Zarr outputs: a zarr store, or a
    lazy array (a layer backed by dask or zarr)."""
    return is_lazy(item.data) if isinstance(item, ArrayItem) else is_zarr(item)


@dataclass(frozen=True)
class _Opened:
    """An item opened for reading (a file or a zarr store lazily): what denoising it needs."""

    data: Any
    info: ImageInfo
    meta: ImageMeta
    rgb: bool
    zarr: ZarrImage | None
    translation: tuple[float, ...] | None = None

    def dtype(self, options: BatchOptions) -> np.dtype:
        return np.dtype(self.info.dtype) if options.dtype == "input" else np.dtype(np.float32)

    def ome_outputs(self, paths: Mapping[str, Path], dtype: np.dtype) -> Any:
        """New OME-Zarr outputs at ``paths`` (see :func:`~.io.zarr.ome_zarr_outputs`, a context
        manager), with the input's axes, scale, translation and channel names (those other
        than colour, for RGB); for a lazy layer, from its pixel size and axes."""
        source, dims = self.zarr, len(self.info.shape) - self.rgb
        if source is not None and len(source.axes) == dims:
            return ome_zarr_outputs(paths, self.info.shape, source.axes, source.scale, dtype, self.rgb,
                                    source.translation, source.channels, version=source.version)
        # a lazy layer: a ZCYX one, say, is stored CZYX
        axes, scale, translation, order = ome_layout(self.meta, dims, self.translation, self.rgb)
        return ome_zarr_outputs(paths, self.info.shape, axes, scale, dtype, self.rgb, translation, order=order)

    def model_planes(self, options: BatchOptions) -> list[list[int]]:
        """The planes each model is for: every channel's own (see :func:`channel_planes`), to
        fit or to apply the batch's saved models to (one per channel); all of them for the
        batch's one saved model (one model for all, nothing fitted per channel)."""
        channels = channel_planes(self.info, self.meta.axes)
        if options.model is None:
            return channels
        if len(options.model) == 1:
            return [list(range(self.info.planes))]
        if len(options.model) != len(channels):
            raise _ItemFailed(f"{len(options.model)} models were given, one per channel, and the image has "
                              f"{len(channels)} channel{'s' if len(channels) != 1 else ''} "
                              f"(its axes: {self.meta.axes or 'unknown'})")
        return channels


def channel_axis(info: ImageInfo, axes: str | None) -> int | None:
    """Where a stack's channel axis ("C" in ``axes``, not the colour of RGB) lies among its
    leading axes, if it has one of more than one channel."""
    at = axes.find("C") if axes and len(axes) == len(info.shape) else -1
    return at if 0 <= at < len(info.lead) and info.lead[at] > 1 else None


def channel_planes(info: ImageInfo, axes: str | None) -> list[list[int]]:
    """The plane numbers of each channel of a stack with a channel axis (:func:`channel_axis`),
    which are fitted apart: channels differ in structure, brightness and often in gain (on 2
    channels of a confocal stack whose gains differ 5x, one model for both lost 1.1 dB on one;
    docs/benchmarks.md#channels). One list of every plane for anything else."""
    return channel_groups(info, channel_axis(info, axes))


def _open(job: _Job, options: BatchOptions) -> _Opened:
    """Open a planned item for reading (a zarr store lazily); a bad file is :class:`_ItemFailed`."""
    source, translation = None, None
    if isinstance(job.item, ArrayItem):
        data, meta, rgb, translation = job.item.data, job.item.meta, job.item.rgb, job.item.translation
    else:
        try:
            if is_zarr(job.item):
                source = read_zarr(job.item)
                data, meta, rgb = source.data, source.meta, False
            else:
                data, meta = read_image(job.item)
                rgb = meta.rgb
        except Exception as err:
            raise _ItemFailed(f"cannot read: {err}") from err
    if options.rgb is not None:
        rgb = options.rgb
    if rgb and source is not None:  # OME-Zarr keeps colour in its channel axis
        source = colour_last(source)
        data, meta = source.data, source.meta
    if source is not None and hasattr(data, "dask"):  # an OME-Zarr store, read through dask
        data = _ReadHere(data)
    data, info = inspect(data, rgb)
    return _Opened(data, info, meta, rgb, source, translation)


def _process(
    job: _Job, settings: Settings, device: Any, options: BatchOptions
) -> Generator[Progress, None, tuple[tuple[Path, ...], str]]:
    """Read, denoise and write one item; yields the engine's progress, returns the outputs
    and a note on how it went (see :func:`_denoise_into`)."""
    opened = _open(job, options)
    meta, rgb = opened.meta, opened.rgb
    dtype = opened.dtype(options)
    if is_lazy(opened.data):  # a zarr store or a lazy layer: OME-Zarr outputs, plane by plane
        try:
            with opened.ome_outputs(job.outputs, dtype) as out:
                note = yield from _denoise_into({kind: _Converted(array, dtype) for kind, array in out.items()},
                                         opened, settings, device, options)
        except OSError as err:
            raise _ItemFailed(f"cannot write {', '.join(map(str, job.outputs.values()))}: "
                              f"{err.strerror or err}") from err
        return tuple(job.outputs.values()), note
    images: dict[str, Any] = dict.fromkeys(job.outputs)
    note = yield from _denoise_into(images, opened, settings, device, options)
    if rgb and not meta.rgb:
        meta = replace(meta, axes=None)  # the file's axes did not name the colour axis
    written = []
    for kind, path in job.outputs.items():
        try:
            written.append(write_image(path, to_dtype(images[kind], dtype), meta, rgb=rgb))
        except OSError as err:
            raise _ItemFailed(f"cannot write {path}: {err.strerror or err}") from err
    return tuple(written), note


def _denoise_into(
    out: dict[str, Any], opened: _Opened, settings: Settings, device: Any, options: BatchOptions
) -> Generator[Progress, None, str]:
    """Denoise an opened item into ``out`` (its results by kind, shaped like the image; None:
    made here, float32), a channel at a time (:meth:`_Opened.model_planes`), as the dock does
    (:func:`~.engine.stack.denoise_stack_iter`): with the batch's models, or fitted once on a
    few planes (a lazy image or a long stack), or plane by plane. Returns a note for people on
    how it went ("" if nothing to say)."""
    run = denoise_stack_iter(opened.data, opened.info, opened.model_planes(options), out,
                             axis=channel_axis(opened.info, opened.meta.axes), rgb=opened.rgb, preset=settings,
                             device=device, seed=options.seed, threads=options.threads, models=options.model,
                             **_explicit(options))
    results = yield from relabelled(run, lambda step: replace(step.progress, fraction=step.fraction))
    return results_note(results, opened.info)


def fit_job(
    job: _Job, settings: Settings, options: BatchOptions, flags: Sequence[Path] = (), planes: Sequence[int] = (),
) -> bytes:
    """Fit once on a few of ``planes`` (all: every plane) of a planned item, as a task on a
    Dask worker: the model's bytes, for the tasks that apply it to blocks of those planes (see
    :mod:`.cluster`). It stops between two steps once one of ``flags`` (its outputs' writing
    flags) is gone: a running task cannot be cancelled by Dask, and the batch that wanted it
    was cancelled."""
    device = _ready_worker(options)
    opened = _open(job, options)
    fitting = _fit_once(opened, settings, device, options, planes or range(opened.info.planes))
    wanted = (lambda _event: all(flag.is_file() for flag in flags)) if flags else None
    return drive(fitting, wanted, "fitting was cancelled: its outputs are being removed").to_bytes()


def _fit_once(
    opened: _Opened, settings: Settings, device: Any, options: BatchOptions, planes: Sequence[int]
) -> Generator[Progress, None, Denoiser]:
    """The model of an item fitted once on a few of ``planes`` (spread evenly), for them
    all, on a cluster's worker: as :func:`~.engine.stack.denoise_stack_iter` fits it in process."""
    return fit_iter(opened.data, rgb=opened.rgb, preset=settings, device=device, seed=options.seed,
                    threads=options.threads, among=planes, **_explicit(options))


def _explicit(options: BatchOptions) -> dict[str, Any]:
    """Settings given that a fit on several planes must not override: ``stabilise`` given as
    False (the resolved settings cannot tell it from the preset's own False, which such a fit
    turns to True)."""
    given = options.settings.get("stabilise")
    return {} if given is None else {"stabilise": given}


def run_block(
    job: _Job, options: BatchOptions, model: bytes, planes: Sequence[int], outputs: Mapping[str, Any],
    refit: bool = False,
) -> tuple[int, ...]:
    """Apply a model to some planes of a planned zarr item, as a task on a Dask worker, writing
    them into ``outputs`` (the item's OME-Zarr arrays, still under their temporary names).
    ``refit``: the model was fitted on this item, and fits the planes it does not cover on
    their own (see ``Denoiser.apply``); returns those planes. Run twice (a retry), it writes
    the same values."""
    from .cluster import writing_flag
    from .engine.model_file import model_from_bytes

    device = _ready_worker(options)
    opened = _open(job, options)
    denoiser = model_from_bytes(model, device)
    dtype = opened.dtype(options)
    out = {kind: _Converted(array, dtype, writing_flag(array)) for kind, array in outputs.items()}
    run = denoiser.apply_iter(opened.data, rgb=opened.rgb, threads=options.threads, out=out, planes=planes,
                              refit=refit)
    try:  # stopped between two planes, or two steps of a plane fitted on its own, once told to
        result = drive(run, lambda _event: all(array.flag.is_file() for array in out.values()))
    except Cancelled as stopped:
        raise _ItemFailed(REMOVED) from stopped
    return result.refitted


#: Why a block of a stack on a cluster stopped: the client is removing the stack's outputs.
REMOVED = "its output is being removed: the batch was cancelled or its stack failed"


class _Converted:
    """An output array that stores values in ``dtype`` the way :func:`to_dtype` does. With
    ``flag`` (a block of a stack on a cluster, writing into an output that the client builds)
    it writes only while that file exists: the client removes it before it removes the
    output of a batch cancelled or a stack failed, and zarr would create the folders afresh."""

    def __init__(self, array: Any, dtype: np.dtype, flag: Path | None = None) -> None:
        self.array, self.dtype, self.flag = array, dtype, flag
        self.shape = array.shape

    def __setitem__(self, index: Any, values: np.ndarray) -> None:
        if self.flag is not None and not self.flag.is_file():
            raise _ItemFailed(REMOVED)
        self.array[index] = to_dtype(values, self.dtype)


def to_dtype(image: np.ndarray, dtype: np.dtype | str) -> np.ndarray:
    """``image`` in ``dtype``: integers are rounded and clipped to the dtype's range."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(image), info.min, info.max).astype(dtype)
    return image.astype(dtype, copy=False)

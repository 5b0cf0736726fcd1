"""The batch on a Dask cluster: a local one, a running scheduler, or jobs on SLURM, PBS, SGE or LSF.

The work is the batch's own: one task per image runs ``batch.run_job`` on a worker, which
reads, denoises and writes exactly as in process (atomically, skipping what exists, never
writing an input). A zarr stack of more than :data:`BLOCK_PLANES` planes is shared out
instead: one task fits the model once on a few planes (``batch.fit_job``), and one task per
block of planes applies it (``batch.run_block``), each writing its planes into the OME-Zarr
outputs, which this process creates under temporary names and renames when every block is
done. A saved model, or the one fitted, is sent to each worker once. A worker that dies
loses only its task, which the scheduler gives to another worker; an image that fails is
reported with its reason. Dask is imported only here, and only when a cluster is asked for.
The workers and this process must see the same files (one machine, or a shared file system).

Needs the ``cluster`` extra: ``pip install napari-noise2detail[cluster]``.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generator, Iterable, Iterator, Mapping

if TYPE_CHECKING:
    from .batch import BatchOptions, BatchProgress, BatchSummary, ItemResult, _Job
    from .engine.presets import Settings

#: The job schedulers dask-jobqueue drives, and its class for each.
JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}
#: How often (seconds) the progress is refreshed while no image finishes.
HEARTBEAT = 1.0
#: A zarr stack of more planes than this is applied in tasks of this many planes each.
BLOCK_PLANES = 32


def _require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ValueError("running on a Dask cluster needs dask.distributed: "
                         "pip install 'napari-noise2detail[cluster]'") from None


@contextmanager
def local_cluster(workers: int, threads_per_worker: int = 1, gpus: int = 0) -> Iterator[Any]:
    """A Dask client on a cluster of ``workers`` processes on this machine, each running one
    image at a time; with ``gpus``, one worker per GPU, each seeing only its own."""
    _require_dask()
    from distributed import Client, LocalCluster, Nanny, SpecCluster

    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if gpus:
        cluster = SpecCluster(workers=gpu_worker_specs(gpus, Nanny), scheduler=_scheduler_spec(),
                              silence_logs=40)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
    with cluster, Client(cluster) as client:
        yield client


def _scheduler_spec() -> dict:
    from distributed import Scheduler

    return {"cls": Scheduler, "options": {"dashboard_address": None}}


def gpu_worker_specs(gpus: int, worker_class: Any = None) -> dict[str, dict]:
    """One worker per GPU, told its device: ``CUDA_VISIBLE_DEVICES`` is that GPU alone, so
    ``cuda`` in it is its own card; one image at a time each."""
    return {
        f"gpu-{index}": {"cls": worker_class, "options": {"nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": str(index)}}}
        for index in range(gpus)
    }


@contextmanager
def connect(address: str, timeout: float = 10.0) -> Iterator[Any]:
    """A Dask client on a running scheduler (``tcp://host:8786``). Its workers should run one
    task at a time (``dask worker --nthreads 1``): each image uses the worker's cores itself.
    A scheduler not reached within ``timeout`` seconds, or an address that is not one, is a
    ValueError naming the address."""
    _require_dask()
    from distributed import Client

    try:
        client = Client(address, timeout=f"{timeout}s")
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"cannot reach the Dask scheduler at {address}: {error}") from None
    # not ``with client``: that makes it the thread's current client, which only the thread
    # that entered can undo, and the dock closes a cancelled batch from the GUI thread
    try:
        yield client
    finally:
        client.close()


def jobqueue_cluster_object(kind: str, options: Mapping[str, Any]) -> Any:
    """The dask-jobqueue cluster for ``kind`` (slurm, pbs, sge, lsf), not yet started: its
    ``job_script()`` is the script each job would run. ``options`` are the cluster's
    arguments (cores, memory, queue, walltime, job_extra_directives ...); by default each core
    of a job is a worker process of one thread, each running one image at a time."""
    _require_dask()
    try:
        import dask_jobqueue
    except ImportError:
        raise ValueError("--cluster needs dask-jobqueue: pip install 'napari-noise2detail[cluster]'") from None
    if kind not in JOBQUEUE:
        raise ValueError(f"unknown cluster {kind!r}; choose one of {', '.join(JOBQUEUE)}")
    kwargs = dict(options)
    kwargs.setdefault("processes", kwargs.get("cores", 1))
    try:
        return getattr(dask_jobqueue, JOBQUEUE[kind])(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot set up the {kind} cluster: {error}") from None


@contextmanager
def jobqueue_cluster(kind: str, jobs: int, options: Mapping[str, Any]) -> Iterator[Any]:
    """A Dask client on workers started as ``jobs`` jobs of the ``kind`` scheduler."""
    from distributed import Client

    cluster = jobqueue_cluster_object(kind, options)
    with cluster, Client(cluster) as client:
        cluster.scale(jobs=jobs)
        yield client


@dataclass
class _Split:
    """A zarr stack shared out in blocks: its OME-Zarr outputs, open under temporary names
    until every block is written, and the blocks' tasks not yet done."""

    outputs: ExitStack
    pending: set = field(default_factory=set)
    blocks: int = 0
    began: float = field(default_factory=time.perf_counter)

    def finish(self, job: _Job, error: BaseException | None = None) -> ItemResult:
        """Rename the outputs into place (or, after an ``error``, remove them): the item's result."""
        from .batch import ItemResult

        seconds = time.perf_counter() - self.began
        if error is None:
            try:
                self.outputs.close()
            except OSError as err:
                return ItemResult(job.name, job.source, "failed", f"cannot write: {err.strerror or err}")
            return ItemResult(job.name, job.source, "done", "", tuple(job.outputs.values()), seconds)
        self.outputs.__exit__(type(error), error, error.__traceback__)  # removes the temporaries
        return ItemResult(job.name, job.source, "failed", _reason(error), (), seconds)


def _blocks(job: _Job, options: BatchOptions) -> tuple[Any, list[range]] | None:
    """A planned zarr item of more than :data:`BLOCK_PLANES` planes: the item opened lazily
    and its blocks of planes; None for anything that is one task (or cannot be read here: its
    task reports why)."""
    from .batch import _is_zarr_item, _open

    if job.verdict is not None or not _is_zarr_item(job.item):
        return None
    try:
        opened = _open(job, options)
    except Exception:  # noqa: BLE001 - its single task fails with the reason
        return None
    count = opened.info.planes
    if count <= BLOCK_PLANES:
        return None
    return opened, [range(first, min(first + BLOCK_PLANES, count)) for first in range(0, count, BLOCK_PLANES)]


def run_on_cluster(
    client: Any, jobs: list[_Job], settings: Settings, options: BatchOptions
) -> Generator[BatchProgress, None, BatchSummary]:
    """The planned batch ``jobs`` as tasks on ``client``'s cluster; yields an event whenever an
    image ends (and every :data:`HEARTBEAT` seconds), returns the summary. Closing the
    generator cancels the tasks still waiting or running."""
    from distributed import wait

    from .batch import BatchProgress, BatchSummary, fit_job, run_block, run_job
    from .engine import Denoiser
    from .io.zarr import ome_zarr_outputs

    began = time.perf_counter()
    total = len(jobs)
    results: dict[int, ItemResult] = {}
    model = options.model
    shipped = client.scatter(model.to_bytes(), broadcast=True) if isinstance(model, Denoiser) else None
    worker_options = replace(options, model=None)
    batch_id = uuid.uuid4().hex[:8]
    futures: dict[Any, int] = {}  # the tasks whose end is awaited, and their item
    fits: list[Any] = []  # the fits the blocks of a split item wait for
    splits: dict[int, _Split] = {}
    for index, job in enumerate(jobs):
        key = f"n2d-{batch_id}-{index}"
        split = _blocks(job, options) if job.verdict is None else None
        if job.verdict is not None:
            results[index] = job.verdict
            yield BatchProgress(index, total, job.name, len(results) / total, None, result=job.verdict)
        elif split is None:
            futures[client.submit(run_job, job, settings, worker_options, shipped, key=key, pure=False)] = index
        else:
            opened, blocks = split
            axes, scale = opened.ome_layout()
            outputs = ExitStack()
            try:
                arrays = outputs.enter_context(ome_zarr_outputs(job.outputs, opened.info.shape, axes, scale,
                                                                opened.dtype(options)))
            except OSError as err:
                results[index] = _Split(outputs).finish(job, err)
                yield BatchProgress(index, total, job.name, len(results) / total, None, result=results[index])
                continue
            fitted = shipped
            if fitted is None:  # fitted once, on a worker; every block waits for it
                fitted = client.submit(fit_job, job, settings, worker_options, key=f"{key}-fit", pure=False)
                fits.append(fitted)
            splits[index] = _Split(outputs, blocks=len(blocks))
            for number, planes in enumerate(blocks):
                future = client.submit(run_block, job, worker_options, fitted, planes, arrays,
                                       key=f"{key}-{number}", pure=False)
                futures[future] = index
                splits[index].pending.add(future)
    work = len(futures)
    pending = set(futures)
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=HEARTBEAT, return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing ended for a while: a progress event all the same
                done = set()
            running = _running(client, [*futures, *fits])
            finished = work - len(pending)
            elapsed = time.perf_counter() - began
            left = elapsed * len(pending) / finished if finished else None
            parts = sum(1 - len(split.pending) / split.blocks for i, split in splits.items() if i not in results)
            fraction = (len(results) + parts) / total
            if not done:
                yield BatchProgress(min(results, default=0), total, "", fraction, left, running=running)
            for future in done:
                index = futures[future]
                if index in results:  # a block of an item that has failed already
                    continue
                split = splits.get(index)
                if split is None:
                    results[index] = _outcome(future, jobs[index])
                else:
                    split.pending.discard(future)
                    error = None if future.status == "finished" else (
                        future.exception() if future.status == "error" else RuntimeError("its task was cancelled"))
                    if error is None and split.pending:
                        continue
                    if error is not None:  # the item fails: its other blocks are not needed
                        client.cancel(list(split.pending), force=True)
                        pending -= split.pending
                    results[index] = split.finish(jobs[index], error)
                yield BatchProgress(index, total, jobs[index].name, len(results) / total, left,
                                    result=results[index], running=running)
    finally:
        if pending:
            client.cancel(list(pending) + fits, force=True)
        for index, split in splits.items():
            if index not in results:  # cancelled: its outputs never appear
                split.outputs.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
    ordered = tuple(results[i] for i in sorted(results))
    return BatchSummary(ordered, total, time.perf_counter() - began)


def _reason(error: BaseException) -> str:
    """Why an item failed, for people: the batch's own reasons as they are."""
    from .batch import _ItemFailed

    if isinstance(error, (_ItemFailed, ValueError, TypeError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _outcome(future: Any, job: _Job) -> ItemResult:
    """The result of a finished task; a task that failed on every try (its worker died each
    time, say) is a failed image, with the reason."""
    from .batch import ItemResult

    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - reported as this image's failure
        return ItemResult(job.name, job.source, "failed", f"{type(error).__name__}: {error}")


def _running(client: Any, futures: Iterable[Any]) -> int:
    """How many of the batch's tasks (``futures``) are running on a worker now."""
    try:
        processing = client.processing()
    except Exception:  # noqa: BLE001 - only for the display
        return 0
    keys = {future.key for future in futures}
    return sum(key in keys for tasks in processing.values() for key in tasks)


def cores() -> int:
    return os.cpu_count() or 1


def undo_malloc_trim() -> None:
    """Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand memory back
    to the system), which also fixes glibc's mmap threshold at 128 kB: every intermediate
    tensor of a fitting step is then mapped and unmapped afresh, and a task ran 1.5x slower
    than in a plain process (30 s against 20 s). Raise both thresholds again (Linux, glibc)."""
    if not sys.platform.startswith("linux") or not os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
    libc.mallopt(_M_TRIM_THRESHOLD, 64 * 2**20)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters

"""The batch on a Dask cluster: a local one, a running scheduler, or jobs on SLURM, PBS, SGE or LSF.

The work is the batch's own: one task per image runs ``batch.run_job`` on a worker, which
reads, denoises and writes exactly as in process (atomically, skipping what exists, never
writing an input). A zarr stack of more than :data:`BLOCK_PLANES` planes is shared out
instead: one task fits the model once on a few planes (``batch.fit_job``; one per channel of a
stack with a channel axis), and one task per
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
import signal
import sys
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator, Iterable, Iterator, Mapping

if TYPE_CHECKING:
    from .batch import BatchOptions, BatchProgress, BatchSummary, ItemResult, _Job, _Opened
    from .engine.presets import Settings
    from .engine.planes import ImageInfo

#: The job schedulers dask-jobqueue drives, and its class for each.
JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}
#: How often (seconds) the progress is refreshed while no image finishes.
HEARTBEAT = 1.0
#: A zarr stack of more planes than this is applied in tasks of this many planes each.
BLOCK_PLANES = 32
#: The file in each temporary output of a stack shared out in blocks whose presence lets the
#: blocks write: removed when the stack is cancelled or fails, and then, after
#: :data:`STOP_GRACE`, the temporary output is removed.
WRITING = ".n2d-writing"
#: Seconds for a plane being written when the stack stopped to land.
STOP_GRACE = 1.0


#: The level below which Dask's logs are not shown (logging.CRITICAL).
QUIET = 50


def require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ValueError("running on a Dask cluster needs dask.distributed: "
                         "pip install 'napari-noise2detail[cluster]'") from None


@contextmanager
def local_cluster(workers: int, gpus: int = 0) -> Iterator[Any]:
    """A Dask client on a cluster of ``workers`` processes on this machine, each running one
    image at a time; with ``gpus``, one worker per GPU, each seeing only its own."""
    require_dask()
    from distributed import Client, LocalCluster, Nanny, SpecCluster

    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    # Dask's own logs only when critical: a task that fails is reported in the summary, with
    # its reason, and the worker's traceback before it was kilobytes of noise
    with ExitStack() as stack:
        with _workers_ignore_ctrl_c():
            if gpus:
                cluster = SpecCluster(workers=gpu_worker_specs(gpus, Nanny), scheduler=_scheduler_spec(),
                                      silence_logs=QUIET)
            else:
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=QUIET)
            stack.enter_context(cluster)
            client = stack.enter_context(Client(cluster))
        yield client


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start the worker processes ignoring Ctrl-C (SIGINT): a terminal's Ctrl-C goes to every
    process of the command, and workers interrupted while importing torch printed their
    tracebacks, and a cluster interrupted half-started failed again when closed at exit. This
    process alone answers it, cancelling the tasks and closing the workers. A process inherits
    an ignored signal (and Python leaves it ignored), not a blocked one or a handler, so this
    process ignores it too while the workers start (a second or two); afterwards, as before.
    POSIX only: Windows starts processes without the signals' dispositions."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:  # None: a handler not set from Python, which cannot be put back; Python's own then
        signal.signal(signal.SIGINT, signal.default_int_handler if before is None else before)


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
    require_dask()
    from distributed import Client

    try:
        client = Client(address, timeout=f"{timeout}s")
    except Exception as error:  # noqa: BLE001 - whatever the other end made of it (an ssh banner, say)
        raise ValueError(f"cannot reach the Dask scheduler at {address}: {type(error).__name__}: "
                         f"{str(error)[:200]}") from None
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
    require_dask()
    try:
        import dask_jobqueue
    except ImportError:
        raise ValueError("--cluster needs dask-jobqueue: pip install 'napari-noise2detail[cluster]'") from None
    if kind not in JOBQUEUE:
        raise ValueError(f"unknown cluster {kind!r}; choose one of {', '.join(JOBQUEUE)}")
    kwargs = dict(options)
    kwargs.setdefault("processes", kwargs.get("cores", 1))
    for key, value in kwargs.items():  # job_extra_directives=--gres=gpu:1: one line, not one per letter
        if key.endswith(("_directives", "_extra", "prologue")) and isinstance(value, str):
            kwargs[key] = [value]
    try:
        return getattr(dask_jobqueue, JOBQUEUE[kind])(**kwargs)
    except (TypeError, ValueError) as error:  # cores=abc says "'>' not supported": named here
        raise ValueError(f"cannot set up the {kind} cluster with {', '.join(f'{k}={v!r}' for k, v in options.items())}: "
                         f"{error}") from None


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
    until every block is written, with a :data:`WRITING` flag in each that lets the blocks
    write, and the blocks' tasks not yet done."""

    outputs: ExitStack
    flags: list[Path]
    pending: set
    blocks: int
    #: The stack's shape, in the engine's terms (to name planes).
    info: ImageInfo
    began: float = field(default_factory=time.perf_counter)
    #: The planes its blocks fitted on their own (see ``batch.run_block``).
    refitted: list[int] = field(default_factory=list)

    @property
    def share(self) -> float:
        """The part of the stack done."""
        return 1 - len(self.pending) / self.blocks

    def stop(self) -> None:
        """Tell the blocks to write no more (a block checks before each plane)."""
        for flag in self.flags:
            flag.unlink(missing_ok=True)

    def finish(self, job: _Job) -> ItemResult:
        """Every block written: rename the outputs into place; the item's result."""
        from .batch import ItemResult
        from .engine.model import refit_note

        self.stop()
        try:
            self.outputs.close()
        except OSError as err:
            return ItemResult(job.name, job.source, "failed", f"cannot write: {err.strerror or err}")
        return ItemResult(job.name, job.source, "done", refit_note(sorted(self.refitted), self.info),
                          tuple(job.outputs.values()), time.perf_counter() - self.began)

    def fail(self, job: _Job, error: BaseException) -> ItemResult:
        """A block failed: stop the others, remove the outputs; the item's result."""
        from .batch import ItemResult, failure_reason

        self.stop()
        time.sleep(STOP_GRACE)  # a plane being written lands before the store goes
        self.remove(error)
        return ItemResult(job.name, job.source, "failed", failure_reason(error), (), time.perf_counter() - self.began)

    def remove(self, error: BaseException) -> None:
        """Remove the temporary outputs (after :meth:`stop` and the blocks' grace)."""
        self.outputs.__exit__(type(error), error, error.__traceback__)


def _blocks(job: _Job, options: BatchOptions) -> tuple[_Opened, list[tuple[list[int], list[list[int]]]]] | None:
    """A planned zarr item of more than :data:`BLOCK_PLANES` planes: the item opened lazily,
    and for each model (one per channel, see ``batch._Opened.model_planes``) its planes and
    their blocks; None for anything that is one task (or cannot be read
    here: its task reports why)."""
    from .batch import ArrayItem, _open
    from .io.zarr import is_zarr

    # a lazy layer stays one task: its dask graph would travel with every block
    if job.verdict is not None or isinstance(job.item, ArrayItem) or not is_zarr(job.item):
        return None
    try:
        opened = _open(job, options)
        groups = opened.model_planes(options)
    except Exception:  # noqa: BLE001 - its single task fails with the reason
        return None
    if opened.info.planes <= BLOCK_PLANES:
        return None
    return opened, [(planes, [planes[first : first + BLOCK_PLANES] for first in range(0, len(planes), BLOCK_PLANES)])
                    for planes in groups]


def _begin_outputs(job: _Job, opened: _Opened, options: BatchOptions) -> tuple[ExitStack, dict[str, Any], list[Path]]:
    """A stack's OME-Zarr outputs under temporary names, each with its :data:`WRITING` flag."""
    outputs = ExitStack()
    try:
        arrays = outputs.enter_context(opened.ome_outputs(job.outputs, opened.dtype(options)))
        flags = [writing_flag(array) for array in arrays.values()]
        for flag in flags:
            flag.touch()
    except BaseException as error:
        outputs.__exit__(type(error), error, error.__traceback__)
        raise
    return outputs, arrays, flags


def writing_flag(array: Any) -> Path:
    """The :data:`WRITING` flag of a zarr output being built: in its store's folder."""
    return Path(array.store.root) / WRITING


def run_on_cluster(
    client: Any, jobs: list[_Job], settings: Settings, options: BatchOptions
) -> Generator[BatchProgress, None, BatchSummary]:
    """The planned batch ``jobs`` as tasks on ``client``'s cluster; yields an event whenever an
    image ends or a task does (and every :data:`HEARTBEAT` seconds), returns the summary.
    Closing the generator cancels the tasks still waiting or running."""
    from distributed import wait

    from .batch import BatchProgress, BatchSummary, ItemResult, failure_reason, fit_job, run_block, run_job

    began = time.perf_counter()
    total = len(jobs)
    results: dict[int, ItemResult] = {}
    model = options.model
    worker_options = replace(options, model=None)
    batch_id = uuid.uuid4().hex[:8]
    futures: dict[Any, int] = {}  # the tasks whose end is awaited, and their item
    fits: list[Any] = []  # the fits the blocks of a split item wait for
    splits: dict[int, _Split] = {}
    pending: set = set()

    def fraction() -> float:  # stacks count in part: never goes back
        return (len(results) + sum(split.share for i, split in splits.items() if i not in results)) / total

    try:
        shipped = [client.scatter(m.to_bytes(), broadcast=True) for m in model] if model else None
        for index, job in enumerate(jobs):
            key = f"n2d-{batch_id}-{index}"
            split = _blocks(job, options)
            if job.verdict is None and split is None:
                futures[client.submit(run_job, job, settings, worker_options, shipped, key=key, pure=False)] = index
                continue
            if split is not None:
                opened, channels = split
                try:
                    outputs, arrays, flags = _begin_outputs(job, opened, options)
                except Exception as error:  # noqa: BLE001 - this item fails, the batch goes on
                    reason = f"cannot write: {failure_reason(error)}"
                    results[index] = ItemResult(job.name, job.source, "failed", reason)
                else:
                    splits[index] = _Split(outputs, flags, set(), sum(len(blocks) for _, blocks in channels), opened.info)
                    for channel, (planes, blocks) in enumerate(channels):
                        fitted = shipped[channel] if shipped else None
                        if fitted is None:  # fitted once per channel, on a worker; its blocks wait for it
                            fitted = client.submit(fit_job, job, settings, worker_options, flags, planes,
                                                   key=f"{key}-{channel}-fit", pure=False)
                            fits.append(fitted)
                        for number, block in enumerate(blocks):
                            future = client.submit(run_block, job, worker_options, fitted, block, arrays,
                                                   shipped is None,
                                                   key=f"{key}-{channel}-{number}", pure=False)
                            futures[future] = index
                            splits[index].pending.add(future)
                    continue
            else:
                results[index] = job.verdict
            yield BatchProgress(index, total, job.name, fraction(), None, result=results[index], done=len(results))
        pending = set(futures)
        ended_tasks = 0
        while pending:
            try:
                done, pending = wait(pending, timeout=HEARTBEAT, return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing ended for a while: a progress event all the same
                done = set()
            ended = []
            for future in done:
                ended_tasks += 1
                index = futures[future]
                if index in results:  # a block of an item that has failed already
                    continue
                split = splits.get(index)
                if split is None:
                    results[index] = _outcome(future, jobs[index])
                    ended.append(index)
                    continue
                split.pending.discard(future)
                if future.status != "finished":  # the stack fails: its other blocks are not needed
                    client.cancel(list(split.pending), force=True)
                    pending -= split.pending
                    error = future.exception() if future.status == "error" else RuntimeError(
                        f"its task ended {future.status}")
                    results[index] = split.fail(jobs[index], error)
                    ended.append(index)
                    continue
                split.refitted += future.result()
                if not split.pending:
                    results[index] = split.finish(jobs[index])
                    ended.append(index)
            running = _running(client, [*futures, *fits])
            elapsed = time.perf_counter() - began
            left = elapsed * len(pending) / ended_tasks if ended_tasks else None
            for index in ended:
                yield BatchProgress(index, total, jobs[index].name, fraction(), left,
                                    result=results[index], running=running, done=len(results))
            if not ended:
                yield BatchProgress(min(results, default=0), total, "", fraction(), left, running=running,
                                    done=len(results))
    finally:
        if pending or fits:
            client.cancel(list(pending) + fits, force=True)
        unfinished = [split for index, split in splits.items() if index not in results]
        for split in unfinished:  # cancelled: their outputs never appear
            split.stop()
        if unfinished:
            time.sleep(STOP_GRACE)
        for split in unfinished:
            split.remove(KeyboardInterrupt())
    ordered = tuple(results[i] for i in sorted(results))
    return BatchSummary(ordered, total, time.perf_counter() - began)


def _outcome(future: Any, job: _Job) -> ItemResult:
    """The result of a finished task; a task that failed on every try (its worker died each
    time, say) is a failed image, with the reason."""
    from .batch import ItemResult, failure_reason

    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - reported as this image's failure
        return ItemResult(job.name, job.source, "failed", failure_reason(error))


def _running(client: Any, futures: Iterable[Any]) -> int:
    """How many of the batch's tasks (``futures``) are running on a worker now: the scheduler's
    "processing" also counts those queued on a worker, which runs as many as it has threads."""
    try:
        processing, threads = client.processing(), client.nthreads()
    except Exception:  # noqa: BLE001 - only for the display
        return 0
    keys = {future.key for future in futures}
    return sum(min(sum(key in keys for key in tasks), threads.get(worker, 1)) for worker, tasks in processing.items())


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

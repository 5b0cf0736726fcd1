"""The batch on a local Dask cluster against one process: speed, overhead, identical outputs.

    python benchmarks/cluster.py [--files 8] [--size 512] [--workers 2] [--stack PLANES]

Writes --files noisy images (crops of the fluorescence and EM images of ../shared/data, with
Poisson noise) to a temporary folder, then denoises them (`fast`) three ways: one process with
one torch thread; one process with torch's default threads; and a local Dask cluster of
--workers processes, one thread each. Prints seconds (the cluster with and without its
start-up), the speed-up, whether the outputs are bit for bit those of the one-thread run, and
the scheduler's overhead per task: on each worker, the time from one task's end to the next
one's start (Dask's task stream), against a task's time.

With --stack PLANES the input is instead one uint16 zarr stack of PLANES planes (the
fluorescence image drifting across the field, Poisson noise), which one process fits once and
applies plane by plane, and the cluster shares out: a fit task, then a task per block of
planes (``cluster.BLOCK_PLANES``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from common import machine

ROOT = Path(__file__).resolve().parents[1]


def make_files(folder: Path, data_dir: Path, files: int, size: int) -> None:
    fluo = tifffile.imread(data_dir / "fluo_nuclei_dsb2018_2d.tif").astype(np.float64)
    em = tifffile.imread(data_dir / "em_sem_rbc_membrane_skeleton_2d.tif").astype(np.float64)
    sources = [np.pad(fluo / fluo.max(), size, mode="reflect"), em / 255.0]
    rng = np.random.default_rng(0)
    for i in range(files):
        image = sources[i % 2]
        top = rng.integers(0, image.shape[0] - size)
        left = rng.integers(0, image.shape[1] - size)
        crop = image[top : top + size, left : left + size]
        tifffile.imwrite(folder / f"image{i:02d}.tif", (rng.poisson(30 * crop) / 30).astype(np.float32))


def make_stack(path: Path, data_dir: Path, planes: int, size: int) -> None:
    import zarr

    fluo = tifffile.imread(data_dir / "fluo_nuclei_dsb2018_2d.tif").astype(np.float64)
    canvas = np.pad(fluo / fluo.max(), size, mode="reflect")
    rng = np.random.default_rng(0)
    array = zarr.create_array(str(path), shape=(planes, size, size), chunks=(1, size, size), dtype="uint16")
    for t in range(planes):
        left = (t * (canvas.shape[1] - size)) // max(planes - 1, 1)
        array[t] = rng.poisson(100 + 300 * canvas[:size, left : left + size]).astype(np.uint16)


def in_process(inputs, outdir, threads):
    from napari_noise2detail.batch import BatchOptions, run_batch
    from napari_noise2detail.engine.model import drive

    began = time.perf_counter()
    summary = drive(run_batch(inputs, outdir, BatchOptions(device="cpu", threads=threads)), None)
    return time.perf_counter() - began, summary


def on_cluster(inputs, outdir, workers):
    from distributed import Client, LocalCluster, get_task_stream

    from napari_noise2detail.batch import BatchOptions, run_batch
    from napari_noise2detail.engine.model import drive

    began = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        started = time.perf_counter()
        with get_task_stream(client) as stream:
            summary = drive(run_batch(inputs, outdir, BatchOptions(device="cpu", threads=1), client), None)
        batch = time.perf_counter() - started
    return time.perf_counter() - began, batch, summary, gaps(stream.data)


def gaps(records):
    """(task seconds, seconds between one task's end and the next one's start on a worker)."""
    by_worker, tasks = {}, []
    for record in records:
        for span in record["startstops"]:
            if span["action"] == "compute":
                by_worker.setdefault(record["worker"], []).append((span["start"], span["stop"]))
                tasks.append(span["stop"] - span["start"])
    between = [b[0] - a[1] for spans in by_worker.values() for a, b in zip(sorted(spans), sorted(spans)[1:])]
    return tasks, between


def same_outputs(a: Path, b: Path) -> bool:
    import zarr

    names = sorted(p.name for p in a.glob("*_n2d_*"))
    read = {".tif": tifffile.imread, ".zarr": lambda p: zarr.open_array(str(p / "0"), mode="r")[:]}
    return names == sorted(p.name for p in b.glob("*_n2d_*")) and all(
        np.array_equal(read[(a / n).suffix](a / n), read[(b / n).suffix](b / n)) for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stack", type=int, default=0, metavar="PLANES",
                        help="one zarr stack of this many planes instead of --files images")
    args = parser.parse_args()
    from napari_noise2detail.batch import collect_inputs

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        if args.stack:
            make_stack(folder / "in" / "stack.zarr", args.data, args.stack, args.size)
        else:
            make_files(folder / "in", args.data, args.files, args.size)
        inputs = collect_inputs([folder / "in"])
        one, one_summary = in_process(inputs, folder / "one", 1)
        print(f"  one process, 1 thread: {one:.1f} s", flush=True)
        default, _ = in_process(inputs, folder / "default", None)
        print(f"  one process, default threads: {default:.1f} s", flush=True)
        total, batch, summary, (tasks, between) = on_cluster(inputs, folder / "cluster", args.workers)
        print(f"  {args.workers} workers: {total:.1f} s ({batch:.1f} s without start-up)", flush=True)
        identical = same_outputs(folder / "one", folder / "cluster")
    task = float(np.mean(tasks))
    overhead = float(np.mean(between)) if between else 0.0
    rows = [
        ["one process, 1 thread", f"{one:.1f}", "1.00x", "reference"],
        ["one process, torch's default threads (adaptive)", f"{default:.1f}", f"{one / default:.2f}x", ""],
        [f"local Dask cluster, {args.workers} workers x 1 thread (with start-up)", f"{total:.1f}",
         f"{one / total:.2f}x", "bit for bit: " + ("yes" if identical else "NO")],
        ["the same, without the cluster's start-up", f"{batch:.1f}", f"{one / batch:.2f}x", ""],
    ]
    what = f"--stack {args.stack}" if args.stack else f"--files {args.files}"
    print(f"Machine: {machine()}.\n\nCommand: `python benchmarks/cluster.py {what} --size "
          f"{args.size} --workers {args.workers}`\n")
    print("| run | seconds | speed-up | outputs |\n|---|---|---|---|")
    print("\n".join("| " + " | ".join(row) + " |" for row in rows))
    per = (f"{len(tasks)} tasks (a fit and blocks of planes)" if args.stack else
           f"in one process with one thread: {one / args.files:.1f} s an image")
    print(f"\n{len(summary.done)} of {len(inputs)} inputs done on the cluster; a task computed for {task:.1f} s "
          f"on average ({per}); between one task's "
          f"end and the next one's start on a worker: {1000 * overhead:.0f} ms on average "
          f"({100 * overhead / task:.2f}% of a task).")
    assert one_summary.ok and summary.ok


if __name__ == "__main__":
    main()

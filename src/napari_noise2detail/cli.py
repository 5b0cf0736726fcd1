"""The ``napari-noise2detail`` console script."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from .batch import DTYPES, BatchOptions, BatchSummary, collect_inputs, run_batch
from .cluster import JOBQUEUE
from .engine import PRESETS
from .engine.presets import presets_explained


def _progress_bar(desc: str):
    from .console import ProgressDisplay

    bar = ProgressDisplay(desc)

    def update(event) -> None:
        loss = "" if event.loss is None else f", loss {event.loss:.2e}"
        bar.show(event.fraction, event.describe() + loss)

    return bar, update


def demo(outdir: Path, preset: str, device: str, steps: int | None = None, threads: int | None = None) -> int:
    """Denoise the built-in sample; write input, smooth, detail and a side-by-side PNG."""
    import numpy as np

    from .engine import denoise
    from .figures import side_by_side
    from .io import write_png, write_problem, write_tiff
    from .sample import clean_nuclei, noisy_nuclei

    if problem := write_problem(outdir):
        raise ValueError(problem)
    noisy, clean = noisy_nuclei(), clean_nuclei()
    bar, update = _progress_bar(f"Noise2Detail ({preset})")
    with bar:
        result = denoise(noisy, preset=preset, device=device, steps=steps, threads=threads, progress=update)

    def psnr(x: np.ndarray) -> float:
        peak = float(clean.max() - clean.min())
        return float(10 * np.log10(peak**2 / np.mean((x.astype(np.float64) - clean) ** 2)))

    written = [
        write_tiff(outdir / "nuclei_noisy.tif", noisy),
        write_tiff(outdir / "nuclei_n2d_smooth.tif", result.smooth),
        write_tiff(outdir / "nuclei_n2d_detail.tif", result.detail),
        write_png(outdir / "nuclei_side_by_side.png", side_by_side(
            [noisy, result.smooth, result.detail],
            labels=[f"{name} {psnr(image):.2f} dB" for name, image in
                    (("noisy", noisy), ("smooth", result.smooth), ("detail", result.detail))])),
    ]
    print(f"Denoised the built-in sample (256x256 fluorescence nuclei) on {result.device} "
          f"in {result.seconds:.1f} s.")
    print(f"PSNR against the clean image: noisy {psnr(noisy):.2f} dB, smooth {psnr(result.smooth):.2f} dB, "
          f"detail {psnr(result.detail):.2f} dB.")
    print("Wrote:")
    for path in written:
        print(f"  {path}")
    return 0


def fit_file(image: str, output: Path, rgb: bool, planes: list[int] | None, preset: str, device: str,
             seed: int, threads: int | None, settings: dict, channel: int | None = None) -> int:
    """Fit a model to one image (a file or a zarr store), or to one of its channels, and save
    it to ``output``."""
    from .engine import fit
    from .engine.model_file import is_model_file
    from .io import read_image, write_problem
    from .io.zarr import colour_last, is_zarr, read_zarr

    path = Path(image)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {image!r}")
    if output.is_dir():
        raise ValueError(f"-o names the model file to write; {output} is a folder")
    if output.exists() and output.resolve() == path.resolve():
        raise ValueError(f"-o is IMAGE itself ({output}): name a new file for the model, e.g. model.n2d")
    if output.exists() and not is_model_file(output):
        raise ValueError(f"{output} exists and is not a Noise2Detail model: a model is only written over a "
                         "model. Choose another name, e.g. model.n2d")
    if problem := write_problem(output.parent):
        raise ValueError(problem)  # found now, not after the fit
    if is_zarr(path):
        source = read_zarr(path)  # lazy: only the planes fitted on are read
        source = colour_last(source) if rgb else source  # OME-Zarr holds colour in its c axis
        data, meta = source.data, source.meta
    elif path.is_dir():
        raise ValueError(f"IMAGE is one image file or a zarr store; {path} is a folder")
    else:
        data, meta = read_image(path)
        rgb = rgb or meta.rgb
    planes, among, own = _channel_planes(data, rgb, meta.axes, channel, planes)
    bar, update = _progress_bar(f"Fitting {path.name}")
    began = time.perf_counter()
    with bar:
        model = fit(data, rgb=rgb, planes=planes, among=among, preset=preset, device=device, seed=seed,
                    threads=threads, progress=update, **settings)
    try:
        saved = model.save(output)
    except OSError as err:
        print(f"napari-noise2detail fit: error: cannot write {output}: {err.strerror or err}", file=sys.stderr)
        return 1
    fitted_on = (f"planes {', '.join(map(str, model.planes))}" if own is None else  # as --planes numbers them
                 f"planes {', '.join(str(own.index(p)) for p in model.planes)} of channel {channel}'s own")
    print(f"{model.describe()}, {fitted_on}; fitted in {time.perf_counter() - began:.1f} s.")
    how = (f": napari-noise2detail denoise --model {saved} IMAGES..." if own is None else
           f" one --model per channel, in channel order (this is channel {channel}'s): napari-noise2detail "
           f"denoise --model ... --model ... IMAGES...")
    print(f"Saved to {saved} ({saved.stat().st_size / 1024:.0f} kB). Apply it with{how}")
    return 0


def _channel_planes(data: Any, rgb: bool, axes: str | None, channel: int | None,
                    planes: list[int] | None) -> tuple[list[int] | None, list[int] | None, list[int] | None]:
    """The planes to fit on (``planes``, or those ``planes`` of ``channel``'s, numbered among
    its own), or else the planes to choose a few among (``channel``'s; None, None: a few of
    all); and ``channel``'s planes (None without a channel). A stack with several channels
    fitted on all of them gets a note: they are better fitted one at a time."""
    from .batch import channel_planes
    from .engine.planes import ImageInfo

    # from the shape alone: fit() checks the image (a whole pass over its pixels) itself
    channels = channel_planes(ImageInfo.of(data, rgb), axes)
    if channel is None:
        if len(channels) > 1 and planes is None:
            print(f"Note: the image has {len(channels)} channels (axes {axes}); the model is fitted on planes "
                  "of all of them. Channels that differ in brightness or gain are better fitted one at a "
                  "time: --channel N.", file=sys.stderr)
        return planes, None, None
    # An image with no channel axis has one channel, 0: tifffile drops a C axis of one (an
    # OME-TIFF of one channel reads as ZYX), and a script looping over channels asks for 0.
    count = len(channels)
    if not 0 <= channel < count:
        which = "one channel, 0" if count == 1 else f"channels 0 to {count - 1}"
        raise ValueError(f"--channel {channel}: the image has {which}")
    if count == 1:  # its planes are the image's: fitted as without --channel, one model for it
        return planes, None, None
    own = channels[channel]
    if planes is not None:  # numbered among the channel's own planes
        bad = [p for p in planes if not 0 <= p < len(own)]
        if bad:
            raise ValueError(f"--planes {','.join(map(str, bad))}: with --channel, planes are numbered among the "
                             f"channel's own, and channel {channel} has planes 0 to {len(own) - 1}")
        return [own[p] for p in planes], None, own
    return None, own, own  # (an image of one channel: every plane)


def _at_least_one(text: str) -> int:
    """A whole number of at least 1 (argparse names the option in its error)."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError("give a whole number of at least 1")
    return number


def _option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of --cluster-option; VALUE is read as JSON where it can be (8, ["a"])."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


@contextlib.contextmanager
def _where(args: argparse.Namespace, options: BatchOptions) -> Iterator[tuple[object, BatchOptions]]:
    """Where the batch runs: in this process (no Dask imported), or a Dask cluster's client,
    with the threads each image gets there."""
    from . import cluster

    if all(value is None for value in (args.workers, args.scheduler, args.cluster)):
        yield None, options
        return
    # What fails on the cluster reaches the user as an image's reason in the summary; the event
    # loop's own error log is noise there: distributed's sync() answers a Ctrl-C that lands in
    # it with a NameError traceback of its own (distributed 2026.8). Quiet while the batch runs.
    import logging

    cluster.require_dask()  # which sets up its logging: the level is set after
    loop_log = logging.getLogger("tornado.application")
    level = loop_log.level
    loop_log.setLevel(logging.CRITICAL)
    try:
        with _cluster(args, options) as (client, options):
            yield client, options
    finally:
        loop_log.setLevel(level)


@contextlib.contextmanager
def _cluster(args: argparse.Namespace, options: BatchOptions) -> Iterator[tuple[object, BatchOptions]]:
    """The cluster the options ask for: local workers, a running scheduler or dask-jobqueue jobs."""
    from . import cluster

    if args.workers is not None:
        from .engine.device import resolve_device

        device = resolve_device(options.device)
        gpus = 0
        if device.type == "cuda":
            import torch

            gpus = min(args.workers, torch.cuda.device_count())
        threads = options.threads or max(1, cluster.cores() // args.workers)
        with cluster.local_cluster(args.workers, gpus=gpus) as client:
            yield client, replace(options, threads=threads)
    elif args.scheduler is not None:
        with cluster.connect(args.scheduler) as client:
            yield client, options
    elif args.cluster is not None:
        settings = dict(args.cluster_option)
        per_worker = max(1, int(settings.get("cores", 1)) // int(settings.get("processes", settings.get("cores", 1))))
        with cluster.jobqueue_cluster(args.cluster, args.jobs or 1, settings) as client:
            yield client, replace(options, threads=options.threads or per_worker)


def _planes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"planes are numbers separated by commas, e.g. 0,10,20; got {text!r}") from None


def denoise_files(inputs: Sequence[str], outdir: Path | None, options: BatchOptions, client=None) -> int:
    """Denoise files, folders and globs with a progress bar; 0 if all succeeded, 1 if any failed.
    ``client``: a Dask client to run the images on its cluster.

    Raises ValueError/TypeError/FileNotFoundError for bad arguments, before any work.
    """
    from .console import ProgressDisplay

    paths = collect_inputs(inputs)
    if not paths:
        raise FileNotFoundError(f"no images found in {' '.join(inputs)}")
    run = run_batch(paths, outdir, options, client)
    results = []
    bar = ProgressDisplay()
    start = time.perf_counter()
    try:
        with bar:
            while True:
                try:
                    event = next(run)
                except StopIteration as done:
                    summary = done.value
                    break
                bar.show(event.fraction, event.describe(), item=event.name)
                if event.result is not None:
                    results.append(event.result)
                    if event.result.status == "done":
                        note = f" ({event.result.reason})" if event.result.reason else ""
                        bar.write(f"denoised {event.result.source} -> "
                                  f"{', '.join(str(p) for p in event.result.outputs)}{note}")
                    elif event.result.status == "failed":
                        bar.write(f"FAILED {event.result.source}: {event.result.reason}")
    except KeyboardInterrupt:
        run.close()  # the image being denoised is dropped; finished outputs are complete
        summary = BatchSummary(tuple(results), len(paths), time.perf_counter() - start, cancelled=True)
        print(summary.report())
        return 130
    print(summary.report())
    return 0 if summary.ok else 1


EXIT_STATUS = ("exit status: 0 done; 1 some images failed (denoise: each is named with its "
               "reason, the others are done; fit: the model could not be written); 2 bad arguments or an input that cannot be used "
               "(nothing written); 130 stopped with Ctrl-C (finished outputs are complete, "
               "nothing half-written is left under a final name)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-noise2detail",
        description="Data-free Noise2Detail denoising of microscopy images.",
        epilog=EXIT_STATUS,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser(
        "demo", help="denoise the built-in sample and write the results",
        description="Denoise the built-in sample (256x256 fluorescence nuclei with simulated camera "
                    "noise) and write the noisy image, both results and a labelled side-by-side PNG.",
        epilog=EXIT_STATUS)
    run_demo.add_argument("-o", "--outdir", type=Path, default=Path("n2d-demo"),
                          help="where to write the results (default: ./n2d-demo)")
    run_many = commands.add_parser(
        "denoise",
        help="denoise image files, folders or globs into <stem>_n2d_detail.tif files",
        description="Denoise every input into OUTDIR/<stem>_n2d_detail.tif (and _n2d_smooth.tif "
                    "with --save-smooth); a zarr or OME-Zarr input into <stem>_n2d_detail.ome.zarr, "
                    "plane by plane, never read whole. Outputs appear only when complete. Existing "
                    "outputs are skipped, so a re-run resumes an interrupted batch.",
        epilog=EXIT_STATUS,
    )
    run_many.add_argument("inputs", nargs="+", metavar="INPUT",
                          help="image files, folders (their image files) or globs such as 'data/*.tif'")
    run_many.add_argument("-o", "--outdir", type=Path, default=None,
                          help="output folder (default: beside each input)")
    run_many.add_argument("--save-smooth", action="store_true",
                          help="also write <stem>_n2d_smooth.tif")
    run_many.add_argument("--overwrite", action="store_true",
                          help="redo images whose outputs exist (default: skip them)")
    run_many.add_argument("--rgb", action="store_true",
                          help="treat the last axis (3 or 4) as colour; RGB TIFFs are detected anyway")
    run_many.add_argument("--dtype", choices=DTYPES, default="float32",
                          help="output dtype: float32 (default) or the input's, rounded and clipped")
    run_many.add_argument("--model", type=Path, action="append", default=None,
                          help="a saved model (.n2d, from 'napari-noise2detail fit') to apply to every "
                               "image, without fitting (--preset, --steps and --stabilise are then not used: "
                               "the model brings its own); repeated, one per channel in channel order "
                               "(from 'fit --channel N'), each applied to its channel")
    where = run_many.add_argument_group(
        "where to run (default: in this process)",
        "Needs the cluster extra: pip install 'napari-noise2detail[cluster]'. The same outputs, "
        "atomic and resumable as in one process; a worker that dies loses only its image, which "
        "another worker redoes.")
    choice = where.add_mutually_exclusive_group()
    choice.add_argument("--workers", type=_at_least_one, default=None, metavar="N",
                        help="a local Dask cluster of N worker processes, one image at a time each "
                             "(CPU: the cores shared between them; CUDA: one worker per GPU)")
    choice.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="a running Dask cluster, by its scheduler's address (tcp://host:8786); "
                             "start its workers with --nthreads 1")
    choice.add_argument("--cluster", choices=sorted(JOBQUEUE), default=None,
                        help="start workers as jobs of this scheduler (dask-jobqueue; its settings "
                             "from ~/.config/dask/jobqueue.yaml and --cluster-option)")
    where.add_argument("--jobs", type=_at_least_one, default=None, help="with --cluster: how many jobs to start (default 1)")
    where.add_argument("--cluster-option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                       help="with --cluster: a dask-jobqueue setting, e.g. cores=8, memory=16GB, queue=gpu, "
                            "walltime=02:00:00, 'job_extra_directives=[\"--gres=gpu:1\"]' (repeatable)")
    where.add_argument("--print-job-script", action="store_true",
                       help="with --cluster: print the job script it would submit, and exit")
    run_fit = commands.add_parser(
        "fit",
        help="fit a model to one image and save it (.n2d), to apply to other images without fitting",
        description="Fit N2D to IMAGE (a file, or a zarr / OME-Zarr store, of which only the planes "
                    "fitted on are read) and save the model to OUTPUT. Stacks: a few planes spread "
                    "evenly (of one channel, with --channel), or --planes.",
        epilog=EXIT_STATUS,
    )
    run_fit.add_argument("image", metavar="IMAGE", help="an image file or a zarr store")
    run_fit.add_argument("-o", "--output", type=Path, required=True, help="the model file to write (.n2d)")
    run_fit.add_argument("--planes", type=_planes, default=None,
                         help="planes to fit on, numbered through the leading axes, e.g. 0,10,20 "
                              "(with --channel: among that channel's planes; default: 5 spread evenly)")
    run_fit.add_argument("--channel", type=int, default=None,
                         help="fit on the planes of this channel only (numbered from 0), for a stack "
                              "with a channel axis (C); denoise fits each channel on its own")
    run_fit.add_argument("--rgb", action="store_true", help="the last axis (3 or 4) is colour")
    run_fit.add_argument("--seed", type=int, default=0, help="random seed of the fit (default 0)")
    for sub in (run_many, run_fit):
        sub.add_argument("--stabilise", action="store_true",
                         help="fit on the variance-stabilised image where the noise grows with the "
                              "signal (shot noise); helped on electron micrographs, hurt on brighter images")
    for sub in (run_demo, run_many, run_fit):
        sub.add_argument("--preset", choices=sorted(PRESETS), default="fast",
                         help=presets_explained("; "))
        sub.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
        sub.add_argument("--steps", type=_at_least_one, default=None,
                         help="stage-1 fitting steps, overriding the preset; stage 3 scales in proportion (fewer: faster, rougher)")
        sub.add_argument("--threads", type=_at_least_one, default=None,
                         help="CPU threads (default: all for applying the networks, and for fitting as "
                              "many as are fastest while it runs: one when other programs keep the "
                              "cores busy). A fixed number makes reruns bit-identical")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            return demo(args.outdir, args.preset, args.device, args.steps, args.threads)
        if args.command == "denoise":
            options = BatchOptions(
                preset=args.preset, device=args.device, save_smooth=args.save_smooth,
                overwrite=args.overwrite, dtype=args.dtype, rgb=True if args.rgb else None,
                threads=args.threads, model=args.model,
                settings={"steps": args.steps, "stabilise": args.stabilise or None},
            )
            for given, name in ((args.print_job_script, "--print-job-script"), (args.jobs is not None, "--jobs"),
                                (args.cluster_option, "--cluster-option")):
                if given and args.cluster is None:
                    raise ValueError(f"{name} goes with --cluster")
            if args.print_job_script:
                from .cluster import jobqueue_cluster_object

                print(jobqueue_cluster_object(args.cluster, dict(args.cluster_option)).job_script())
                return 0
            with _where(args, options) as (client, options):
                return denoise_files(args.inputs, args.outdir, options, client)
        if args.command == "fit":
            settings = {"steps": args.steps, "stabilise": args.stabilise or None}
            return fit_file(args.image, args.output, args.rgb, args.planes, args.preset, args.device,
                            args.seed, args.threads, settings, args.channel)
    except KeyboardInterrupt:
        print("napari-noise2detail: stopped; nothing was written", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"napari-noise2detail {args.command}: error: {err}", file=sys.stderr)  # as argparse says it
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())

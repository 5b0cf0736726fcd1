"""The ``napari-noise2detail`` console script."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from .batch import DTYPES, BatchOptions, BatchSummary, collect_inputs, run_batch
from .engine import PRESETS


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
    from .io import write_png, write_tiff
    from .sample import clean_nuclei, noisy_nuclei

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


def denoise_files(inputs: Sequence[str], outdir: Path | None, options: BatchOptions) -> int:
    """Denoise files, folders and globs with a progress bar; 0 if all succeeded, 1 if any failed.

    Raises ValueError/TypeError/FileNotFoundError for bad arguments, before any work.
    """
    from .console import ProgressDisplay

    paths = collect_inputs(inputs)
    if not paths:
        raise FileNotFoundError(f"no images found in {' '.join(inputs)}")
    run = run_batch(paths, outdir, options)
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
                        bar.write(f"denoised {event.result.source} -> "
                                  f"{', '.join(str(p) for p in event.result.outputs)}")
                    elif event.result.status == "failed":
                        bar.write(f"FAILED {event.result.source}: {event.result.reason}")
    except KeyboardInterrupt:
        run.close()  # the image being denoised is dropped; finished outputs are complete
        summary = BatchSummary(tuple(results), len(paths), time.perf_counter() - start, cancelled=True)
        print(summary.report())
        return 130
    print(summary.report())
    return 0 if summary.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-noise2detail",
        description="Data-free Noise2Detail denoising of microscopy images.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="denoise the built-in sample and write the results")
    run_demo.add_argument("-o", "--outdir", type=Path, default=Path("n2d-demo"),
                          help="where to write the results (default: ./n2d-demo)")
    run_many = commands.add_parser(
        "denoise",
        help="denoise image files, folders or globs into <stem>_n2d_detail.tif files",
        description="Denoise every input into OUTDIR/<stem>_n2d_detail.tif (and _n2d_smooth.tif "
                    "with --save-smooth). Existing outputs are skipped, so a re-run resumes an "
                    "interrupted batch. Exit status: 0 if every image succeeded, 1 if any failed, "
                    "2 for bad arguments.",
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
    run_many.add_argument("--stabilise", action="store_true",
                          help="fit on the variance-stabilised image where the noise grows with the "
                               "signal (shot noise); helped on electron micrographs, hurt on brighter images")
    for sub in (run_demo, run_many):
        sub.add_argument("--preset", choices=sorted(PRESETS), default="fast")
        sub.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
        sub.add_argument("--steps", type=int, default=None,
                         help="stage-1 fitting steps, overriding the preset; stage 3 scales in proportion (fewer: faster, rougher)")
        sub.add_argument("--threads", type=int, default=None,
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
                threads=args.threads,
                settings={"steps": args.steps, "stabilise": args.stabilise or None},
            )
            return denoise_files(args.inputs, args.outdir, options)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"napari-noise2detail: error: {err}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())

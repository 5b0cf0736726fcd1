"""Fit once, apply to every plane: against fitting every plane, on a z-stack and a time-lapse.

    python benchmarks/fit_once.py [--data ../shared/data] [--sections ABCDE] [--quick]

A. the confocal z-stack of ../shared/data (60 x 256 x 256 nuclei, lightly smoothed and scaled
   to [0, 1] as the clean reference) with Poisson noise (lambda 30);
B. a 100-frame 512 x 512 time-lapse made from the fluorescence nuclei image: the field drifts
   (up to 60 px) and bleaches (to 72 % by the last frame), Poisson noise (lambda 30 at the
   first frame);
   each with: `fast` plane by plane as `denoise()` does it (the first plane fitted, the others
   continuing from the plane before for 100 steps per stage), `fast` fitted once on 5 planes
   spread evenly and applied to all, and every 10th plane fitted on its own from scratch
   (the full fit, for reference). Seconds (fitting / in all), mean detail PSNR, worst plane.
C. memory: a 40-plane and a 400-plane 512 x 512 uint16 OME-Zarr stack through the batch (fitted
   once, written plane by plane into OME-Zarr): peak memory of the process;
D. applying a saved model to a 2048 x 2048 plane: seconds, no fitting;
E. channels: a two-channel z-stack (ZCYX, 24 planes of the confocal stack: the nuclei, and
   their outlines as a second stain) with Poisson noise and a camera offset, the second channel
   dimmer (same gain) or recorded at 5x the gain: one model fitted on planes of both channels
   against one model per channel (what the batch does). Mean detail PSNR per channel.

Every run is a fresh process (peak memory is its own); threads as the default (adaptive).
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

from common import FittingClock, centre_crop, isolated, machine, psnr

ROOT = Path(__file__).resolve().parents[1]


def zstack_clean(data_dir: Path, quick: bool) -> np.ndarray:
    stack = tifffile.imread(data_dir / "fluo_nuclei_confocal_zstack_3d.tif").astype(np.float64)
    stack = ndimage.gaussian_filter(stack, (0.5, 0.7, 0.7))  # its own noise, mostly gone
    stack = np.clip(stack / np.percentile(stack, 99.9), 0, 1)
    return stack[20:32] if quick else stack


def timelapse_clean(data_dir: Path, frames: int, size: int) -> np.ndarray:
    image = tifffile.imread(data_dir / "fluo_nuclei_dsb2018_2d.tif").astype(np.float64)
    image = image / image.max()
    canvas = np.pad(image, 64, mode="reflect")
    out = []
    for t in range(frames):
        dy, dx = 64 + round(40 * np.sin(t / 30)), 64 + round(60 * t / max(frames - 1, 1)) - 30
        frame = canvas[dy : dy + 512, dx : dx + 512]
        out.append(centre_crop(frame, size) * np.exp(-t / 300))
    return np.stack(out)


def poisson(clean: np.ndarray, lam: float = 30, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).poisson(lam * clean) / lam).astype(np.float32)


def plane_by_plane(noisy):
    from napari_noise2detail import denoise

    clock = FittingClock()
    return denoise(noisy, device="cpu", progress=clock).detail, clock.fitting


def fitted_once(noisy, **settings):
    from napari_noise2detail import fit

    began = time.perf_counter()
    model = fit(noisy, device="cpu", **settings)
    fitting = time.perf_counter() - began
    return model.apply(noisy).detail, fitting


def full_fits(noisy, every):
    from napari_noise2detail import denoise

    return [denoise(noisy[i], device="cpu", plane_steps=None).detail for i in range(0, len(noisy), every)]


def compare(name, clean, noisy, every):
    rows, scores = [], {}
    for label, func, settings in (("plane by plane (denoise)", plane_by_plane, {}),
                                  ("fitted once on 5 planes", fitted_once, {}),
                                  ("fitted once, shot noise stabilised", fitted_once, {"stabilise": True})):
        (detail, fitting), seconds, peak = isolated(functools.partial(func, **settings), noisy)
        per_plane = [psnr(detail[i], clean[i]) for i in range(len(clean))]
        scores[label] = per_plane
        rows.append([name, label, f"{fitting:.1f}", f"{seconds:.1f}", f"{peak:.0f}", f"{np.mean(per_plane):.2f}",
                     f"{min(per_plane):.2f}", f"{np.mean(per_plane[::every]):.2f}"])
        print(f"  {name} {label}: {seconds:.1f} s, {np.mean(per_plane):.2f} dB", flush=True)
    details, seconds, _ = isolated(full_fits, noisy, every)
    full = [psnr(d, clean[i * every]) for i, d in enumerate(details)]
    rows.append([name, f"every {every}th plane fitted on its own", "", f"{seconds:.1f} ({len(full)} planes)", "",
                 "", f"{min(full):.2f}", f"{np.mean(full):.2f}"])
    by = scores["plane by plane (denoise)"]
    parts = []
    for row, label in zip(rows[1:3], ("fitted once on 5 planes", "fitted once, shot noise stabilised")):
        once = scores[label]
        parts.append(f"{label}: {float(rows[0][3]) / float(row[3]):.1f}x faster than plane by plane, mean "
                     f"detail PSNR {np.mean(once) - np.mean(by):+.2f} dB (worst plane "
                     f"{min(np.subtract(once, by)):+.2f}), {np.mean(once[::every]) - np.mean(full):+.2f} dB "
                     f"against full fits of every {every}th plane")
    summary = f"{name}: " + "; ".join(parts) + f"; plane by plane {np.mean(by[::every]) - np.mean(full):+.2f} dB against them"
    return rows, summary


def _batch_zarr(path, outdir):
    from napari_noise2detail.batch import BatchOptions, run_batch

    run = run_batch([path], outdir, BatchOptions(device="cpu"))
    while True:
        try:
            next(run)
        except StopIteration as done:
            return done.value.ok


def section_c(planes_list, size=512):
    from napari_noise2detail.io.zarr import default_axes, ome_zarr_outputs

    rows, peaks = [], {}
    rng = np.random.default_rng(0)
    base = (np.random.default_rng(1).random((size, size)) * 0.2 + 0.4)
    with tempfile.TemporaryDirectory() as folder:
        for planes in planes_list:
            path = Path(folder) / f"stack{planes}.ome.zarr"
            with ome_zarr_outputs({"image": path}, (planes, size, size), default_axes(3), [1.0] * 3, np.uint16) as out:
                for i in range(planes):
                    out["image"][i] = rng.poisson(base * 3000).astype(np.uint16)
            ok, seconds, peak = isolated(_batch_zarr, path, Path(folder) / "out")
            peaks[planes] = peak
            size_gb = planes * size * size * 4 * 3 / 2**30
            rows.append([f"{planes} x {size}x{size} uint16 OME-Zarr", f"{seconds:.1f}", f"{peak:.0f}",
                         f"{size_gb:.2f}", "yes" if ok else "FAILED"])
            print(f"  C {planes} planes: {seconds:.1f} s, peak {peak:.0f} MiB", flush=True)
    small, large = planes_list
    summary = (f"memory: {large} planes peak at {peaks[large]:.0f} MiB, {peaks[large] / peaks[small]:.2f}x the "
               f"{small}-plane run ({peaks[small]:.0f} MiB)")
    header = ["input", "seconds", "peak MiB", "GiB the three float32 results would take", "complete"]
    return table(header, rows), summary


def _apply_only(size):
    from napari_noise2detail import fit

    rng = np.random.default_rng(0)
    small = rng.random((256, 256)).astype(np.float32)
    model = fit(small, device="cpu", steps=20)
    big = rng.random((size, size)).astype(np.float32)
    began = time.perf_counter()
    model.apply(big)
    return time.perf_counter() - began


def section_d(size):
    seconds, _total, peak = isolated(_apply_only, size)
    summary = f"applying a model to a {size}x{size} plane: {seconds:.1f} s (no fitting)"
    return table(["plane", "apply seconds", "peak MiB"], [[f"{size}x{size}", f"{seconds:.1f}", f"{peak:.0f}"]]), summary


def _channels(noisy, per_channel):
    from napari_noise2detail import fit

    out = np.zeros_like(noisy)
    began = time.perf_counter()
    if per_channel:
        for c in range(noisy.shape[1]):
            out[:, c] = fit(noisy[:, c], device="cpu").apply(noisy[:, c]).detail
    else:
        out = fit(noisy, device="cpu").apply(noisy).detail
    return out, time.perf_counter() - began


def section_e(data_dir, quick):
    stack = zstack_clean(data_dir, quick)
    half, middle = (4 if quick else 12), len(stack) // 2
    stack = stack[middle - half : middle + half]  # the middle planes, where the nuclei are
    outlines = np.stack([ndimage.gaussian_gradient_magnitude(p, 1.5) for p in stack])
    outlines = np.clip(outlines / np.percentile(outlines, 99.9), 0, 1)
    rows, summaries = [], []
    for case, brightness, gain in (("second channel at a fifth of the brightness", 0.2, 1.0),
                                   ("second channel at 5x the gain", 1.0, 5.0)):
        clean = np.stack([stack, brightness * outlines], axis=1)  # Z C Y X, in photons / 60
        gains = np.array([1.0, gain])[None, :, None, None]
        rng = np.random.default_rng(0)
        noisy = (gains * rng.poisson(60 * clean) + 100 + rng.normal(0, 2, clean.shape)).astype(np.float32)
        scores = {}
        for label, per_channel in (("one model for both channels", False), ("one model per channel", True)):
            (detail, seconds), _total, _peak = isolated(_channels, noisy, per_channel)
            unit = (detail.astype(np.float64) - 100) / (gains * 60)
            scores[label] = [np.mean([psnr(unit[z, c] / clean[:, c].max(), clean[z, c] / clean[:, c].max())
                                      for z in range(len(clean))]) for c in range(2)]
            rows.append([case, label, f"{seconds:.1f}", *(f"{v:.2f}" for v in scores[label])])
            print(f"  E {case}, {label}: {seconds:.1f} s, {scores[label]}", flush=True)
        gained = np.subtract(scores["one model per channel"], scores["one model for both channels"])
        summaries.append(f"{case}: one model per channel {gained[0]:+.2f} / {gained[1]:+.2f} dB on the two channels")
    header = ["stack", "run", "seconds", "channel 1 mean detail dB", "channel 2 mean detail dB"]
    return table(header, rows), "; ".join(summaries)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sections", default="ABCDE")
    parser.add_argument("--quick", action="store_true", help="small cases: a smoke run, not for the record")
    args = parser.parse_args()
    header = ["data", "run", "fitting s", "seconds", "peak MiB", "mean detail dB", "worst plane dB",
              "mean dB on the planes fitted on their own"]
    out = [f"Machine: {machine()}; threads adaptive.", "Command: `python benchmarks/fit_once.py"
           + (f" --sections {args.sections}" if args.sections != "ABCDE" else "") + (" --quick" if args.quick else "") + "`"]
    summaries, rows = [], []
    if "A" in args.sections:
        clean = zstack_clean(args.data, args.quick)
        r, s = compare(f"z-stack {len(clean)} x 256x256", clean, poisson(clean), 10 if not args.quick else 4)
        rows += r
        summaries.append(s)
    if "B" in args.sections:
        frames, size = (12, 256) if args.quick else (100, 512)
        clean = timelapse_clean(args.data, frames, size)
        r, s = compare(f"time-lapse {frames} x {size}x{size}", clean, poisson(clean), 10 if not args.quick else 4)
        rows += r
        summaries.append(s)
    if rows:
        out += ["## Fitted once against plane by plane", table(header, rows)]
    if "C" in args.sections:
        text, s = section_c((4, 40) if args.quick else (40, 400))
        out += ["## Memory: a zarr stack streamed through the batch", text]
        summaries.append(s)
    if "D" in args.sections:
        text, s = section_d(512 if args.quick else 2048)
        out += ["## Applying a saved model", text]
        summaries.append(s)
    if "E" in args.sections:
        text, s = section_e(args.data, args.quick)
        out += ["## Channels fitted together or one at a time", text]
        summaries.append(s)
    out += ["## Summary", "\n".join(f"- {s}" for s in summaries)]
    print("\n\n".join(out))


if __name__ == "__main__":
    main()

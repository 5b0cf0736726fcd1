"""Speed and quality of the presets: one table per question of the speed issue.

    python benchmarks/speed.py [--data ../shared/data] [--quick] [--sections ABCDEF] > docs/benchmarks.md

A. single 256x256 images (4 real images x Gaussian sigma 25/255 and Poisson lambda 30):
   `paper` vs `fast`, seconds, peak memory, stage PSNRs and SSIM, speed-up and PSNR change;
B. 512x512: `fast` against `paper`, whose time is extrapolated from a probe of a few hundred
   steps per stage (said so in the table);
C. a 20-plane stack of 256x256 planes with `fast`: its cost against one plane, and its mean
   detail PSNR against denoising every plane on its own;
D. a 4096x4096 uint16 image with `fast`: seconds, peak memory, and seconds per megapixel
   against a 1024x1024 crop of it;
E. threads on a quiet and on a busy CPU (one competing busy process per core): the built-in
   256x256 sample with 1 thread, all threads and adaptive threads (the default), seconds spent
   fitting and in total; and applying the networks to a 2048x2048 image with 1 and all
   threads; each the median of --repeats runs;
G. `quality` against `fast` by image size: the section-D image cropped to 256x256, 1024x1024
   and 2048x2048, seconds of each and their ratio (the filtering step's cost grows with the
   pixels, the fits' does not);
H. the inference tile on a CPU: the three stages applied (fitted-size networks, no fitting) to
   512x512, 1024x1024 and 2048x2048 images in float32 and bfloat16, with 1 and all threads,
   in tiles of 1024 pixels (the setting, as applied before) and in the device's tile
   (``device.inference_tile``); the median of --repeats runs;
F. beside napari: the sample denoised from the Noise2Detail widget in a napari window, alone
   and while another torch job (a convolution loop with torch's default threads) runs. Needs
   a display: run it under `xvfb-run -a`.

Each run is a fresh process, so the peak memory (RSS) is that run's own. Seconds are wall time
on this machine; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np

from common import FittingClock, add_noise, centre_crop, isolated, machine, psnr, real_images, ssim
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[1]


def clean_images(data_dir: Path, size: int) -> dict[str, np.ndarray]:
    """Clean-looking real images in [0, 1]: two microscopy, two classic test images."""
    real = real_images(data_dir, size)
    return {
        "fluo nuclei": real["fluo nuclei"],
        "EM (4x4 binned)": real["EM (4x4 binned)"],
        "camera": centre_crop(skdata.camera(), size) / 255.0,
        "moon": centre_crop(skdata.moon(), size) / 255.0,
    }


def run(noisy, preset, overrides):
    import os

    import torch

    from napari_noise2detail import denoise

    if os.environ.get("N2D_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["N2D_BENCH_THREADS"]))

    r = denoise(noisy, preset=preset, device="cpu", seed=0, **overrides)
    return r.partial, r.smooth, r.detail


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def section_a(images, noises, quick):
    rows, speedups, deltas = [], [], []
    for name, clean in images.items():
        for noise in noises:
            noisy = add_noise(clean, noise, seed=0).astype(np.float32)
            results = {}
            for preset in ("paper", "fast"):
                overrides = {"steps": 100} if (quick and preset == "paper") else {}
                (s1, s2, s3), secs, peak = isolated(run, noisy, preset, overrides)
                if quick and preset == "paper":
                    secs *= 20  # 100 of 2000 steps: extrapolated
                results[preset] = (psnr(s3, clean), secs)
                rows.append([name, noise, preset, f"{secs:.1f}", f"{peak:.0f}", f"{psnr(noisy, clean):.2f}",
                             f"{psnr(s1, clean):.2f}", f"{psnr(s2, clean):.2f}", f"{psnr(s3, clean):.2f}",
                             f"{ssim(s3, clean):.4f}"])
                print(f"  A {name} {noise} {preset}: {secs:.1f} s, detail {psnr(s3, clean):.2f} dB", flush=True)
            speedups.append(results["paper"][1] / results["fast"][1])
            deltas.append(results["fast"][0] - results["paper"][0])
            rows.append(["", "", "**fast vs paper**", f"**{speedups[-1]:.1f}x faster**", "", "", "", "",
                         f"**{deltas[-1]:+.2f} dB**", ""])
    summary = (f"fast vs paper over {len(deltas)} cases: {np.mean(speedups):.1f}x faster on average "
               f"(min {min(speedups):.1f}x); detail PSNR {np.mean(deltas):+.2f} dB on average, "
               f"worst {min(deltas):+.2f} dB")
    header = ["image", "noise", "preset", "seconds", "peak MiB", "noisy dB", "stage 1 dB", "smooth dB",
              "detail dB", "detail SSIM"]
    return table(header, rows), summary


def section_b(data_dir, quick):
    clean = clean_images(data_dir, 512)["fluo nuclei"]
    noisy = add_noise(clean, "poisson30", seed=0).astype(np.float32)
    probe = 20 if quick else 200
    _, probe_secs, _ = isolated(run, noisy, "paper", {"steps": probe})
    paper_secs = probe_secs * 2000 / probe
    (s1, s2, s3), fast_secs, peak = isolated(run, noisy, "fast", {})
    rows = [["paper (extrapolated from a probe of %d + %d steps)" % (probe, probe), f"{paper_secs:.0f}", "", ""],
            ["fast", f"{fast_secs:.1f}", f"{peak:.0f}", f"{psnr(s3, clean):.2f}"]]
    summary = f"512x512: fast is {paper_secs / fast_secs:.0f}x faster than paper (paper time extrapolated)"
    return table(["run", "seconds", "peak MiB", "detail dB"], rows), summary


def _stack_planes(clean, n):
    """n planes of a slowly drifting image: crops shifted by one pixel per plane."""
    return np.stack([clean[i : i + 256, i // 2 : i // 2 + 256] for i in range(n)])


def section_c(data_dir, quick):
    n = 5 if quick else 20
    big = clean_images(data_dir, 512)["fluo nuclei"]
    clean = _stack_planes(big, n)
    noisy = np.stack([add_noise(p, "poisson30", seed=i) for i, p in enumerate(clean)]).astype(np.float32)
    (_, _, stacked), stack_secs, stack_peak = isolated(run, noisy, "fast", {})
    alone, alone_secs = [], []
    for i in range(n):
        (_, _, s3), secs, _ = isolated(run, noisy[i], "fast", {})
        alone.append(psnr(s3, clean[i]))
        alone_secs.append(secs)
    stack_psnr = np.mean([psnr(stacked[i], clean[i]) for i in range(n)])
    rows = [[f"{n}-plane stack, fast", f"{stack_secs:.1f}", f"{stack_peak:.0f}", f"{stack_psnr:.2f}"],
            ["each plane on its own, fast (sum)", f"{sum(alone_secs):.1f}", "", f"{np.mean(alone):.2f}"],
            ["one plane, fast", f"{np.mean(alone_secs):.1f}", "", ""]]
    summary = (f"{n}-plane stack: {stack_secs / np.mean(alone_secs):.1f}x the time of one plane; mean detail "
               f"PSNR {stack_psnr - np.mean(alone):+.2f} dB against each plane on its own")
    return table(["run", "seconds", "peak MiB", "mean detail dB"], rows), summary


def section_d(quick):
    size = 1024 if quick else 4096
    rng = np.random.default_rng(0)
    base = skdata.cell().astype(np.float64) / 255.0
    tiles = np.tile(base, (size // base.shape[0] + 1, size // base.shape[1] + 1))[:size, :size]
    image = np.clip(rng.poisson(tiles * 300) + 100, 0, 65535).astype(np.uint16)
    (_, _, detail), big_secs, big_peak = isolated(run, image, "fast", {})
    crop = image[:1024, :1024] if size > 1024 else image[:512, :512]
    _, small_secs, small_peak = isolated(run, crop, "fast", {})
    mpx_big, mpx_small = image.size / 1e6, crop.size / 1e6
    rows = [[f"{size}x{size} uint16", f"{big_secs:.1f}", f"{big_peak:.0f}", f"{big_secs / mpx_big:.2f}"],
            [f"{crop.shape[0]}x{crop.shape[1]} crop of it", f"{small_secs:.1f}", f"{small_peak:.0f}",
             f"{small_secs / mpx_small:.2f}"]]
    summary = (f"{size}x{size}: peak memory {big_peak / 1024:.2f} GiB; {big_secs / mpx_big:.2f} s per megapixel "
               f"against {small_secs / mpx_small:.2f} for the crop")
    return table(["image", "seconds", "peak MiB", "seconds per megapixel"], rows), summary


def section_g(quick):
    sizes = (256, 512) if quick else (256, 1024, 2048)
    rng = np.random.default_rng(0)
    base = skdata.cell().astype(np.float64) / 255.0
    big = np.tile(base, (sizes[-1] // base.shape[0] + 1, sizes[-1] // base.shape[1] + 1))
    rows, ratios = [], []
    for size in sizes:
        image = np.clip(rng.poisson(big[:size, :size] * 300) + 100, 0, 65535).astype(np.uint16)
        _, fast_secs, _ = isolated(run, image, "fast", {})
        _, quality_secs, quality_peak = isolated(run, image, "quality", {})
        ratios.append(f"{quality_secs / fast_secs:.1f}x at {size}x{size}")
        rows.append([f"{size}x{size}", f"{fast_secs:.1f}", f"{quality_secs:.1f}", f"{quality_peak:.0f}",
                     f"{quality_secs / fast_secs:.2f}"])
        print(f"  G {size}: fast {fast_secs:.1f} s, quality {quality_secs:.1f} s", flush=True)
    summary = "quality against fast: " + ", ".join(ratios)
    return table(["image", "fast s", "quality s", "quality peak MiB", "quality / fast"], rows), summary


@contextlib.contextmanager
def busy(processes: int):
    """Keep ``processes`` CPU-bound processes running (``while True: pass``) inside the block."""
    import subprocess
    import sys

    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    time.sleep(1.0)
    try:
        yield
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()


def _sample_run(threads):
    """The sample with ``threads`` (None: adaptive): (seconds fitting, seconds in all)."""
    from napari_noise2detail import denoise
    from napari_noise2detail.sample import noisy_nuclei

    clock = FittingClock()
    denoise(noisy_nuclei(), device="cpu", seed=0, threads=threads, progress=clock)
    return clock.fitting, time.perf_counter() - clock.began


def _inference_run(threads):
    """Stages 1 and 2 of a fitted-size network applied to a 2048x2048 image: seconds."""
    import torch

    from napari_noise2detail.engine.network import make_network
    from napari_noise2detail.engine.stages import denoise_residual, refine

    torch.set_num_threads(threads)
    net = make_network(1).to(memory_format=torch.channels_last)
    x = torch.rand(1, 1, 2048, 2048).contiguous(memory_format=torch.channels_last)
    began = time.perf_counter()
    refine(net, x, denoise_residual(net, x, 1024), 1024)
    return time.perf_counter() - began


def section_e(repeats: int):
    import os

    cores = os.cpu_count() or 1
    rows, totals = [], {}
    for load in ("quiet", "busy"):
        with busy(cores) if load == "busy" else contextlib.nullcontext():
            for label, threads in (("1", 1), (f"all ({cores})", cores), ("adaptive (default)", None)):
                runs = [isolated(_sample_run, threads)[0] for _ in range(repeats)]
                fitting = float(np.median([r[0] for r in runs]))
                total = float(np.median([r[1] for r in runs]))
                totals[load, label] = total
                rows.append([load, "sample 256x256, fast", label, f"{fitting:.1f}", f"{total:.1f}",
                             " / ".join(f"{r[1]:.1f}" for r in runs)])
                print(f"  E {load} threads={label}: {total:.1f} s", flush=True)
            for label, threads in (("1", 1), (f"all ({cores})", cores)):
                runs = [isolated(_inference_run, threads)[0] for _ in range(repeats)]
                rows.append([load, "apply to 2048x2048 (stages 1-2)", label, "", f"{np.median(runs):.1f}",
                             " / ".join(f"{r:.1f}" for r in runs)])
    adaptive = "adaptive (default)"
    summary = (f"threads: the sample takes {totals['quiet', adaptive]:.1f} s quiet and "
               f"{totals['busy', adaptive]:.1f} s busy with adaptive threads "
               f"({totals['busy', adaptive] / totals['quiet', adaptive]:.2f}x); with all {cores} threads "
               f"{totals['busy', f'all ({cores})'] / totals['quiet', f'all ({cores})']:.1f}x, "
               f"with 1 thread {totals['busy', '1'] / totals['quiet', '1']:.2f}x")
    header = ["machine", "run", "threads", "fitting s", "seconds (median)", "each run"]
    return table(header, rows), summary


def _widget_run():
    """Denoise the sample from the widget in a napari window: seconds until the layers are in."""
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_noise2detail._napari.widget import DenoiseWidget
    from napari_noise2detail.sample import noisy_nuclei

    viewer = napari.Viewer(show=True)
    viewer.add_image(noisy_nuclei(), name="sample")
    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget)
    began = time.perf_counter()
    widget.start()
    while widget.running:
        QApplication.processEvents()
        time.sleep(0.01)
    seconds = time.perf_counter() - began
    viewer.close()
    return seconds


_TORCH_JOB = """
import torch
conv = torch.nn.Conv2d(48, 48, 3, padding=1)
x = torch.rand(1, 48, 256, 256)
while True:
    conv(x).sum().backward()
"""


def section_f(repeats: int):
    import subprocess
    import sys

    rows, medians = [], {}
    for label in ("alone", "beside another torch job"):
        job = subprocess.Popen([sys.executable, "-c", _TORCH_JOB]) if label != "alone" else None
        time.sleep(2.0 if job else 0.0)
        try:
            runs = [isolated(_widget_run)[0] for _ in range(repeats)]
        finally:
            if job:
                job.kill()
                job.wait()
        medians[label] = float(np.median(runs))
        rows.append([label, f"{medians[label]:.1f}", " / ".join(f"{r:.1f}" for r in runs)])
        print(f"  F {label}: {medians[label]:.1f} s", flush=True)
    ratio = medians["beside another torch job"] / medians["alone"]
    summary = f"napari widget: {ratio:.2f}x its time alone while another torch job runs"
    return table(["napari window with the widget", "seconds (median)", "each run"], rows), summary


def _stages_run(size: int, precision: str, tile: int, threads: int) -> float:
    """Stages 1-3 of fitted-size networks applied to a ``size`` x ``size`` image: seconds."""
    import torch
    from dataclasses import replace

    from napari_noise2detail import PRESETS
    from napari_noise2detail.engine.network import make_network
    from napari_noise2detail.engine.stages import detail, smooth

    torch.set_num_threads(threads)
    settings = replace(PRESETS["fast"], apply_precision=precision, tile=tile)
    f, g = make_network(1, seed=1), make_network(1, seed=2)
    x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        began = time.perf_counter()
        detail(g, smooth(f, x, settings)[1], settings)
        return time.perf_counter() - began


def section_h(repeats: int, quick: bool):
    import os

    import torch

    from napari_noise2detail.engine.device import inference_tile

    cores = os.cpu_count() or 1
    rows, gains = [], []
    for precision in ("float32", "bfloat16"):
        tile = inference_tile(1024, torch.device("cpu"), 48, precision)
        for size in (512, 1024) if quick else (512, 1024, 2048):
            for threads in (1, cores):
                before, after = (float(np.median([isolated(_stages_run, size, precision, t, threads)[0]
                                                  for _ in range(repeats)])) for t in (1024, tile))
                gains.append(before / after)
                rows.append([precision, f"{size}x{size}", str(threads), f"{before:.2f}", str(tile), f"{after:.2f}",
                             f"{before / after:.2f}x"])
                print(f"  H {precision} {size} threads={threads}: {before:.2f} -> {after:.2f} s", flush=True)
    summary = (f"CPU inference tile: stages 1-3 applied {min(gains):.2f}x to {max(gains):.2f}x faster in the "
               "device's tile than in tiles of 1024")
    header = ["precision", "image", "threads", "tiles of 1024 s", "device's tile", "seconds", "faster"]
    return table(header, rows), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="a short smoke run, not for the record")
    parser.add_argument("--sections", default="ABCD", help="any of ABCDEFGH (E and F: threads and load; G: quality against fast by size; H: CPU tile)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case in sections E, F and H")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in every run (default: torch's choice, all cores)")
    args = parser.parse_args()
    if args.threads:
        import os

        os.environ["N2D_BENCH_THREADS"] = str(args.threads)  # read by every run's fresh process

    from napari_noise2detail import PRESETS

    threads = f"; every run limited to {args.threads} torch thread(s)" if args.threads else ""
    out = [f"# Benchmarks\n\nMachine: {machine()}{threads}.", f"Presets: paper = `{PRESETS['paper']}`; "
           f"fast = `{PRESETS['fast']}`.", "Command: `python benchmarks/speed.py" + (" --quick" if args.quick else "")
           + (f" --threads {args.threads}" if args.threads else "")
           + (f" --sections {args.sections}" if args.sections != "ABCD" else "")
           + (f" --repeats {args.repeats}" if set(args.sections) & set("EFH") else "") + "`"]
    summaries = []
    if "A" in args.sections:
        images = clean_images(args.data, 256)
        if args.quick:
            images = dict(list(images.items())[:1])
        text, summary = section_a(images, ("gauss25", "poisson30"), args.quick)
        out += ["## A. One 256x256 image: paper vs fast", text]
        summaries.append(summary)
    if "B" in args.sections:
        text, summary = section_b(args.data, args.quick)
        out += ["## B. 512x512 (fluorescence nuclei, Poisson 30)", text]
        summaries.append(summary)
    if "C" in args.sections:
        text, summary = section_c(args.data, args.quick)
        out += ["## C. A stack of 256x256 planes (fluorescence nuclei drifting 1 px per plane, Poisson 30)", text]
        summaries.append(summary)
    if "D" in args.sections:
        text, summary = section_d(args.quick)
        out += ["## D. A large uint16 image (skimage cell tiled, Poisson noise)", text]
        summaries.append(summary)
    if "E" in args.sections:
        text, summary = section_e(args.repeats)
        out += ["## E. Threads on a quiet and a busy CPU (one busy process per core)", text]
        summaries.append(summary)
    if "F" in args.sections:
        text, summary = section_f(args.repeats)
        out += ["## F. Beside napari and another torch job", text]
        summaries.append(summary)
    if "G" in args.sections:
        text, summary = section_g(args.quick)
        out += ["## G. `quality` against `fast` by image size (skimage cell tiled, Poisson noise)", text]
        summaries.append(summary)
    if "H" in args.sections:
        text, summary = section_h(args.repeats, args.quick)
        out += ["## H. The inference tile on a CPU (stages 1-3 applied, no fitting)", text]
        summaries.append(summary)
    out += ["## Summary", "\n".join(f"- {s}" for s in summaries)]
    print("\n\n".join(out))


if __name__ == "__main__":
    main()

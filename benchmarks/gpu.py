"""Noise2Detail on a CUDA GPU: seconds, peak memory and quality, in one table.

    PYTHONPATH=src python benchmarks/gpu.py [--device cuda:0] [--quick]

Needs only torch, numpy and this package's engine: the test images are drawn here (smooth
blobs, fine lines and texture, with Gaussian noise sigma 25/255), so nothing is read or
downloaded. Rows: `fast` at 256x256, 1024x1024 and 4096x4096, a 20-plane 1024x1024 stack, an
RGB 1024x1024 image, `paper` at 256x256, and `quality` (fast plus its filtering step) at
1024x1024. At 256x256 the same seed is also run on the CPU, and the table gives the GPU's
detail PSNR minus the CPU's (for `paper`, whose CPU run takes minutes, on a line after the
table). Each row is printed as soon as it is measured, so a run cut short keeps its rows. Fit seconds are the time spent in
the two fitted stages; inference is the rest (normalising, applying the networks, copying
back). A first, untimed run on a small image pays CUDA's start-up. About 2 minutes on an H100.
Exits at once, with a message, where no CUDA GPU is visible.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def clean_image(size: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A clean test image in [0.05, 0.95], float64: blobs of many sizes, thin lines, texture.

    Large images repeat a 1024 x 1024 tile, mirrored so that no seams appear.
    """
    if size > 1024:
        tile = clean_image(1024, channels, seed)
        row = np.concatenate([tile, tile[:, ::-1]], axis=1)
        block = np.concatenate([row, row[::-1]], axis=0)
        reps = -(-size // 2048)
        return np.tile(block, (reps, reps) + (1,) * (block.ndim - 2))[:size, :size]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    planes = []
    for _ in range(channels):
        image = 0.15 + 0.1 * xx
        for _ in range(40):
            cy, cx = rng.uniform(0, 1, 2)
            r = rng.uniform(0.005, 0.06)
            image += rng.uniform(0.1, 0.5) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        for _ in range(12):  # thin straight filaments
            angle, offset = rng.uniform(0, np.pi), rng.uniform(-0.5, 0.5)
            distance = np.abs((xx - 0.5) * np.sin(angle) - (yy - 0.5) * np.cos(angle) - offset)
            image += 0.25 * np.exp(-(distance * size) ** 2 / 2)
        image += 0.05 * np.sin(2 * np.pi * 23 * xx) * np.sin(2 * np.pi * 17 * yy)  # texture
        planes.append(image)
    image = np.stack(planes, axis=-1) if channels > 1 else planes[0]
    return np.clip(0.05 + 0.9 * (image - image.min()) / (image.max() - image.min()), 0, 1)


def noisy(clean: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)


def psnr(estimate: np.ndarray, clean: np.ndarray) -> float:
    mse = float(np.mean((estimate.astype(np.float64) - clean) ** 2))
    return 10 * np.log10(1.0 / mse)


def timed_run(image: np.ndarray, device: str, **kwargs):
    """denoise() with its time split into fitting and the rest: the time up to each progress
    event of stage 1 or 3 was spent fitting (the events come every few steps)."""
    import torch

    from napari_noise2detail import denoise

    cuda = device.startswith("cuda")
    clock = {"last": 0.0, "fitting": 0.0}

    def progress(event):
        now = time.perf_counter()
        if event.stage in (1, 3):
            clock["fitting"] += now - clock["last"]
        clock["last"] = now

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    clock["last"] = began = time.perf_counter()
    result = denoise(image, device=device, seed=0, progress=progress, **kwargs)
    if cuda:
        torch.cuda.synchronize()
    total = time.perf_counter() - began
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
    return result, total, clock["fitting"], peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small cases only (a smoke test)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA GPU is visible to this torch build "
              f"(torch {torch.__version__}); nothing to measure.", file=sys.stderr)
        return 1
    name = torch.cuda.get_device_name(torch.device(args.device))
    print(f"GPU: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}; "
          f"CPU reference with {torch.get_num_threads()} threads", flush=True)
    timed_run(noisy(clean_image(64)), args.device, steps=20)  # CUDA start-up, not timed

    cases = [
        ("256x256", 256, 1, 1, "fast"),
        ("1024x1024", 1024, 1, 1, "fast"),
        ("4096x4096", 4096, 1, 1, "fast"),
        ("20 x 1024x1024 stack", 1024, 20, 1, "fast"),
        ("RGB 1024x1024", 1024, 1, 3, "fast"),
        ("256x256", 256, 1, 1, "paper"),
        ("1024x1024", 1024, 1, 1, "quality"),
    ]
    if args.quick:
        cases = [c for c in cases if c[1] <= 256]
    header = ["GPU", "image", "preset", "seconds", "fit s", "inference s", "peak GPU MiB",
              "noisy dB", "detail dB", "GPU - CPU dB"]
    # each row printed as soon as it is measured: a run stopped by a time limit keeps its rows
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)
    deferred = []  # paper's CPU reference takes minutes: measured last, after the table
    for label, size, planes, channels, preset in cases:
        clean = clean_image(size, channels)
        if planes > 1:  # a stack whose content drifts by a pixel per plane
            clean = np.stack([np.roll(clean, (k, k), axis=(0, 1)) for k in range(planes)])
        image = noisy(clean)
        result, total, fitting, peak = timed_run(image, args.device, preset=preset, rgb=channels == 3)
        detail = psnr(result.detail, clean)
        versus_cpu = ""
        if size == 256 and preset == "paper":
            versus_cpu = "below"
            deferred.append((label, preset, image, clean, detail))
        elif size == 256:
            on_cpu, *_ = timed_run(image, "cpu", preset=preset)
            versus_cpu = f"{detail - psnr(on_cpu.detail, clean):+.2f}"
        row = [name, label, preset, f"{total:.2f}", f"{fitting:.2f}", f"{total - fitting:.2f}",
               f"{peak:.0f}", f"{psnr(image, clean):.2f}", f"{detail:.2f}", versus_cpu]
        print("| " + " | ".join(row) + " |", flush=True)
    for label, preset, image, clean, detail in deferred:
        on_cpu, seconds, *_ = timed_run(image, "cpu", preset=preset)
        print(f"\n{preset} {label}: GPU - CPU {detail - psnr(on_cpu.detail, clean):+.2f} dB "
              f"(the CPU run took {seconds:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

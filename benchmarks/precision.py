"""Does bfloat16 cost quality? `fast` in float32 and in bfloat16, same seeds.

    python benchmarks/precision.py [--data ../shared/data] [--seeds 0 1 2 3] [--threads 2] [--what fit|apply]

4 real images (fluorescence nuclei, binned EM, camera, moon; 256x256) x 2 noises (Gaussian
sigma 25/255, Poisson lambda 30). ``--what fit`` (the default): each seed fitted in both
precisions (``precision``; applied in float32); one row per run, the mean difference and
speed-up. ``--what apply``: one fit per case (seed 0), its model applied in float32 and in
bfloat16 (``apply_precision``) to the same image and to a 2x2 tiling of it (512x512, timed). bfloat16 pays only where the CPU has it natively
(AVX512-BF16 or AMX); elsewhere it is emulated and slower, which is why `fast` chooses it only
there (precision "auto").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import add_noise, centre_crop, machine, psnr, real_images
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--what", choices=("fit", "apply"), default="fit")
    args = parser.parse_args()
    from napari_noise2detail import denoise

    real = real_images(args.data, 256)
    images = {"fluo nuclei": real["fluo nuclei"], "EM (4x4 binned)": real["EM (4x4 binned)"],
              "camera": centre_crop(skdata.camera(), 256) / 255.0,
              "moon": centre_crop(skdata.moon(), 256) / 255.0}
    print(f"Machine: {machine()}; threads: {args.threads or 'adaptive'}.\n")
    if args.what == "apply":
        return compare_apply(images, args.threads)
    print("| seed | image | noise | float32 dB | bfloat16 dB | difference | float32 s | bfloat16 s |")
    print("|---|---|---|---|---|---|---|---|")
    deltas, seconds = [], {"float32": [], "bfloat16": []}
    for seed in args.seeds:
        for name, clean in images.items():
            for noise in ("gauss25", "poisson30"):
                noisy = add_noise(clean, noise, seed=0).astype(np.float32)
                scores = {}
                for precision in ("float32", "bfloat16"):
                    began = time.perf_counter()
                    result = denoise(noisy, device="cpu", seed=seed, threads=args.threads, precision=precision)
                    seconds[precision].append(time.perf_counter() - began)
                    scores[precision] = psnr(result.detail, clean)
                deltas.append(scores["bfloat16"] - scores["float32"])
                print(f"| {seed} | {name} | {noise} | {scores['float32']:.2f} | {scores['bfloat16']:.2f} | "
                      f"{deltas[-1]:+.3f} | {seconds['float32'][-1]:.1f} | {seconds['bfloat16'][-1]:.1f} |",
                      flush=True)
    print(f"\nbfloat16 - float32 over {len(deltas)} runs: mean {np.mean(deltas):+.3f} dB, "
          f"from {min(deltas):+.3f} to {max(deltas):+.3f}; "
          f"{np.mean(seconds['float32']) / np.mean(seconds['bfloat16']):.2f}x faster")


def compare_apply(images: dict[str, np.ndarray], threads: int | None) -> None:
    from dataclasses import replace

    from napari_noise2detail import fit

    print("| image | noise | float32 dB | bfloat16 dB | difference | largest change | "
          "float32 s (512x512) | bfloat16 s (512x512) |")
    print("|---|---|---|---|---|---|---|---|")
    deltas, seconds = [], {"float32": [], "bfloat16": []}
    for name, clean in images.items():
        for noise in ("gauss25", "poisson30"):
            noisy = add_noise(clean, noise, seed=0).astype(np.float32)
            big = np.tile(noisy, (2, 2))
            model = fit(noisy, device="cpu", seed=0, threads=threads, apply_precision="float32")
            details, scores = {}, {}
            for precision in ("float32", "bfloat16"):
                model.settings = replace(model.settings, apply_precision=precision)
                details[precision] = model.apply(noisy, threads=threads).detail
                scores[precision] = psnr(details[precision], clean)
                model.apply(big, threads=threads)  # warm-up: oneDNN prepares its kernels
                began = time.perf_counter()
                model.apply(big, threads=threads)
                seconds[precision].append(time.perf_counter() - began)
            deltas.append(scores["bfloat16"] - scores["float32"])
            span = float(clean.max() - clean.min())
            change = float(np.abs(details["bfloat16"] - details["float32"]).max()) / span
            print(f"| {name} | {noise} | {scores['float32']:.3f} | {scores['bfloat16']:.3f} | "
                  f"{deltas[-1]:+.3f} | {100 * change:.2f} % | {seconds['float32'][-1]:.2f} | "
                  f"{seconds['bfloat16'][-1]:.2f} |", flush=True)
    print(f"\napplied in bfloat16 - float32 over {len(deltas)} cases: mean {np.mean(deltas):+.4f} dB, "
          f"from {min(deltas):+.4f} to {max(deltas):+.4f}; "
          f"{np.mean(seconds['float32']) / np.mean(seconds['bfloat16']):.2f}x faster")


if __name__ == "__main__":
    main()

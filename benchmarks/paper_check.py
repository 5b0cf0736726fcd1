"""Does the `paper` preset reproduce the authors' numbers, and what does `fast` cost?

Reference PSNRs (authors' code, paper settings) for stage 1 / 2 / 3:
camera 256x256 + Gaussian sigma 25/255: 27.21 / 27.16 / 27.81 dB;
moon 256x256 + Poisson lambda 30:        33.32 / 33.31 / 33.59 dB.

    python benchmarks/paper_check.py [--presets paper fast] [--seed 0]
"""

from __future__ import annotations

import argparse

from common import add_noise, clean_image, isolated, machine, psnr, ssim

REFERENCE = {("camera", "gauss25"): (27.21, 27.16, 27.81), ("moon", "poisson30"): (33.32, 33.31, 33.59)}


def run(noisy, preset, seed):
    from napari_noise2detail import denoise

    r = denoise(noisy, preset=preset, device="cpu", seed=seed)
    return r.partial, r.smooth, r.detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["paper", "fast"])
    parser.add_argument("--seed", type=int, default=0, help="noise draw")
    args = parser.parse_args()

    print(f"machine: {machine()}\n")
    header = (
        "| image | noise | preset | noisy dB | stage 1 dB | stage 2 dB | stage 3 dB "
        "| reference 1/2/3 dB | stage 3 - ref | SSIM 3 | seconds | peak MiB |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    seconds = {}
    for (name, noise), ref in REFERENCE.items():
        clean = clean_image(name)
        noisy = add_noise(clean, noise, args.seed).astype("float32")
        for preset in args.presets:
            (s1, s2, s3), secs, peak = isolated(run, noisy, preset, 0)
            seconds[name, preset] = secs
            print(
                f"| {name} | {noise} | {preset} | {psnr(noisy, clean):.2f} | {psnr(s1, clean):.2f} "
                f"| {psnr(s2, clean):.2f} | {psnr(s3, clean):.2f} | {ref[0]:.2f}/{ref[1]:.2f}/{ref[2]:.2f} "
                f"| {psnr(s3, clean) - ref[2]:+.2f} | {ssim(s3, clean):.4f} | {secs:.1f} | {peak:.0f} |",
                flush=True,
            )
    if "paper" in args.presets:
        for (name, preset), secs in seconds.items():
            if preset != "paper":
                print(f"\n{name}: {preset} is {seconds[name, 'paper'] / secs:.1f}x faster than paper", end="")
        print()


if __name__ == "__main__":
    main()

"""The figure of docs/quality.md: noisy | BM3D | fast | quality | clean, on one case of the table.

    python benchmarks/quality_figure.py [--image "fluo nuclei"] [--noise gauss25] [--out docs/images/quality.png]

The same noise draw as `quality.py run`; BM3D told the true noise model (see quality.py);
every panel shown with the contrast limits of the clean image. Prints each panel's PSNR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from common import add_noise, psnr
from quality import ROOT, benchmark_images, case_seed, run_bm3d

from napari_noise2detail import denoise
from napari_noise2detail.figures import display_range, side_by_side
from napari_noise2detail.io import write_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--image", default="fluo nuclei")
    parser.add_argument("--noise", default="gauss25")
    parser.add_argument("--presets", nargs="+", default=["fast", "quality"])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "quality.png")
    args = parser.parse_args()

    torch.set_num_threads(1)
    clean = benchmark_images(args.data)[args.image]
    rgb = clean.ndim == 3
    noisy = add_noise(clean, args.noise, case_seed(args.image, args.noise))
    panels = {"noisy": noisy, "BM3D true model": run_bm3d("BM3D true model", noisy, rgb, args.noise)[0]}
    for preset in args.presets:
        panels[preset] = denoise(noisy.astype(np.float32), rgb=rgb, preset=preset, device="cpu", seed=0,
                                 threads=1).detail
    panels["clean"] = clean
    for name, image in panels.items():
        print(f"{name}: {psnr(image, clean):.2f} dB")
    write_png(args.out, side_by_side(list(panels.values()), gap=6, limits=display_range(clean)))
    print(f"wrote {args.out}: " + " | ".join(panels))


if __name__ == "__main__":
    main()

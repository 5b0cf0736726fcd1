"""The figures of README.md and docs/: real outputs of the plugin on real microscopy data.

    .venv/bin/python scripts/make_figures.py [--data ../shared/data]

- docs/images/before_after_em.png: a 384x384 crop of a scanning-EM image with its own shot
  noise (skan's retic.tif): noisy | smooth | detail, labelled.
- docs/images/stages.png: the built-in sample (real nuclei + simulated camera noise):
  noisy | stage 1 | smooth (stage 2) | detail (stage 3) | clean reference, each labelled with
  its PSNR against the clean reference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile

from napari_noise2detail import denoise
from napari_noise2detail.figures import display_range, side_by_side
from napari_noise2detail.io import write_png
from napari_noise2detail.sample import clean_nuclei, noisy_nuclei

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--preset", default="fast")
    args = parser.parse_args()

    em = tifffile.imread(args.data / "em_sem_rbc_membrane_skeleton_2d.tif")[320:704, 576:960]
    result = denoise(em, preset=args.preset)
    print(f"EM crop {em.shape}: {result.seconds:.1f} s on {result.device}")
    write_png(IMAGES / "before_after_em.png", side_by_side([em, result.smooth, result.detail], gap=6,
                                                           labels=["noisy", "smooth", "detail"]))

    noisy, clean = noisy_nuclei(), clean_nuclei()
    result = denoise(noisy, preset=args.preset)
    print(f"nuclei sample: {result.seconds:.1f} s on {result.device}")
    panels = [noisy, result.partial, result.smooth, result.detail, clean]
    peak = float(clean.max() - clean.min())

    def psnr(x: np.ndarray) -> str:
        return f"{10 * np.log10(peak**2 / np.mean((x.astype(np.float64) - clean) ** 2)):.2f} dB"

    labels = [f"noisy {psnr(noisy)}", f"stage 1 {psnr(result.partial)}", f"smooth {psnr(result.smooth)}",
              f"detail {psnr(result.detail)}", "clean reference"]
    write_png(IMAGES / "stages.png", side_by_side(panels, gap=6, limits=display_range(clean), labels=labels))
    print(f"wrote {IMAGES / 'before_after_em.png'} and {IMAGES / 'stages.png'}")


if __name__ == "__main__":
    main()

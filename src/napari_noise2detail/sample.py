"""The built-in sample: real fluorescence nuclei with simulated camera noise, offline."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import tifffile

#: Simulated camera: photons per grey level of the clean crop, read noise (e-), baseline offset.
PHOTONS_PER_LEVEL = 0.15
READ_NOISE = 2.0
OFFSET = 100


def clean_nuclei() -> np.ndarray:
    """The clean reference, float32 (256, 256), in the noisy sample's units (photons + offset)."""
    path = files("napari_noise2detail") / "data" / "nuclei_dsb2018_crop.tif"
    with path.open("rb") as handle:
        crop = tifffile.imread(handle)
    return (crop * PHOTONS_PER_LEVEL + OFFSET).astype(np.float32)


def noisy_nuclei(seed: int = 0) -> np.ndarray:
    """The noisy sample, uint16 (256, 256): Poisson shot noise plus Gaussian read noise."""
    rng = np.random.default_rng(seed)
    signal = clean_nuclei().astype(np.float64) - OFFSET
    counts = rng.poisson(signal) + rng.normal(0, READ_NOISE, signal.shape) + OFFSET
    return np.clip(np.round(counts), 0, 65535).astype(np.uint16)

"""Shared pieces of the benchmark scripts: test images, noise, metrics, isolated runs."""

from __future__ import annotations

import multiprocessing as mp
import re
from pathlib import Path
import platform
import resource
import time

import numpy as np
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def centre_crop(image: np.ndarray, size: int = 256) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top : top + size, left : left + size]


def clean_image(name: str, size: int = 256) -> np.ndarray:
    """A clean-looking image scaled to [0, 1], float64."""
    image = getattr(data, name)()
    return centre_crop(image, size).astype(np.float64) / 255.0


def noise_model(kind: str) -> tuple[float, float, float]:
    """(lambda, sigma, clamp) of a noise name: ``gauss25`` (sigma 25/255, clamped to [0, 1]),
    ``poisson30`` (poisson(30 x) / 30), ``mixed30g15`` (both, not clamped)."""
    match = re.fullmatch(r"gauss(\d+)|poisson(\d+)|mixed(\d+)g(\d+)", kind)
    if not match:
        raise ValueError(f"unknown noise {kind!r}")
    gauss, poisson, mixed_p, mixed_g = match.groups()
    lam = float(poisson or mixed_p or 0)
    sigma = float(gauss or mixed_g or 0) / 255
    return lam, sigma, bool(gauss)


def true_variance(kind: str) -> tuple[float, float]:
    """(a, b) of the noise variance ``a * signal + b``, in [0, 1] units (clamping ignored)."""
    lam, sigma, _ = noise_model(kind)
    return (1 / lam if lam else 0.0), sigma**2


def add_noise(clean: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """``clean`` (in [0, 1]) with the noise :func:`noise_model` names, float64."""
    lam, sigma, clamp = noise_model(kind)
    rng = np.random.default_rng(seed)
    noisy = rng.poisson(lam * clean) / lam if lam else clean.copy()
    if sigma:
        noisy = noisy + rng.normal(0, sigma, clean.shape)
    return np.clip(noisy, 0, 1) if clamp else noisy


def real_images(data_dir: Path, size: int = 256) -> dict[str, np.ndarray]:
    """Clean-looking real microscopy images in [0, 1], one per modality, float64.

    fluorescence nuclei (DSB 2018) scaled by its maximum; scanning EM with real shot noise,
    4x4 binned (a mean of 16 pixels) to make a clean enough reference; histopathology (IHC,
    RGB) and quantitative phase (skimage ``cell``), 8-bit.
    """
    import tifffile

    fluo = tifffile.imread(data_dir / "fluo_nuclei_dsb2018_2d.tif").astype(np.float64)
    fluo = fluo[256:512, 0:256] if size == 256 else centre_crop(fluo, size)
    em = tifffile.imread(data_dir / "em_sem_rbc_membrane_skeleton_2d.tif").astype(np.float64)
    em = em.reshape(256, 4, 384, 4).mean(axis=(1, 3))
    return {
        "fluo nuclei": fluo / fluo.max(),
        "EM (4x4 binned)": centre_crop(em, min(size, 256)) / 255.0,
        "histo IHC (RGB)": centre_crop(data.immunohistochemistry(), size) / 255.0,
        "phase cell": centre_crop(data.cell(), size) / 255.0,
    }


def psnr(estimate: np.ndarray, clean: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(clean, estimate.astype(np.float64), data_range=1.0))


def ssim(estimate: np.ndarray, clean: np.ndarray) -> float:
    channel_axis = -1 if clean.ndim == 3 else None
    return float(
        structural_similarity(
            clean, estimate.astype(np.float64), data_range=1.0, channel_axis=channel_axis
        )
    )


def _child(queue, func, args):
    start = time.perf_counter()
    out = func(*args)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((out, seconds, peak_mib))


def isolated(func, *args):
    """Run ``func(*args)`` in a fresh process: returns (result, seconds, peak RSS in MiB).

    A fresh process per run makes the peak memory that run's own.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, func, args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(l.split(":", 1)[1].strip() for l in info if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"Python {platform.python_version()}"
    )


class FittingClock:
    """A ``progress`` callback that adds up the seconds spent in the fitting stages (1 and 3):
    each event's time since the one before is counted for the stage it reports."""

    def __init__(self) -> None:
        self.began = self.last = time.perf_counter()
        self.fitting = 0.0

    def __call__(self, event) -> None:
        now = time.perf_counter()
        if event.stage in (1, 3):
            self.fitting += now - self.last
        self.last = now

"""Shared pieces of the benchmark scripts: test images, noise, metrics, isolated runs."""

from __future__ import annotations

import multiprocessing as mp
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


def add_noise(clean: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """``gauss25``: N(0, 25/255) clamped to [0, 1]; ``poisson30``: poisson(30 x) / 30."""
    rng = np.random.default_rng(seed)
    if kind == "gauss25":
        return np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1)
    if kind == "poisson30":
        return rng.poisson(30 * clean) / 30.0
    raise ValueError(kind)


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

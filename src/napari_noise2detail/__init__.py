"""Noise2Detail denoising for napari, and as a plain Python library.

>>> from napari_noise2detail import denoise
>>> result = denoise(noisy_image)          # doctest: +SKIP
>>> result.smooth, result.detail           # doctest: +SKIP
"""

from ._version import __version__
from .engine import (
    PRESETS,
    Cancelled,
    DenoiseResult,
    Denoiser,
    Progress,
    Settings,
    denoise,
    denoise_iter,
    describe_device,
    fit,
    fit_iter,
    load_model,
)


__all__ = [
    "PRESETS",
    "Cancelled",
    "DenoiseResult",
    "Denoiser",
    "Progress",
    "Settings",
    "__version__",
    "denoise",
    "denoise_iter",
    "describe_device",
    "fit",
    "fit_iter",
    "load_model",
]

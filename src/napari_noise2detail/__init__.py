"""Noise2Detail denoising for napari, and as a plain Python library.

>>> from napari_noise2detail import denoise
>>> result = denoise(noisy_image)          # doctest: +SKIP
>>> result.smooth, result.detail           # doctest: +SKIP
"""

from .engine import (
    PRESETS,
    Cancelled,
    DenoiseResult,
    Progress,
    Settings,
    denoise,
    denoise_iter,
    describe_device,
)

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "Cancelled",
    "DenoiseResult",
    "Progress",
    "Settings",
    "__version__",
    "denoise",
    "denoise_iter",
    "describe_device",
]

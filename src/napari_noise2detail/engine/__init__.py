"""Qt-free Noise2Detail: numpy in, numpy out, torch inside."""

from .denoise import Cancelled, DenoiseResult, Progress, denoise, denoise_iter
from .device import describe_device, resolve_device
from .presets import PRESETS, Settings

__all__ = [
    "PRESETS",
    "Cancelled",
    "DenoiseResult",
    "Progress",
    "Settings",
    "denoise",
    "denoise_iter",
    "describe_device",
    "resolve_device",
]

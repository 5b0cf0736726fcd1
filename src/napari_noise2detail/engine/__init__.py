"""Qt-free Noise2Detail: numpy (or lazy dask/zarr arrays) in, numpy (or zarr) out, torch inside."""

from .denoise import denoise, denoise_iter
from .device import describe_device, resolve_device
from .model import Denoiser, fit, fit_iter
from .model_file import load_model
from .presets import PRESET_NOTES, PRESETS, Settings
from .results import Cancelled, DenoiseResult, HeldOut, Progress

__all__ = [
    "PRESETS",
    "PRESET_NOTES",
    "Cancelled",
    "DenoiseResult",
    "Denoiser",
    "HeldOut",
    "Progress",
    "Settings",
    "denoise",
    "denoise_iter",
    "describe_device",
    "fit",
    "fit_iter",
    "load_model",
    "resolve_device",
]

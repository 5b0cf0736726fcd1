"""The model file: a :class:`~.model.Denoiser` as one safetensors file, and back.

The file holds the two networks' weights and a JSON header with everything else that
reproduces the model's results (see :class:`~.model.Denoiser`). Loading runs no code (no
pickle), and a damaged, foreign or newer file is refused with a reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from .clipping import Clipping
from .model import Denoiser
from .network import make_network
from .presets import Settings
from .stabilise import NoiseModel

#: What a model file says it is, and the newest layout of it that this version reads.
FORMAT = "napari-noise2detail model"
FORMAT_VERSION = 2  # 2: "clipping" (an older reader would drop it and give other results)


def to_bytes(model: Denoiser) -> bytes:
    """The contents of ``model``'s file."""
    from safetensors.torch import save

    tensors = {f"{name}.{key}": value.detach().float().cpu().contiguous()
               for name, net in (("f", model.f), ("g", model.g))
               for key, value in net.state_dict().items()}
    about = {
        "version": model.version,
        "saved_by": __version__,
        "channels": model.channels,
        "low": [float(v) for v in np.ravel(model.low)],
        "high": [float(v) for v in np.ravel(model.high)],
        "noise": dataclasses.asdict(model.noise) if model.noise is not None else None,
        "seed": model.seed,
        "planes": list(model.planes),
        "settings": dataclasses.asdict(model.settings),
        "residual": list(model.residual) if model.residual is not None else None,
        "clipping": dataclasses.asdict(model.clipping) if model.clipping is not None else None,
        # (a check, not a result: readers that do not know it give the same results)
        "dark": list(model.dark) if model.dark is not None else None,
    }
    return save(tensors, {"format": FORMAT, "format_version": str(FORMAT_VERSION), "model": json.dumps(about)})


def save(model: Denoiser, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path``, atomically; returns the path."""
    from ..io import write_atomic

    # The bytes, not safetensors' save_file: that writes a private (0600) file of its own,
    # and a model is meant to be shared with colleagues like any other result.
    contents = to_bytes(model)
    return write_atomic(path, lambda temp: Path(temp).write_bytes(contents))


def is_model_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a model file (only its header is read): what may be written over."""
    try:
        with open(path, "rb") as file:
            size = int.from_bytes(file.read(8), "little")
            if not 0 < size <= 1 << 20:  # a model's header is a few kB
                return False
            header = json.loads(file.read(size))
    except (OSError, ValueError):
        return False
    about = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(about, dict) and about.get("format") == FORMAT


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> Denoiser:
    """A model saved with :meth:`Denoiser.save`, on ``device``. A file that is not such a
    model, is damaged or truncated, or was saved by a newer version is refused (ValueError)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a model file (a .n2d file saved by Save model... or "
                         "napari-noise2detail fit)")
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    return model_from_bytes(path.read_bytes(), device, str(path))


def model_from_bytes(data: bytes, device: str | torch.device = "auto", where: str = "the model") -> Denoiser:
    """The model whose file contents are ``data`` (see :meth:`Denoiser.to_bytes`)."""
    from safetensors.torch import load

    try:
        tensors = load(data)
        size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + size]).get("__metadata__") or {}
    except Exception as error:  # noqa: BLE001 - safetensors raises its own kinds for bad data
        raise ValueError(f"{where} is not a readable Noise2Detail model (damaged, truncated or "
                         f"another kind of file): {error}") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{where} is a safetensors file but not a Noise2Detail model")
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise ValueError(f"{where}: the model format version is unreadable") from None
    if version > FORMAT_VERSION:
        raise ValueError(f"{where} was saved by a newer napari-noise2detail (model format {version}; this "
                         f"version reads up to {FORMAT_VERSION}): update the plugin to use it")
    try:
        about = json.loads(metadata["model"])
        known = {field.name for field in dataclasses.fields(Settings)}
        settings = Settings(**{k: v for k, v in about["settings"].items() if k in known})
        channels = int(about["channels"])
        noise = NoiseModel(**about["noise"]) if about["noise"] is not None else None
        networks = []
        for name in ("f", "g"):
            net = make_network(channels, settings.width)
            state = {key[2:]: value for key, value in tensors.items() if key.startswith(f"{name}.")}
            net.load_state_dict(state, strict=True)
            networks.append(net.requires_grad_(False).eval())
        model = Denoiser(
            *networks, settings, channels, np.array(about["low"]), np.array(about["high"]), noise,
            int(about["seed"]), tuple(int(p) for p in about["planes"]), str(about["version"]),
            tuple(float(v) for v in about["residual"]) if about.get("residual") is not None else None,
            _clipping(about.get("clipping")),
            tuple(float(v) for v in about["dark"]) if about.get("dark") is not None else None,
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{where} is damaged: {error}") from None
    return model.to(device)


def _clipping(about: dict | None) -> Clipping | None:
    if about is None:
        return None
    number = lambda v: None if v is None else float(v)  # noqa: E731
    return Clipping(tuple(float(v) for v in about["sigma"]), tuple(number(v) for v in about["low"]),
                    tuple(number(v) for v in about["high"]))

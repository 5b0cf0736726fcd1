"""Choosing the torch device, and naming it for people."""

from __future__ import annotations

import torch


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU. Anything named explicitly must exist."""
    if isinstance(device, str) and device.strip().lower() == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} was asked for, but this torch build sees no CUDA GPU "
                "(install a CUDA build of torch, or use device='auto' or 'cpu')"
            )
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} was asked for, but only {torch.cuda.device_count()} "
                "CUDA device(s) are visible"
            )
    elif dev.type == "mps":
        if not _mps_available():
            raise ValueError(f"device {device!r} was asked for, but Apple MPS is not available here")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return dev


def describe_device(device: str | torch.device = "auto") -> str:
    """A short human description, e.g. ``"CPU, 8 threads"`` or ``"CUDA: NVIDIA RTX A4000"``."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(dev)}"
    if dev.type == "mps":
        return "Apple GPU (MPS)"
    threads = torch.get_num_threads()
    return f"CPU, {threads} thread{'s' if threads != 1 else ''}"

"""Choosing the torch device, and naming it for people."""

from __future__ import annotations

import math

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
                "(install a CUDA build of torch, or choose the device 'auto' or 'cpu')"
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


def describe_device(device: str | torch.device = "auto", threads: int | None = None) -> str:
    """A short human description of where a run goes, e.g. ``"CUDA: NVIDIA RTX A4000"``,
    ``"CPU, 1 thread"``, or with adaptive threads (``threads=None``, see :mod:`.threads`)
    ``"CPU, 8 threads (fewer for fitting while the machine is busy)"``."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(dev)}"
    if dev.type == "mps":
        return "Apple GPU (MPS)"
    most = threads or torch.get_num_threads()
    text = f"CPU, {most} thread{'s' if most != 1 else ''}"
    if threads is None and most > 1:
        text += " (fewer for fitting while the machine is busy)"
    return text


def tile_for_memory(free_bytes: int, width: int, smallest: int) -> int:
    """The side of the largest square that applying a network of ``width`` hidden channels can
    take using half of ``free_bytes`` (two hidden activations per pixel, plus the input, the
    output and room to spare), in steps of 256 pixels, and at least ``smallest``."""
    per_pixel = 4 * (3 * width + 8)
    side = int(math.sqrt(free_bytes / 2 / per_pixel)) // 256 * 256
    return max(side, smallest)


#: On a CPU, tiles are made small enough that one hidden activation fits in about this many
#: bytes: a whole 1024x1024 image streams its 48 hidden channels through main memory at every
#: layer, where tiles stay in the caches. Measured on 2 cores (docs/benchmarks.md#cpu-tiles):
#: 1.4-1.7x faster in bfloat16, 2.2-2.6x in float32, the same results bit for bit.
CPU_ACTIVATION_BYTES = 4 * 2**20


def inference_tile(tile: int | None, device: torch.device, width: int, precision: str = "float32") -> int | None:
    """The tile size to apply the networks with (the tiling is exact, so only speed and memory
    change): on CUDA, as large as half the free memory allows (fewer, larger launches); on a
    CPU, no larger than keeps a hidden activation of ``width`` channels in ``precision``
    (the apply precision, "auto" allowed) within :data:`CPU_ACTIVATION_BYTES`; elsewhere the
    setting as it is. None (whole images) stays None."""
    if tile is None:
        return tile
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return tile_for_memory(free, width, tile)
    if device.type == "cpu":
        size = 2 if resolve_precision(precision, device) == "bfloat16" else 4
        side = int(math.sqrt(CPU_ACTIVATION_BYTES / (width * size))) // 16 * 16
        return min(tile, max(side, 16))
    return tile


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (CUDA GPUs from Ampere on; CPUs with
    AVX512-BF16 or AMX), where it is faster than float32 rather than emulated."""
    if device.type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch before 2.3 has no including_emulation
            return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"``: bfloat16 where the device does it natively, float32 elsewhere."""
    if precision != "auto":
        return precision
    return "bfloat16" if native_bfloat16(device) else "float32"

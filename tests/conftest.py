import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_noise2detail._napari import remembered


def synthetic_cells(size: int = 64, seed: int = 0) -> np.ndarray:
    """A clean float image in [0.1, 0.9]: a few bright blobs on a gentle gradient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    image = 0.1 + 0.15 * xx / size
    for _ in range(max(size // 12, 3)):
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(size / 16, size / 7)
        image += 0.6 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return np.clip(image, 0.1, 0.9)


def with_a_blank_frame(planes: int, size: int = 24, blank: int = 3) -> np.ndarray:
    """A uint16 time-lapse of cells (camera offset 1000, gain 4, shot noise) whose plane
    ``blank`` is a blank frame (the shutter closed: offset and read noise only), darker than
    nearly all of the others: a model fitted on the others does not cover it."""
    rng = np.random.default_rng(2)
    clean = np.stack([synthetic_cells(size, seed=s) for s in range(planes)])
    stack = 1000 + 4 * rng.poisson(200 * clean + 20) + rng.normal(0, 3, clean.shape)
    stack[blank] = 1000 + rng.normal(0, 12, clean.shape[1:])
    return stack.astype(np.uint16)


def psnr(estimate: np.ndarray, clean: np.ndarray, data_range: float = 1.0) -> float:
    mse = np.mean((np.asarray(estimate, np.float64) - clean) ** 2)
    return float(10 * np.log10(data_range**2 / mse))


@pytest.fixture
def clean64() -> np.ndarray:
    return synthetic_cells(64)


@pytest.fixture
def noisy64(clean64) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (clean64 + rng.normal(0, 0.1, clean64.shape)).astype(np.float32)


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Test images are tiny: they gain nothing from threads, and on a busy machine torch's
    # threads wait on each other (one thread measured 10-40x faster here).
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def private_settings(tmp_path, monkeypatch):
    """Widgets remember their settings in a folder of the test's own."""
    monkeypatch.setenv(remembered.CONFIG_DIR_ENV, str(tmp_path / "config"))


def make_folder(folder: Path) -> dict[str, bytes]:
    """Two good images (with pixel size and axes), a corrupt file and a 4x4 image."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tifffile.imwrite(folder / "a.tif", (rng.random((24, 32)) * 1000).astype(np.uint16),
                     imagej=True, resolution=(1 / 0.25, 1 / 0.25), metadata={"axes": "YX", "unit": "um"})
    tifffile.imwrite(folder / "b.tif", rng.random((2, 16, 16)).astype(np.float32), imagej=True,
                     resolution=(2.0, 2.0), metadata={"axes": "ZYX", "spacing": 3.0, "unit": "um"})
    (folder / "corrupt.tif").write_bytes(b"II*\x00 this is not the rest of a TIFF")
    tifffile.imwrite(folder / "tiny.tif", np.ones((4, 4), np.uint8))
    return snapshot(folder)


def snapshot(folder: Path) -> dict[str, bytes]:
    """The bytes of every file in ``folder``, as digests."""
    return {p.name: hashlib.sha256(p.read_bytes()).digest() for p in sorted(folder.iterdir())}


def drain(run) -> tuple[list, object]:
    """A generator run to its end: all its events, and what it returns."""
    events: list = []
    while True:
        try:
            events.append(next(run))
        except StopIteration as done:
            return events, done.value


class OnePlaneAtATime:
    """A lazy array that serves one plane (or part of one) at a time and refuses to be read
    whole, the way a 50 GB zarr store must never be. napari asks for a plane as ``0:1``. An
    ``rgb`` one's planes are ``(H, W, colour)``."""

    def __init__(self, data, rgb=False):
        self.data, self.rgb = data, rgb
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim
        self.reads = 0

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        lead = self.ndim - (3 if self.rgb else 2)

        def one(i):
            return not isinstance(i, slice) or (i.stop is not None and i.stop - (i.start or 0) == 1)

        if len(index) < lead or not all(one(i) for i in index[:lead]):
            raise AssertionError(f"read more than a plane: {index}")
        self.reads += 1
        return self.data[index]

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the whole array was read")

import numpy as np
import pytest


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

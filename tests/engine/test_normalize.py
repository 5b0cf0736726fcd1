"""Intensities to [0, 1] and back: min-max, except that isolated hot or dead pixels do not
set the range."""

import numpy as np
import pytest

from conftest import psnr
from napari_noise2detail import denoise
from napari_noise2detail.engine.normalize import MARGIN, from_unit, to_unit, unit_range
from napari_noise2detail.sample import clean_nuclei, noisy_nuclei


def spot(sigma: float, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return 10 + 100 * np.exp(-((yy - 30) ** 2 + (xx - 30) ** 2) / (2 * sigma**2))


@pytest.mark.parametrize(
    "image",
    [
        np.random.default_rng(0).normal(100, 10, (64, 64)),  # noise excursions are not outliers
        spot(1.0),  # a sharp spot, the brightest thing in the image, keeps its peak
        spot(0.64),  # even an undersampled one (FWHM 1.5 pixels)
        np.random.default_rng(1).poisson(0.5, (64, 64)).astype(float),  # sparse counts
    ],
)
def test_without_isolated_outliers_the_map_is_min_max(image):
    low, high = unit_range(image[..., None])
    assert (low, high) == (image.min(), image.max())


def test_hot_and_dead_pixels_do_not_set_the_range_and_are_clipped():
    image = np.random.default_rng(0).normal(100, 10, (64, 64))
    image[5, 5] = 65535  # hot
    image[40, 20:22] = 60000  # a hot pair
    image[63, 63] = 1e6  # in a corner
    image[30, 0] = -5000  # dead (below an offset)
    low, high = unit_range(image[..., None])
    rest = np.delete(image.ravel(), [5 * 64 + 5, 40 * 64 + 20, 40 * 64 + 21, 63 * 64 + 63, 30 * 64])
    span = rest.max() - rest.min()
    assert rest.min() - (MARGIN + 0.1) * span < low <= rest.min()
    assert rest.max() <= high < rest.max() + (MARGIN + 0.1) * span
    unit = to_unit(image, low, high)
    assert unit.min() == 0 and unit.max() == 1 and unit[5, 5] == 1 and unit[30, 0] == 0
    inside = (image > low) & (image < high)
    assert np.allclose(from_unit(unit, low, high)[inside], image[inside], rtol=1e-6)


def test_many_hot_pixels_are_still_outliers():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, (128, 128))
    where = rng.choice(image.size, size=image.size // 200, replace=False)  # 0.5% of the pixels
    image.ravel()[where] = 4000
    _, high = unit_range(image[..., None])
    assert high < 100 + 10 * 10 * (MARGIN + 1)


def test_channels_share_one_width_when_asked():
    rng = np.random.default_rng(0)
    rgb = np.stack([rng.normal(m, s, (32, 32)) for m, s in ((0, 1), (50, 5), (-20, 2))], axis=-1)
    low, high = unit_range(rgb, per_channel=True)
    assert np.allclose(low, rgb.min(axis=(0, 1)))
    assert np.allclose(high - low, (rgb.max(axis=(0, 1)) - rgb.min(axis=(0, 1))).max())
    assert unit_range(rgb) == (rgb.min(), rgb.max())


def test_hot_pixels_no_longer_ruin_the_result():
    # Two hot pixels of a 16-bit camera took the sample's detail from 31 dB to 15 dB (below
    # the noisy image) when they set the range.
    noisy, clean = noisy_nuclei(), clean_nuclei()
    hot = noisy.copy()
    hot[10, 10], hot[200, 50] = 65535, 60000
    mask = np.ones(clean.shape, bool)
    mask[10, 10] = mask[200, 50] = False
    peak = float(clean.max() - clean.min())
    result = denoise(hot, steps=300, device="cpu")
    assert psnr(result.detail[mask], clean[mask], peak) > psnr(noisy[mask], clean[mask], peak) + 5
    assert result.detail[10, 10] < 2 * noisy.max()  # the hot pixel is not carried into the result


def test_a_flat_image_with_one_hot_pixel_is_left_as_it_is():
    image = np.full((32, 32), 100, np.uint16)
    image[3, 3] = 65535
    result = denoise(image, steps=2, width=4, device="cpu")
    assert np.array_equal(result.detail, image.astype(np.float32))


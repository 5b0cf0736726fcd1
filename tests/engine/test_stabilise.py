"""Noise estimation and the generalised Anscombe transform."""

import numpy as np
import pytest
from scipy import stats

from napari_noise2detail.engine.stabilise import (
    NoiseModel,
    estimate_noise,
    forward,
    inverse,
)

from conftest import synthetic_cells


def poisson_gaussian(clean: np.ndarray, a: float, b: float, seed: int = 0) -> np.ndarray:
    """``a * Poisson(clean / a) + N(0, b)``: variance ``a * clean + b``."""
    rng = np.random.default_rng(seed)
    shot = a * rng.poisson(clean / a) if a else clean
    return shot + rng.normal(0, np.sqrt(b), clean.shape)


@pytest.mark.parametrize(
    "scale, a, b",
    [
        (1.0, 1 / 30, 0.0),  # Poisson, 30 photons at 1
        (1.0, 1 / 100, 0.002),  # mixed
        (1.0, 1 / 10, 0.01),  # few photons, strong read noise
        (4000.0, 2.0, 400.0),  # a uint16 camera: gain 2 ADU per photon, read noise 20 ADU
    ],
)
def test_estimate_is_within_20_percent_of_the_true_model(scale, a, b):
    clean = synthetic_cells(256) * scale
    model = estimate_noise(poisson_gaussian(clean, a, b))
    assert model.a == pytest.approx(a, rel=0.2)
    # b is small next to a * signal in the Poisson cases: judge it against the variance at
    # the mean signal, which is what the transform depends on
    assert model.b == pytest.approx(b, abs=0.2 * max(b, 0.2 * a * clean.mean()))
    assert model.signal_dependent


def test_gaussian_noise_is_not_signal_dependent():
    clean = synthetic_cells(256)
    model = estimate_noise(poisson_gaussian(clean, 0.0, 0.05**2))
    assert model.b == pytest.approx(0.05**2, rel=0.2)
    assert model.a < 0.1 * model.b / clean.mean()
    assert not model.signal_dependent


def test_gaussian_noise_clamped_at_zero_is_not_mistaken_for_shot_noise():
    # a dark background clamped at 0 has a lower variance there, as shot noise would
    clean = synthetic_cells(256) - 0.1
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1)
    assert not estimate_noise(noisy).signal_dependent


def test_shot_noise_zero_counts_are_not_taken_for_clipping():
    clean = synthetic_cells(256) - 0.08  # a background of about 0.2 photons
    noisy = np.random.default_rng(0).poisson(10 * clean) / 10
    model = estimate_noise(noisy)
    assert model.a == pytest.approx(0.1, rel=0.2)
    assert model.signal_dependent


def test_stacks_are_pooled_and_flat_or_tiny_images_give_no_estimate():
    clean = np.stack([synthetic_cells(128, seed) for seed in range(3)])
    model = estimate_noise(poisson_gaussian(clean, 0.02, 0.0))
    assert model.a == pytest.approx(0.02, rel=0.2)
    assert estimate_noise(np.full((64, 64), 3.0)) is None
    assert estimate_noise(np.random.default_rng(0).random((6, 6))) is None


@pytest.mark.parametrize("sigma2", [0.0, 0.25, 4.0])
def test_the_transform_makes_the_noise_variance_about_one(sigma2):
    rng = np.random.default_rng(0)
    for photons in (5.0, 20.0, 100.0):
        z = rng.poisson(photons, 200_000) + rng.normal(0, np.sqrt(sigma2), 200_000)
        assert forward(z, NoiseModel(1.0, sigma2)).var() == pytest.approx(1.0, abs=0.1)


def test_the_inverse_is_unbiased_for_poisson_counts():
    # E[forward(Z)] for Z ~ Poisson(lam), summed exactly, maps back to lam
    k = np.arange(0, 400)
    for lam in (0.5, 1.0, 3.0, 10.0, 50.0):
        mean_transformed = np.sum(stats.poisson.pmf(k, lam) * forward(k, NoiseModel(1.0, 0.0)))
        assert inverse(mean_transformed, NoiseModel(1.0, 0.0)) == pytest.approx(lam, abs=0.05, rel=0.01)


def test_the_inverse_is_unbiased_with_gain_and_read_noise():
    rng = np.random.default_rng(0)
    model = NoiseModel(a=2.0, b=9.0)  # 2 ADU per photon, read noise 3 ADU
    for photons in (2.0, 10.0, 100.0):
        z = 2.0 * rng.poisson(photons, 1_000_000) + rng.normal(0, 3.0, 1_000_000)
        assert inverse(forward(z, model).mean(), model) == pytest.approx(2.0 * photons, abs=0.1, rel=0.01)


def test_the_inverse_is_monotonic_and_near_the_algebraic_one_at_high_counts():
    model = NoiseModel(0.01, 1e-4)
    d = np.linspace(0.0, 50.0, 2001)
    assert np.all(np.diff(inverse(d, model)) > 0)
    z = np.linspace(0.5, 1.0, 11)  # 50 to 100 photons
    # the unbiased inverse differs from the algebraic one by the bias of sqrt: a / 4
    assert np.allclose(inverse(forward(z, model), model), z + model.a / 4, atol=0.1 * model.a)


def test_a_camera_offset_gain_and_read_noise_are_recovered_in_its_units():
    clean = synthetic_cells(128)
    rng = np.random.default_rng(0)
    image = 100 + 2 * rng.poisson(50 * clean) + rng.normal(0, 3, clean.shape)  # offset 100 ADU
    model = estimate_noise(image)
    assert model.signal_dependent
    assert model.a == pytest.approx(2.0, rel=0.2)
    truth = 2 * (model.level - 100) + 9  # variance at the typical level: gain x (signal - offset) + read^2
    assert model.variance(model.level) == pytest.approx(truth, rel=0.2)
    assert "- " in model.describe()  # b is negative with an offset, and said so plainly


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_the_estimate_scales_with_the_data(scale):
    clean = synthetic_cells(128)
    noisy = poisson_gaussian(clean, 1 / 30, 1e-4)
    base, scaled = estimate_noise(noisy), estimate_noise(noisy * scale)
    assert scaled.signal_dependent == base.signal_dependent
    assert scaled.a == pytest.approx(base.a * scale, rel=1e-6)
    assert scaled.b == pytest.approx(base.b * scale**2, rel=1e-6, abs=1e-12 * scale**2)


@pytest.mark.parametrize(
    "image, sd",
    [
        (1e6 + np.random.default_rng(0).normal(0, 1, (64, 64)), 1.0),  # far from zero
        (np.random.default_rng(1).normal(-1000, 10, (65, 67)).round(), 10.0),  # negative, odd size
        (np.tile(np.arange(64.0), (64, 1)), 0.0),  # no noise at all
    ],
)
def test_even_or_no_noise_is_never_called_shot_noise(image, sd):
    model = estimate_noise(image)
    assert not model.signal_dependent
    assert np.sqrt(max(model.variance(model.level), 0)) == pytest.approx(sd, rel=0.2, abs=1e-6)
    assert "even across the image" in model.describe()


def test_pure_gaussian_noise_on_small_images_is_never_called_shot_noise():
    # a small image gives a poorly determined slope; only a well-determined one counts
    rng = np.random.default_rng(1)
    assert not any(estimate_noise(rng.normal(0, 1, (65, 67))).signal_dependent for _ in range(20))

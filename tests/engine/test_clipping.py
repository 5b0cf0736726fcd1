"""Undoing the clipping's bias (`declip`, on in `quality`)."""

import numpy as np
import pytest
import torch

from napari_noise2detail import denoise, fit, load_model
from napari_noise2detail.engine import clipping
from napari_noise2detail.engine.clipping import Clipping, clipped_limits, declip, estimate

from conftest import synthetic_cells


def clipped(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, clean.shape)
    return np.clip(clean + noise, 0, 1)


def test_the_clipped_moments_are_those_of_clipped_noise():
    x = torch.tensor([-0.1, 0.0, 0.05, 0.5, 0.97, 1.2], dtype=torch.float64)
    mean, second = clipping._moments(x, 0.1, 0.0, 1.0)
    draws = np.clip(x.numpy()[:, None] + np.random.default_rng(0).normal(0, 0.1, (6, 400_000)), 0, 1)
    assert mean.numpy() == pytest.approx(draws.mean(1), abs=1e-3)
    assert second.numpy() == pytest.approx((draws**2).mean(1), abs=1e-3)
    # one-sided: no upper limit is plain noise above
    mean, _ = clipping._moments(x, 0.1, 0.0, None)
    assert mean.numpy() == pytest.approx(np.maximum(x.numpy()[:, None] + np.random.default_rng(1).normal(0, 0.1, (6, 400_000)), 0).mean(1), abs=1e-3)


def test_declipping_inverts_the_clipped_mean_within_the_limits():
    x = torch.linspace(0, 1, 101, dtype=torch.float64)
    mean = clipping._moments(x, 0.08, 0.0, 1.0)[0]
    back = declip(mean.numpy()[:, None], Clipping((0.08,), (0.0,), (1.0,)))[:, 0]
    assert back == pytest.approx(x.numpy(), abs=1e-4)


def test_only_limits_that_hold_many_pixels_count_as_clipping():
    clean = 0.1 + 0.6 * synthetic_cells(64)
    assert clipped_limits(np.clip(clean + 0.02 * np.random.default_rng(0).normal(size=clean.shape), 0, 1)[None, ..., None]) is None
    low, high = clipped_limits(clipped(clean - 0.1, 0.1)[None, ..., None])
    assert low == [0.0] and high == [None]  # the dark background sits on 0, nothing reaches 1


def test_the_noise_sigma_is_found_from_the_clipped_image():
    clean = synthetic_cells(96) * 0.5  # half of it dark background: much of the noise clipped
    noisy = clipped(clean, 0.1)[None, ..., None]
    # what a perfect denoiser gives: the clipped image's mean
    perfect = clipping._moments(torch.from_numpy(clean), 0.1, 0.0, 1.0)[0].numpy()
    found = estimate(noisy, perfect[None, ..., None], clipped_limits(noisy))
    assert found.sigma[0] == pytest.approx(0.1, rel=0.05)
    # N2D's own estimate of Gaussian noise is taken as it is
    assert estimate(noisy, perfect[None, ..., None], clipped_limits(noisy), known=0.07).sigma == (0.07,)


def test_a_camera_image_far_from_zero_and_saturated_is_declipped_in_its_own_units():
    # a 12-bit camera: offset 3000, saturated at 4095, sigma 20 (what the first version,
    # matching raw second moments on a coarse table, got wrong by 60x)
    clean = 3000.0 + 1300.0 * synthetic_cells(96)
    noisy = np.clip(np.round(clean + np.random.default_rng(0).normal(0, 20, clean.shape)), None, 4095)
    raw = noisy.astype(np.uint16)[None, ..., None]
    limits = clipped_limits(raw)
    assert limits == ([None], [4095.0])
    perfect = clipping._moments(torch.from_numpy(clean), 20.0, None, 4095.0)[0].numpy()
    found = estimate(raw, perfect[None, ..., None], limits, integer=True)
    assert found.sigma[0] == pytest.approx(20, rel=0.1)
    back = declip(perfect[..., None], found)[..., 0]
    unsaturated = clean < 4095 - 3 * 20
    assert np.abs(back - clean)[unsaturated].max() < 0.05  # the identity away from the limit
    saturated = (clean > 4095 - 20) & (clean < 4095)
    assert np.abs(back - clean)[saturated].mean() < 0.3 * np.abs(perfect - clean)[saturated].mean()


def test_low_photon_counts_and_images_no_clipped_gaussian_fits_are_left_alone():
    # shot noise at a few photons whose model could not be estimated: integer, sigma of
    # about one count: not taken for clipped Gaussian noise
    clean = 0.5 + 3 * synthetic_cells(96)
    counts = np.random.default_rng(0).poisson(clean)[None, ..., None]
    assert estimate(counts, clean[None, ..., None], clipped_limits(counts), integer=True) is None
    # a residual no clipped Gaussian can give (far more than the data's range allows)
    noisy = clipped(synthetic_cells(64) * 0.5, 0.1)[None, ..., None]
    assert estimate(noisy, 1 - noisy, clipped_limits(noisy)) is None


def test_quality_frees_a_clipped_image_of_the_bias_and_a_saved_model_keeps_it(tmp_path):
    clean = synthetic_cells(64) * 0.5
    noisy = clipped(clean, 0.15).astype(np.float32)
    quick = {"steps": 60, "width": 16, "device": "cpu"}
    plain = denoise(noisy, preset="quality", declip=False, **quick)
    freed = denoise(noisy, preset="quality", **quick)
    error = lambda r: float(np.mean((r.detail - clean) ** 2))  # noqa: E731
    assert error(freed) < 0.85 * error(plain)  # 0.79 here, with these short fits
    assert freed.clipping is not None and plain.clipping is None  # and the result says so
    model = fit(noisy, preset="quality", **quick)
    assert model.clipping is not None and model.clipping.low == (0.0,)
    applied = model.apply(noisy)
    assert np.array_equal(applied.detail, freed.detail) and applied.clipping == model.clipping
    again = load_model(model.save(tmp_path / "m.n2d"), device="cpu")
    assert again.clipping == model.clipping
    assert np.array_equal(again.apply(noisy).detail, freed.detail)


def test_a_model_saved_before_clipping_was_kept_still_loads(tmp_path, noisy64):
    import json

    from safetensors.torch import load, save

    model = fit(noisy64, steps=12, width=8, device="cpu")
    data = model.to_bytes()
    size = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + size])["__metadata__"]
    about = json.loads(metadata["model"])
    del about["clipping"]  # as format 1 wrote it
    metadata.update(model=json.dumps(about), format_version="1")
    (tmp_path / "old.n2d").write_bytes(save(load(data), metadata))
    old = load_model(tmp_path / "old.n2d", device="cpu")
    assert old.clipping is None and np.array_equal(old.apply(noisy64).detail, model.apply(noisy64).detail)


def test_an_unclipped_image_is_left_as_it_was(noisy64):
    quick = {"steps": 60, "width": 16, "device": "cpu"}
    model = fit(noisy64, preset="quality", **quick)
    assert model.clipping is None
    assert np.array_equal(model.apply(noisy64).detail, denoise(noisy64, preset="quality", declip=False, **quick).detail)

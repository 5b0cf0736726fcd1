"""The switches beyond the paper: stabilising shot noise, ensembling, opponent colours."""

import numpy as np
import pytest
import torch
from torch import nn

from conftest import psnr, synthetic_cells
from napari_noise2detail import denoise
from napari_noise2detail.engine.colour import from_opponent, to_opponent
from napari_noise2detail.engine.network import apply_ensembled

FIT = dict(preset="paper", steps=150, width=16, device="cpu")


class Corner(nn.Module):
    """Not flip or rotation equivariant: each pixel plus its right-hand neighbour."""

    def forward(self, x):
        return x + torch.nn.functional.pad(x[..., :, 1:], (0, 1))


def test_ensembling_undoes_every_transform():
    x = torch.arange(2 * 36, dtype=torch.float32).reshape(2, 1, 6, 6)
    for ensemble in (1, 2, 4, 8):
        # the identity comes back exactly: every flip and turn is inverted
        assert torch.equal(apply_ensembled(nn.Identity(), x, ensemble=ensemble), x)
    # a network that is not equivariant: the mean of its transformed applications, written out
    net = Corner()
    half_turn = torch.rot90(net(torch.rot90(x, 2, (-2, -1))), -2, (-2, -1))
    assert torch.allclose(apply_ensembled(net, x, ensemble=2), (net(x) + half_turn) / 2)
    assert not torch.allclose(apply_ensembled(net, x, ensemble=8), net(x))


def test_ensembling_leaves_a_constant_image_constant():
    image = np.full((24, 24), 0.25, np.float32)
    result = denoise(image, ensemble=8, **FIT)
    assert np.array_equal(result.detail, image)
    # and a ramp, which a 1x1 convolution network maps pixel by pixel, stays a function of the
    # pixel value: the ensemble average of a pointwise map is that map
    net = nn.Conv2d(1, 1, 1)
    ramp = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(apply_ensembled(net, ramp, ensemble=8), net(ramp), atol=1e-6)


def test_ensembled_denoising_still_denoises():
    clean = synthetic_cells(64)
    noisy = (clean + np.random.default_rng(1).normal(0, 0.1, clean.shape)).astype(np.float32)
    result = denoise(noisy, ensemble=8, **FIT)
    assert psnr(result.detail, clean) > psnr(noisy, clean) + 4


def shot_noise(clean, photons, seed=0):
    return (np.random.default_rng(seed).poisson(photons * clean) / photons).astype(np.float32)


def test_stabilising_shot_noise_is_reported_and_denoises():
    clean = synthetic_cells(64)
    noisy = shot_noise(clean, 20)
    result = denoise(noisy, stabilise=True, **FIT)
    assert result.noise.signal_dependent and result.noise.stabilised
    assert result.noise.a == pytest.approx(1 / 20, rel=0.3)
    assert "shot noise" in result.noise.describe() and "stabilised" in result.noise.describe()
    assert psnr(result.detail, clean) > psnr(noisy, clean) + 4
    # the inverse is unbiased: no shift of the mean brightness
    assert abs(result.detail.mean() - clean.mean()) < 0.01


def test_even_noise_is_not_stabilised_even_when_asked():
    clean = synthetic_cells(64)
    noisy = (clean + np.random.default_rng(1).normal(0, 0.1, clean.shape)).astype(np.float32)
    result = denoise(noisy, stabilise=True, **FIT)
    assert not result.noise.signal_dependent and not result.noise.stabilised
    plain = denoise(noisy, **FIT)
    assert np.array_equal(result.detail, plain.detail)


def test_noise_is_estimated_in_the_input_units_without_stabilising_by_default():
    clean = synthetic_cells(64)
    counts = np.random.default_rng(0).poisson(50 * clean).astype(np.uint16)  # gain 1: var = signal
    result = denoise(counts, steps=2, width=4, device="cpu")
    assert result.noise.a == pytest.approx(1.0, rel=0.3)
    assert result.noise.signal_dependent and not result.noise.stabilised


def test_opponent_colours_are_an_exact_orthonormal_round_trip():
    rgb = np.random.default_rng(0).random((5, 7, 3))
    assert np.allclose(from_opponent(to_opponent(rgb)), rgb)
    grey = np.full((2, 2, 3), 0.5)
    assert np.allclose(to_opponent(grey)[..., 1:], 0)  # grey has no colour difference
    noise = np.random.default_rng(1).normal(0, 1, (200_000, 3))
    assert np.allclose(np.cov(to_opponent(noise).T), np.eye(3), atol=0.02)


def test_decorrelated_rgb_denoises_and_keeps_alpha():
    clean = np.stack([synthetic_cells(48, s) for s in range(3)], axis=-1)
    rng = np.random.default_rng(2)
    noisy = np.concatenate([clean + rng.normal(0, 0.1, clean.shape), np.full((48, 48, 1), 0.7)], axis=-1)
    noisy = noisy.astype(np.float32)
    # stage 3 needs far more steps than a test can afford on RGB; stages 1 and 2 show whether
    # the colour transform, the per-channel scaling and their inverses are right
    plain = denoise(noisy, rgb=True, steps=300, width=16, device="cpu")
    result = denoise(noisy, rgb=True, decorrelate=True, steps=300, width=16, device="cpu")
    before = psnr(noisy[..., :3], clean)
    assert psnr(result.smooth[..., :3], clean) > before + 5
    assert abs(psnr(result.smooth[..., :3], clean) - psnr(plain.smooth[..., :3], clean)) < 1
    assert not np.array_equal(result.smooth, plain.smooth)
    assert np.array_equal(result.detail[..., 3], noisy[..., 3])

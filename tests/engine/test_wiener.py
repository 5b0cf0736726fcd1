"""Collaborative Wiener filtering guided by N2D's result (the `quality` preset's last step)."""

import numpy as np
import pytest
import torch

from napari_noise2detail import denoise, fit
from napari_noise2detail.engine import model as model_module
from napari_noise2detail.engine.bank import similar_pixels
from napari_noise2detail.engine.wiener import HALO, collaborative_wiener, dct_matrix, haar_matrix

from conftest import synthetic_cells


def gaussian(variance: float, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(channels), torch.full((channels,), variance)


def noisy_cells(size: int = 48, sigma: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    clean = torch.from_numpy(synthetic_cells(size, seed=seed)).float()[None, None]
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed)) * sigma
    return clean, clean + noise


def test_the_transforms_are_orthonormal():
    for m in (dct_matrix(8), dct_matrix(5), haar_matrix(32)):
        assert torch.allclose(m @ m.T, torch.eye(len(m)), atol=1e-5)
    with pytest.raises(ValueError, match="power of two"):
        haar_matrix(12)


def test_a_constant_image_stays_constant():
    y = torch.full((1, 1, 40, 36), 0.3)
    out = collaborative_wiener(y, y.clone(), gaussian(0.01))
    assert float(out.max() - out.min()) < 1e-5  # float rounding only
    # the mean's gain, |G|^2 / (|G|^2 + variance), is just below 1
    assert torch.allclose(out, y, atol=1e-4)


def test_without_noise_the_image_comes_back_unchanged():
    # every Wiener gain is 1 where the variance is (almost) 0: the groups pass unchanged
    y = torch.rand(1, 2, 30, 34, generator=torch.Generator().manual_seed(1))
    out = collaborative_wiener(y, y.clone(), gaussian(1e-12, 2))
    assert torch.allclose(out, y, atol=1e-5)


def test_it_removes_most_of_the_noise_with_a_good_guide_and_does_not_change_its_inputs():
    clean, noisy = noisy_cells(48, 0.1)
    guide = clean + 0.02 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(5))
    kept = noisy.clone(), guide.clone()
    out = collaborative_wiener(noisy, guide, gaussian(0.01))
    assert torch.equal(noisy, kept[0]) and torch.equal(guide, kept[1])
    before, after = float(((noisy - clean) ** 2).mean()), float(((out - clean) ** 2).mean())
    assert after < before / 5
    assert after < float(((guide - clean) ** 2).mean())  # better than its guide


def test_an_unknown_noise_is_estimated_from_the_residual():
    clean, noisy = noisy_cells(48, 0.1)
    # with a perfect guide the residual is the noise (both taken with the same margin)
    known = collaborative_wiener(noisy, clean, gaussian(0.01))
    estimated = collaborative_wiener(noisy, clean, None)  # (noisy - clean)^2 averages ~0.01
    assert torch.allclose(known, estimated, atol=2e-3)


def test_tiles_and_pieces_agree_with_the_whole():
    clean, noisy = noisy_cells(64, 0.1, seed=2)
    guide = collaborative_wiener(noisy, clean, gaussian(0.01))  # any guide
    whole = collaborative_wiener(noisy, guide, gaussian(0.01))
    # the internal tiles: banks and groups per tile, the grid of references unchanged
    assert torch.allclose(collaborative_wiener(noisy, guide, gaussian(0.01), tile=20), whole, atol=1e-4)
    # a piece read with HALO pixels of context, told where it lies, gives its inner pixels
    top, left = 21, 17
    rows, cols = slice(top, 64), slice(left, 64)
    piece = collaborative_wiener(noisy[..., rows, cols], guide[..., rows, cols], gaussian(0.01), origin=(top, left))
    assert torch.allclose(piece[..., HALO:, HALO:], whole[..., top + HALO :, left + HALO :], atol=1e-4)


def test_reference_banks_are_the_full_banks_on_a_grid():
    guide = torch.rand(1, 1, 23, 19, generator=torch.Generator().manual_seed(3))
    full = similar_pixels(guide, 6, 7, 3)
    assert torch.equal(similar_pixels(guide, 6, 7, 3, step=3, first=(2, 1)), full[:, :, 2::3, 1::3])


def test_the_filter_is_a_switch_of_denoise_and_of_a_fitted_model(noisy64):
    quick = {"steps": 60, "width": 16}
    plain = denoise(noisy64, device="cpu", **quick)
    filtered = denoise(noisy64, device="cpu", wiener=True, **quick)
    assert np.array_equal(plain.smooth, filtered.smooth)  # stages 1-2 untouched
    assert not np.allclose(plain.detail, filtered.detail)
    model = fit(noisy64, device="cpu", wiener=True, **quick)
    assert np.array_equal(model.apply(noisy64).detail, filtered.detail)


def test_tiled_planes_give_the_same_filtered_result(noisy64, monkeypatch):
    image = np.concatenate([noisy64, noisy64], axis=1)  # 64 x 128
    model = fit(image, device="cpu", steps=12, width=8, wiener=True)
    whole = model.apply(image).detail
    monkeypatch.setattr(model_module, "PLANE_TILE", 48)  # read with halo(settings) = 44 more
    assert np.allclose(model.apply(image).detail, whole, atol=1e-4)


def test_its_memory_is_a_tile_at_a_time(monkeypatch):
    # the banks (and so the groups) are built on one tile and its search margin at a time,
    # whatever the size of the plane
    from napari_noise2detail.engine import wiener

    seen = []
    search = wiener.similar_pixels

    def recording(guide, *args, **kwargs):
        seen.append(tuple(guide.shape[-2:]))
        return search(guide, *args, **kwargs)

    monkeypatch.setattr(wiener, "similar_pixels", recording)
    y = torch.rand(1, 1, 200, 170, generator=torch.Generator().manual_seed(4))
    collaborative_wiener(y, y.clone(), gaussian(0.01), tile=64)
    reach = wiener.WINDOW // 2 + wiener.MATCH // 2
    assert len(seen) == 4 * 3 and max(max(s) for s in seen) <= 64 + 2 * reach


def test_the_noise_model_is_carried_into_the_units_the_networks_work_in():
    from napari_noise2detail.engine.model import _unit_noise
    from napari_noise2detail.engine.stabilise import NoiseModel

    noise = NoiseModel(a=2.0, b=30.0, signal_dependent=True)
    low, high = np.array([100.0]), np.array([1100.0])
    a, b = _unit_noise(noise, low, high, decorrelate=False)
    for unit in (0.0, 0.3, 1.0):  # variance of unit = (raw - low) / 1000 is var(raw) / 1000^2
        raw = 100.0 + 1000.0 * unit
        assert float(a[0] * unit + b[0]) == pytest.approx((2.0 * raw + 30.0) / 1000.0**2)
    stabilised = NoiseModel(a=2.0, b=30.0, signal_dependent=True, stabilised=True)
    a, b = _unit_noise(stabilised, np.array([3.0]), np.array([53.0]), decorrelate=False)
    assert float(a[0]) == 0 and float(b[0]) == pytest.approx(1 / 50.0**2)  # variance 1 there
    assert _unit_noise(None, low, high, decorrelate=False) is None


def test_without_a_noise_model_every_tile_and_plane_gets_the_fitted_residual(noisy64, monkeypatch, tmp_path):
    # an image whose noise cannot be estimated: the model keeps the residual variance of the
    # planes it was fitted on, so tiles (and a saved copy) filter with the same variance
    from napari_noise2detail import load_model

    monkeypatch.setattr(model_module, "estimate_noise", lambda planes: None)
    image = np.concatenate([noisy64, noisy64], axis=1)  # 64 x 128
    model = fit(image, device="cpu", steps=60, width=16, wiener=True)
    assert model.noise is None and model.residual is not None and model.residual[0] > 0
    whole = model.apply(image).detail
    assert np.array_equal(whole, denoise(image, device="cpu", steps=60, width=16, wiener=True).detail)
    again = load_model(model.save(tmp_path / "m.n2d"), device="cpu")
    assert again.residual == model.residual
    monkeypatch.setattr(model_module, "PLANE_TILE", 48)
    assert np.allclose(again.apply(image).detail, whole, atol=1e-4)


def test_progress_names_the_filtering_after_stage_3(noisy64):
    events = []
    denoise(noisy64, device="cpu", steps=12, width=8, wiener=True, progress=events.append)
    stages = [e.stage for e in events]
    assert 4 in stages and stages.index(4) > max(i for i, s in enumerate(stages) if s == 3)
    last = events[stages.index(4)]
    assert last.describe() == "filtering in groups of similar patches" and last.fraction == pytest.approx(1.0)
    plain = []
    denoise(noisy64, device="cpu", steps=12, width=8, progress=plain.append)
    assert 4 not in [e.stage for e in plain]


def stained(size: int = 48, sigma: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """An RGB image whose channels are one structure in nearly the same strength (a faint
    stain: the colour differences are small and smooth), and its noisy copy (independent
    noise in every channel)."""
    clean, _ = noisy_cells(size, 0.0, seed)
    clean = torch.cat([0.8 * clean + 0.1, 0.7 * clean + 0.1, 0.75 * clean + 0.15], dim=1)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed + 7)) * sigma
    return clean, clean + noise


def test_rgb_filtered_in_opponent_colours_loses_more_noise_and_nothing_else():
    clean, noisy = stained()
    guide = clean + 0.03 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(5))
    error = {colour: float(((collaborative_wiener(noisy, guide, gaussian(0.01, 3), colour=colour) - clean) ** 2).mean())
             for colour in (False, True)}
    # the colour differences of a stain are smooth: their gains are small and their noise goes
    assert error[True] < 0.85 * error[False]  # 0.76 here
    # without noise the transform and its inverse give the image back
    y = torch.rand(1, 3, 30, 34, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(collaborative_wiener(y, y.clone(), gaussian(1e-12, 3), colour=True), y, atol=1e-5)
    with pytest.raises(ValueError, match="3 channels"):
        collaborative_wiener(y[:, :2], y[:, :2], gaussian(0.01, 2), colour=True)


def test_group_variance_mixes_the_channels_noise_by_the_squared_weights():
    from napari_noise2detail.engine.colour import OPPONENT
    from napari_noise2detail.engine.wiener import group_variance

    mix = torch.from_numpy(OPPONENT).float()
    # noise in R only: the brightness gets a third of it, the two colour differences 1/2, 1/6
    a, b = torch.tensor([2.0, 0.0, 0.0]), torch.tensor([0.01, 0.0, 0.0])
    rgb = torch.tensor([[0.5], [0.2], [0.1]])  # one group's mean signal in R, G, B
    variance = group_variance(mix @ rgb, a, b, mix)[:, 0]
    assert torch.allclose(variance, (2.0 * 0.5 + 0.01) * torch.tensor([1 / 3, 1 / 2, 1 / 6]), atol=1e-6)
    # without mixing it is the model's own variance per channel
    assert torch.allclose(group_variance(rgb, a, b, torch.eye(3))[:, 0], torch.tensor([1.01, 0.0, 0.0]))


def test_an_rgb_fit_filters_in_opponent_colours_unless_fitted_in_them(monkeypatch):
    from napari_noise2detail.engine import wiener

    seen = []
    filtering = wiener.collaborative_wiener

    def recording(*args, colour=False, **kwargs):
        seen.append(colour)
        return filtering(*args, colour=colour, **kwargs)

    monkeypatch.setattr(model_module, "collaborative_wiener", recording)
    clean, noisy = stained(32)
    image = noisy[0].permute(1, 2, 0).clamp(0, 1).numpy()
    denoise(image, rgb=True, device="cpu", steps=12, width=8, wiener=True)
    denoise(image, rgb=True, device="cpu", steps=12, width=8, wiener=True, decorrelate=True)
    denoise(image[..., 0], device="cpu", steps=12, width=8, wiener=True)
    assert seen == [True, False, False]


def group_sizes(monkeypatch, y: torch.Tensor, guide: torch.Tensor, variance: float, **kwargs) -> set[tuple[int, int]]:
    """The kinds of groups :func:`collaborative_wiener` filters: (members, pixels a patch)."""
    from napari_noise2detail.engine import wiener

    sizes = set()
    filtering = wiener._filter_groups

    def recording(both, index, *args):
        sizes.add(tuple(index.shape[1:]))
        return filtering(both, index, *args)

    monkeypatch.setattr(wiener, "_filter_groups", recording)
    collaborative_wiener(y, guide, gaussian(variance, y.shape[1]), **kwargs)
    return sizes


def test_groups_keep_all_members_only_where_the_farthest_is_close(monkeypatch):
    from napari_noise2detail.engine.wiener import FULL_PATCH, MEMBERS, PATCH

    full, halved = (MEMBERS, FULL_PATCH**2), (MEMBERS // 2, PATCH**2)
    # a flat guide: every patch matches exactly, every group takes all its members, in the
    # larger patches of smooth parts
    flat = torch.full((1, 1, 40, 40), 0.5)
    assert group_sizes(monkeypatch, flat + 0.1 * torch.rand(flat.shape), flat, 0.01) == {full}
    # a textured guide and little noise: no 64th patch is that close, groups are halved
    texture = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    assert group_sizes(monkeypatch, texture, texture, 1e-4) == {halved}
    # unless told to take them all; a group's size must suit the Haar transform
    assert group_sizes(monkeypatch, texture, texture, 1e-4, close=float("inf")) == {full}
    with pytest.raises(ValueError, match="power of two"):
        collaborative_wiener(texture, texture, gaussian(0.01), members=48)


def test_only_the_smooth_part_of_a_guide_gets_full_groups(monkeypatch):
    # flat on the left, textured on the right: the references whose 64th match is close lie
    # in the flat half (their search reaches 13 pixels, so not those near the texture)
    from napari_noise2detail.engine import wiener

    guide = torch.full((1, 1, 48, 64), 0.5)
    guide[..., 32:] = torch.rand(1, 1, 48, 32, generator=torch.Generator().manual_seed(2))
    noisy = guide + 0.05 * torch.randn(guide.shape, generator=torch.Generator().manual_seed(3))
    columns = {}
    filtering = wiener._filter_groups
    wp = 64 + wiener.FULL_PATCH - 1  # the padded width

    def recording(both, index, *args):
        # member 0 is the reference: its patch's first pixel, back to the image's column
        side = int(index.shape[2] ** 0.5)
        first = index[:, 0, 0] % wp - (wiener.FULL_PATCH - 1) // 2 + (side - 1) // 2
        columns.setdefault(index.shape[1], []).extend(first.tolist())
        return filtering(both, index, *args)

    monkeypatch.setattr(wiener, "_filter_groups", recording)
    collaborative_wiener(noisy, guide, gaussian(0.0025))
    full, halved = columns[wiener.MEMBERS], columns[wiener.MEMBERS // 2]
    assert full and halved and max(full) < 32 and min(halved) > 32 - wiener.WINDOW // 2 - wiener.MATCH // 2 - 1

"""Fit once, apply anywhere: the Denoiser, its file, and lazy images that must not be read whole."""

import json
import struct

import numpy as np
import pytest
import torch

from napari_noise2detail import Cancelled, Denoiser, denoise, fit, load_model
from napari_noise2detail.engine import model as model_module
from napari_noise2detail.engine.model_file import model_from_bytes

from conftest import OnePlaneAtATime, synthetic_cells

QUICK = {"steps": 12, "width": 8}


@pytest.fixture
def stack():
    rng = np.random.default_rng(3)
    clean = np.stack([np.roll(synthetic_cells(48), k, axis=1) for k in range(7)])
    return (clean + rng.normal(0, 0.08, clean.shape)).astype(np.float32), clean


def test_fit_then_apply_equals_denoise(noisy64):
    model = fit(noisy64, device="cpu", seed=3, **QUICK)
    applied = model.apply(noisy64)
    direct = denoise(noisy64, device="cpu", seed=3, **QUICK)
    for kind in ("partial", "smooth", "detail"):
        assert np.array_equal(getattr(applied, kind), getattr(direct, kind)), kind
    assert applied.noise == direct.noise


def test_fit_then_apply_equals_denoise_in_colour():
    rng = np.random.default_rng(0)
    clean = np.stack([synthetic_cells(32, seed=s) for s in range(3)], axis=-1)
    noisy = (clean + rng.normal(0, 0.05, clean.shape)).astype(np.float32)
    model = fit(noisy, rgb=True, device="cpu", **QUICK)
    assert model.rgb and model.channels == 3
    assert np.array_equal(model.apply(noisy).detail, denoise(noisy, rgb=True, device="cpu", **QUICK).detail)


def test_chosen_planes_are_applied_and_the_others_left_alone():
    rng = np.random.default_rng(0)
    stack = (np.stack([synthetic_cells(32, seed=s) for s in range(5)]) + rng.normal(0, 0.05, (5, 32, 32)))
    model = fit(stack.astype(np.float32), device="cpu", **QUICK)
    every = model.apply(stack).detail
    out = np.full(stack.shape, -1.0, np.float32)
    events = []
    model.apply(OnePlaneAtATime(stack), out={"detail": out}, planes=[3, 1], progress=events.append)
    assert np.array_equal(out[[1, 3]], every[[1, 3]])  # as when every plane is applied
    assert np.all(out[[0, 2, 4]] == -1.0)  # the others untouched
    assert events[-1].fraction == 1.0 and events[-1].total == 2
    for bad, message in (([5], "do not exist"), ([], "at least one plane to apply to"), ([1, 1], "once")):
        with pytest.raises(ValueError, match=message):
            model.apply(stack, planes=bad)


def test_save_and_load_give_bit_identical_results(noisy64, tmp_path):
    model = fit(noisy64, device="cpu", **QUICK)
    path = model.save(tmp_path / "cells.n2d")
    assert path.stat().st_size < 200_000  # two tiny networks and a header
    again = load_model(path, device="cpu")
    assert again.channels == 1 and again.planes == (0,) and again.settings == model.settings
    assert np.array_equal(again.low, model.low) and np.array_equal(again.high, model.high)
    assert again.noise == model.noise
    first, second = model.apply(noisy64), again.apply(noisy64)
    for kind in ("partial", "smooth", "detail"):
        assert np.array_equal(getattr(first, kind), getattr(second, kind))
    assert not list(tmp_path.glob(".*partial"))  # written atomically: no temporary left
    # made like any other file (not private), to share with colleagues
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_a_stabilised_model_refuses_an_image_below_its_cameras_offset(monkeypatch):
    rng = np.random.default_rng(0)
    clean = np.stack([synthetic_cells(48, seed=s) for s in range(3)])
    stack = 1000 + 4 * rng.poisson(200 * clean + 20) + rng.normal(0, 3, clean.shape)  # offset 1000, gain 4
    model = fit(stack, device="cpu", **QUICK)
    assert model.noise.stabilised  # several planes: shot noise stabilised
    model.apply(stack)  # its own planes are covered
    with pytest.raises(ValueError, match="100 % of plane 0 is darker than nearly all of what this model was fitted on"):
        model.apply(stack[0] - 1000)  # the same scene from a camera without the offset: it would be flat
    monkeypatch.setattr(model_module, "PLANE_TILE", 16)  # a plane in tiles is counted whole
    with pytest.raises(ValueError, match="100 % of plane 0"):
        model.apply(stack[0] - 1000)


def test_a_colour_model_refuses_an_image_mostly_darker_than_all_it_was_fitted_on():
    rng = np.random.default_rng(0)
    clean = np.stack([synthetic_cells(48, seed=s) for s in range(3)], axis=-1)
    image = 40 + 150 * clean + rng.normal(0, 8, clean.shape)
    for decorrelate in (False, True):  # opponent colours: their luminance is what is checked
        model = fit(image, rgb=True, device="cpu", **QUICK, decorrelate=decorrelate)
        model.apply(image, rgb=True)
        with pytest.raises(ValueError, match="darker than nearly all"):
            model.apply(image / 20, rgb=True)


def test_an_opponent_colour_model_counts_values_under_the_noise_floor_one_by_one():
    """Its luminance below 'dark' stands for the pixel's three values; a value under the noise
    floor counts once (an empty channel at the camera offset is not taken for a dark image)."""
    import types

    from napari_noise2detail.engine.stabilise import NoiseModel

    noise = NoiseModel(a=1.0, b=-100.0, signal_dependent=True, stabilised=True)  # floor 99.6
    rng = np.random.default_rng(0)
    plane = np.stack([rng.uniform(500, 900, (32, 32)), rng.uniform(500, 900, (32, 32)),
                      np.where(rng.random((32, 32)) < 0.6, 90.0, 110.0)], axis=-1)
    for dark in ((-1e9,), (-1e9,) * 3):
        stand_in = types.SimpleNamespace(channels=3, noise=noise, dark=dark, _stabilised=True,
                                         _prepare=lambda p: p[..., :3].astype(float))
        assert Denoiser._uncovered(stand_in, plane) == np.count_nonzero(plane[..., 2] < 99.625)
    stand_in.dark, stand_in._prepare = (1e9,), lambda p: p[..., :3].astype(float)  # all darker than the model's own
    assert Denoiser._uncovered(stand_in, plane) == plane.size


@pytest.mark.parametrize("planes", [1, 3], ids=["one plane", "stabilised"])
def test_a_model_refuses_an_image_mostly_darker_than_all_it_was_fitted_on(planes, tmp_path):
    """The networks lift values darker than any they were fitted on to the darkest they saw:
    a model of a confocal stack gave the same planes divided by 3 a mean of 3200 for 2100."""
    rng = np.random.default_rng(0)
    clean = np.stack([synthetic_cells(48, seed=s) for s in range(planes)])
    stack = 1000 + 4 * rng.poisson(200 * clean + 20) + rng.normal(0, 3, clean.shape)  # offset 1000, gain 4
    model = fit(stack, device="cpu", **QUICK)
    assert model.dark is not None and model.dark[0] > 0
    model.apply(stack)  # its own planes
    model.apply(stack * 3)  # brighter is taken in (the range widens)
    with pytest.raises(ValueError, match=r"of plane 0 is darker than nearly all .* \(below [0-9.]+\)"):
        model.apply(stack[0] / 3)  # rescaled: its background below everything the model saw
    # the file keeps it; one saved before it existed loads, unchecked
    again = load_model(model.save(tmp_path / "m.n2d"), device="cpu")
    assert again.dark == model.dark
    with pytest.raises(ValueError, match="darker than nearly all"):
        again.apply(stack[0] / 3)
    import dataclasses

    older = model_from_bytes(dataclasses.replace(model, dark=None).to_bytes(), "cpu")
    assert older.dark is None
    if planes == 1:
        older.apply(stack[0] / 3)


@pytest.mark.parametrize("tile", [None, 20], ids=["whole planes", "in tiles"])
def test_a_model_fitted_on_a_stack_fits_the_planes_it_does_not_cover_on_their_own(tile, monkeypatch):
    """A blank frame in a time-lapse (the shutter closed: the camera's offset and read noise)
    is darker than nearly all a model fitted on the other planes saw: refused by a model from
    elsewhere, fitted on its own (warm-started, as plane by plane) when asked to refit."""
    if tile:
        monkeypatch.setattr(model_module, "PLANE_TILE", tile)
    rng = np.random.default_rng(1)
    clean = np.stack([synthetic_cells(40, seed=s) for s in range(4)])
    stack = 1000 + 4 * rng.poisson(200 * clean + 20) + rng.normal(0, 3, clean.shape)
    stack[2] = 1000 + rng.normal(0, 12, clean.shape[1:])  # blank
    model = fit(stack, planes=[0, 1, 3], device="cpu", threads=1, **QUICK)
    with pytest.raises(ValueError, match="of plane 2 is darker than nearly all"):
        model.apply(stack, threads=1)
    events = []
    result = model.apply(stack, threads=1, refit=True, progress=events.append)
    assert result.refitted == (2,)
    plain = model.apply(stack[[0, 1, 3]], threads=1)
    assert np.array_equal(result.detail[[0, 1, 3]], plain.detail)  # the covered planes as ever
    alone = fit(stack, planes=[2], start=model, preset=model.settings, seed=model.seed, device="cpu", threads=1)
    assert np.array_equal(result.detail[2], alone.apply(stack[2], threads=1).detail)
    assert any(1 <= e.stage <= 3 and e.plane == 2 for e in events)  # its fit is seen, on its plane
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_a_constant_frame_the_model_does_not_cover_stays_as_it_is_and_progress_never_goes_back(monkeypatch):
    """A dropped frame of zeros has nothing to fit: written as it is, as plane by plane does
    (fitting it raised "the image is constant"). One plane a batch: the events after a plane
    fitted on its own must not go back by a rounding step (0.30000000000000004, then 0.3)."""
    from conftest import with_a_blank_frame

    monkeypatch.setattr(model_module, "BATCH_PIXELS", 24 * 24)
    lapse = with_a_blank_frame(10, blank=2).astype(np.float32)
    lapse[5] = 0  # dropped
    model = fit(lapse, planes=[0, 4, 9], device="cpu", threads=1, **QUICK)
    events = []
    result = model.apply(lapse, threads=1, refit=True, progress=events.append)
    assert result.refitted == (2,)  # plane 5 was not fitted: nothing to fit
    assert all((getattr(result, kind)[5] == 0).all() for kind in ("partial", "smooth", "detail"))
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and max(fractions) <= 1.0


def test_isolated_bright_pixels_on_an_empty_image_are_not_called_signal():
    sparse = np.zeros((32, 32), np.float32)
    sparse[5, 5], sparse[20, 10] = 1000, 800
    with pytest.raises(ValueError, match="constant .isolated outlying pixels, taken for hot pixels"):
        fit(sparse, device="cpu", **QUICK)


def test_settings_given_as_numpy_integers_are_saved_as_plain_ones(noisy64):
    model = fit(noisy64, device="cpu", **{**QUICK, "steps": np.int64(5)})
    assert type(model.settings.steps) is int
    assert model_from_bytes(model.to_bytes(), "cpu").settings == model.settings


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_saved_model_applies_to_another_image_without_fitting(noisy64, monkeypatch):
    model = fit(noisy64, device="cpu", **QUICK)
    monkeypatch.setattr(model_module, "n2d_plane", None)  # any fitting would fail now
    other = np.rot90(noisy64).copy()
    before = other.copy()
    result = model.apply(other)
    assert result.detail.shape == other.shape and result.detail.dtype == np.float32
    assert np.array_equal(other, before)  # the input is never changed
    assert np.std(result.detail) < np.std(other)


def test_loading_refuses_what_is_not_a_model(noisy64, tmp_path):
    model = fit(noisy64, device="cpu", **QUICK)
    good = model.save(tmp_path / "good.n2d")
    data = good.read_bytes()

    truncated = tmp_path / "truncated.n2d"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable Noise2Detail model"):
        load_model(truncated)

    pickled = tmp_path / "pickled.n2d"
    torch.save({"f": model.f}, pickled)  # a pickle: must never be unpickled
    with pytest.raises(ValueError, match="not a readable Noise2Detail model"):
        load_model(pickled)

    class Payload:  # unpickling it would create a file: the code a pickle can run
        def __reduce__(self):
            return open, (str(tmp_path / "ran"), "w")

    import pickle

    hostile = tmp_path / "hostile.n2d"
    hostile.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError, match="not a readable Noise2Detail model"):
        load_model(hostile)
    assert not (tmp_path / "ran").exists()

    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(foreign))
    with pytest.raises(ValueError, match="not a Noise2Detail model"):
        load_model(foreign)

    # the same file, but claiming a newer format
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"]["format_version"] = "99"
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    newer = tmp_path / "newer.n2d"
    newer.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size :])
    with pytest.raises(ValueError, match="newer napari-noise2detail"):
        load_model(newer)

    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.n2d")


def test_a_model_refuses_images_with_other_channels(noisy64):
    grey = fit(noisy64, device="cpu", **QUICK)
    colour = np.stack([noisy64] * 3, axis=-1)
    with pytest.raises(ValueError, match="fitted on grey .* this image is colour"):
        grey.apply(colour, rgb=True)
    rgb_model = fit(colour, rgb=True, device="cpu", **QUICK)
    with pytest.raises(ValueError, match="fitted on colour .3 channels. images; this image is grey"):
        rgb_model.apply(noisy64)  # named as the other way round is, not as a wrong rgb=True


def test_fit_on_a_stack_uses_planes_spread_evenly_or_chosen(stack):
    noisy, _clean = stack
    assert fit(noisy, device="cpu", **QUICK).planes == (0, 2, 3, 4, 6)
    assert fit(noisy, planes=[1, 4], device="cpu", **QUICK).planes == (1, 4)
    for bad, message in (([], "at least one"), ([7], "do not exist"), ([2, 2], "once")):
        with pytest.raises(ValueError, match=message):
            fit(noisy, planes=bad, device="cpu", **QUICK)


def test_fit_once_denoises_every_plane(stack):
    noisy, clean = stack
    model = fit(noisy, device="cpu", steps=150, width=16)
    result = model.apply(noisy)
    gains = [np.mean((noisy[i] - clean[i]) ** 2) / np.mean((result.detail[i] - clean[i]) ** 2)
             for i in range(len(noisy))]
    assert min(gains) > 2  # every plane, fitted on or not, is denoised


def test_lazy_images_are_read_a_plane_at_a_time(stack):
    noisy, _clean = stack
    lazy = OnePlaneAtATime(noisy)
    model = fit(lazy, planes=[0, 3], device="cpu", **QUICK)
    assert lazy.reads == 2  # only the planes to fit on
    out = {kind: np.zeros(noisy.shape, np.float32) for kind in ("smooth", "detail")}
    result = model.apply(lazy, out=out)
    assert result.partial is None and result.detail is out["detail"]
    assert np.array_equal(out["detail"], model.apply(noisy).detail)


def test_a_dask_array_is_computed_a_plane_at_a_time(stack):
    da = pytest.importorskip("dask.array")
    noisy, _clean = stack
    source = OnePlaneAtATime(noisy)  # raises if dask ever asks for more than a plane
    lazy = da.from_array(source, chunks=(1, *noisy.shape[1:]))
    model = fit(lazy, planes=[0, 3], device="cpu", **QUICK)
    assert source.reads == 2
    assert np.array_equal(model.apply(lazy).detail, model.apply(noisy).detail)
    assert np.array_equal(model.apply(lazy).detail, fit(noisy, planes=[0, 3], device="cpu", **QUICK).apply(noisy).detail)


def test_tiled_planes_give_the_same_result(noisy64, monkeypatch):
    image = np.concatenate([noisy64, noisy64[:, :22]], axis=1)[:, :78]  # 64 x 78: not a multiple of 4
    model = fit(image, device="cpu", **QUICK)
    whole = model.apply(image)
    monkeypatch.setattr(model_module, "PLANE_TILE", 20)  # tiles of 20 read with 12 pixels more
    tiled = model.apply(image)
    for kind in ("partial", "smooth", "detail"):
        assert np.allclose(getattr(tiled, kind), getattr(whole, kind), atol=1e-5), kind


def test_a_lazy_plane_is_read_a_tile_at_a_time(noisy64, monkeypatch):
    class Recorded:
        def __init__(self, data):
            self.data, self.shape, self.dtype, self.ndim, self.reads = data, data.shape, data.dtype, data.ndim, []

        def __getitem__(self, index):
            part = self.data[index]
            self.reads.append(part.shape)
            return part

    model = fit(noisy64, device="cpu", **QUICK)
    monkeypatch.setattr(model_module, "PLANE_TILE", 20)
    lazy = Recorded(noisy64)
    assert np.array_equal(model.apply(lazy).detail, model.apply(noisy64).detail)  # as from memory
    assert lazy.reads and max(h * w for h, w in lazy.reads) <= (20 + 2 * 12) ** 2  # a tile and its halo


def test_alpha_is_passed_through_and_progress_can_cancel(noisy64):
    rgba = np.stack([noisy64, noisy64, noisy64, np.full_like(noisy64, 0.5)], axis=-1)
    model = fit(rgba, rgb=True, device="cpu", **QUICK)
    result = model.apply(rgba)
    assert np.array_equal(result.detail[..., 3], rgba[..., 3])
    with pytest.raises(Cancelled):
        model.apply(np.stack([rgba] * 3), progress=lambda event: False)


def test_a_constant_image_cannot_be_fitted():
    with pytest.raises(ValueError, match="constant"):
        fit(np.full((32, 32), 7.0), device="cpu", **QUICK)


def test_out_arrays_are_checked(noisy64):
    model = fit(noisy64, device="cpu", **QUICK)
    with pytest.raises(ValueError, match="unknown output"):
        model.apply(noisy64, out={"sharp": np.zeros((64, 64))})
    with pytest.raises(ValueError, match="shaped"):
        model.apply(noisy64, out={"detail": np.zeros((32, 32))})


def test_describe_names_what_it_was_fitted_on(stack):
    model = fit(stack[0], planes=[0, 1], device="cpu", **QUICK)
    assert isinstance(model, Denoiser)
    assert model.describe().startswith("N2D model for grey images, fitted on 2 planes")


def test_a_model_travels_as_bytes(noisy64):
    model = fit(noisy64, device="cpu", **QUICK)
    data = model.to_bytes()
    again = model_from_bytes(data, device="cpu")
    assert np.array_equal(again.apply(noisy64).detail, model.apply(noisy64).detail)
    with pytest.raises(ValueError, match="not a readable"):
        model_from_bytes(data[:100])


def test_shot_noise_is_stabilised_when_fitting_on_several_planes():
    rng = np.random.default_rng(0)
    clean = np.stack([synthetic_cells(48, seed=i) * (1 - 0.1 * i) for i in range(4)])
    counts = rng.poisson(60 * clean).astype(np.float32)  # shot noise, planes of falling brightness
    several = fit(counts, device="cpu", **QUICK)
    assert several.noise.signal_dependent and several.noise.stabilised
    assert not fit(counts, device="cpu", stabilise=False, **QUICK).noise.stabilised  # when asked
    single = fit(counts[0], device="cpu", **QUICK).noise  # one plane: as the preset says
    assert single is None or not single.stabilised


def test_the_note_names_the_planes_fitted_on_their_own_as_people_find_them():
    from napari_noise2detail.engine.model import refit_note
    from napari_noise2detail.engine.planes import ImageInfo

    lapse, hyperstack = ImageInfo.of(np.zeros((10, 8, 8)), False), ImageInfo.of(np.zeros((5, 2, 8, 8)), False)
    assert refit_note((), lapse) == ""
    assert refit_note([6], lapse).startswith("plane 6 was fitted on its own: mostly darker")
    assert refit_note([6], lapse).endswith("(numbered from 0)")
    assert refit_note([6, 7], hyperstack).startswith("planes 6 (index 3, 0), 7 (index 3, 1) were fitted on their own")
    assert refit_note(list(range(8)), lapse).startswith("planes 0, 1, 2, 3, 4 and 3 more were")


def test_fit_chooses_no_constant_plane_to_fit_on_unless_told_to():
    from conftest import with_a_blank_frame

    lapse = with_a_blank_frame(10, blank=3).astype(np.float32)
    lapse[7] = 0  # a dropped frame, where the evenly spread planes (0, 2, 4, 7, 9) would fit
    assert fit(lapse, device="cpu", threads=1, **QUICK).planes == (0, 2, 4, 6, 9)
    assert fit(lapse, planes=[7, 8], device="cpu", threads=1, **QUICK).planes == (7, 8)  # as chosen
    # spread over some planes only (a channel's, say): the same choice among them
    assert fit(lapse, among=range(3, 10), device="cpu", threads=1, **QUICK).planes == (3, 5, 6, 8, 9)
    with pytest.raises(ValueError, match="not both"):
        fit(lapse, planes=[1], among=[1, 2], device="cpu")

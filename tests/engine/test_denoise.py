import numpy as np
import pytest
import torch

from conftest import psnr, synthetic_cells
from napari_noise2detail import Cancelled, Progress, denoise, denoise_iter

TINY = dict(steps=2, width=4, device="cpu")


def test_detail_psnr_rises_by_several_db(clean64, noisy64):
    result = denoise(noisy64, preset="paper", steps=150, device="cpu")
    before = psnr(noisy64, clean64)
    assert psnr(result.partial, clean64) > before + 3
    assert psnr(result.detail, clean64) > before + 4
    assert result.device.startswith("CPU")
    assert result.seconds > 0


@pytest.mark.parametrize(
    "shape, rgb",
    [
        ((16, 16), False),
        ((9, 13), False),  # odd sizes: padded to a multiple of 4, cropped back
        ((3, 12, 20), False),  # Z, Y, X
        ((2, 2, 12, 12), False),  # T, Z, Y, X
        ((16, 12, 3), True),
        ((2, 10, 10, 3), True),
        ((12, 12, 4), True),
    ],
)
def test_shapes_round_trip(shape, rgb):
    image = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    result = denoise(image, rgb=rgb, **TINY)
    for out in (result.partial, result.smooth, result.detail):
        assert out.shape == shape
        assert out.dtype == np.float32
        assert np.isfinite(out).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float64, np.float16])
def test_dtypes_come_back_in_input_units(dtype):
    low, span = (20, 200) if dtype == np.uint8 else (1000, 2000)
    clean = low + span * synthetic_cells(32)
    noisy = clean + np.random.default_rng(0).normal(0, 0.05 * span, clean.shape)
    image = np.clip(noisy, 0, None).astype(dtype)
    result = denoise(image, steps=100, width=16, device="cpu")
    lo, hi = float(image.min()), float(image.max())
    for out in (result.partial, result.smooth, result.detail):
        assert out.dtype == np.float32
        # min-max in, clamp to [0, 1], map back: results stay within the input's range ...
        assert lo - 1e-3 * span <= out.min() and out.max() <= hi + 1e-3 * span
        # ... and in its units: close to the clean image, not to [0, 1]
        assert np.abs(out - clean).mean() < 0.1 * span


def test_alpha_channel_passes_through():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (12, 12, 4), dtype=np.uint8)
    result = denoise(image, rgb=True, **TINY)
    assert np.array_equal(result.detail[..., 3], image[..., 3].astype(np.float32))
    assert not np.array_equal(result.detail[..., :3], image[..., :3].astype(np.float32))


def test_constant_image_comes_back_unchanged():
    image = np.full((2, 16, 16), 7, np.uint16)
    result = denoise(image, **TINY)
    for out in (result.partial, result.smooth, result.detail):
        assert np.array_equal(out, image.astype(np.float32))


def test_constant_plane_in_a_stack_is_kept_and_others_denoised():
    image = np.random.default_rng(0).uniform(0, 1, (2, 16, 16)).astype(np.float32)
    image[1] = 0.25
    result = denoise(image, **TINY)
    assert np.all(result.detail[1] == np.float32(0.25))
    assert not np.array_equal(result.detail[0], image[0])


def test_input_is_never_modified():
    image = np.random.default_rng(0).uniform(0, 1, (2, 16, 16)).astype(np.float32)
    copy = image.copy()
    image.flags.writeable = False  # read-only input works too
    result = denoise(image, **TINY)
    assert np.array_equal(image, copy)
    assert not np.shares_memory(result.detail, image)


@pytest.mark.parametrize(
    "image, rgb, error, match",
    [
        (np.full((16, 16), np.nan, np.float32), False, ValueError, "NaN"),
        (np.pad(np.full((1, 1), np.inf), 8), False, ValueError, "1 NaN or infinite"),
        (np.zeros((16, 16), bool), False, TypeError, "boolean"),
        (np.zeros((16, 16), complex), False, TypeError, "complex"),
        (np.array([["a"] * 16] * 16), False, TypeError, "numbers"),
        (np.zeros((7, 16)), False, ValueError, "7x16"),
        (np.zeros((16, 16)), True, ValueError, "a colour .RGB. image needs a last axis of 3"),
        (np.zeros((16, 16, 2)), True, ValueError, "3 .RGB. or 4"),
        (np.zeros((0, 16)), False, ValueError, "empty"),
        (np.zeros((2, 0, 16, 16)), False, ValueError, "empty"),
        (np.zeros(64), False, ValueError, "at least 2 dimensions"),
        (np.full((16, 16), 1e300), False, ValueError, "beyond float32's range"),
        (np.full((16, 16), 1e-300), False, ValueError, "beyond float32's range"),  # would become all 0
        (np.zeros((24, 24, 3)), False, ValueError, "24x3 pixels.*it is an RGB image: rgb=True, --rgb, or in napari a layer opened as RGB"),
        (np.zeros((4, 4)), False, ValueError, "4x4 pixels; N2D needs at least 8x8$"),  # no colour hint: 2D
    ],
)
def test_bad_input_raises_a_clear_error(image, rgb, error, match):
    with pytest.raises(error, match=match):
        denoise(image, rgb=rgb, **TINY)


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"seed": None}, "seed must be a whole number, got None"),
        ({"seed": 1.5}, "seed must be a whole number"),
        ({"steps": 5.5}, "steps must be a whole number, got 5.5"),
        ({"steps": "5"}, "steps must be a whole number, got '5'"),
        ({"crop": True}, "crop must be a whole number"),
    ],
)
def test_arguments_of_the_wrong_kind_are_named(arguments, match):
    with pytest.raises(TypeError, match=match):
        denoise_iter(np.zeros((16, 16)), **arguments)


def test_a_torch_tensor_is_denoised_like_its_array():
    import torch

    image = np.random.default_rng(0).uniform(0, 1, (16, 16)).astype(np.float32)
    tensor = torch.from_numpy(image.copy())
    result = denoise(tensor, **TINY)
    assert np.array_equal(result.detail, denoise(image, **TINY).detail)
    assert torch.equal(tensor, torch.from_numpy(image))  # left as it was


def test_bad_input_raises_before_any_work():
    with pytest.raises(ValueError):
        denoise_iter(np.zeros((4, 4)))  # not even one next()


def test_same_seed_same_output_other_seed_other_output(noisy64):
    a = denoise(noisy64, steps=20, device="cpu", seed=3)
    b = denoise(noisy64, steps=20, device="cpu", seed=3)
    c = denoise(noisy64, steps=20, device="cpu", seed=4)
    for name in ("partial", "smooth", "detail"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.detail, c.detail)


def test_progress_reports_every_stage_of_every_plane():
    image = np.random.default_rng(0).uniform(0, 1, (2, 16, 16)).astype(np.float32)
    events: list[Progress] = []
    denoise(image, steps=20, report_every=5, width=4, device="cpu", progress=events.append)
    assert {(e.plane, e.stage) for e in events} == {(p, s) for p in (0, 1) for s in (1, 2, 3)}
    assert all(e.planes == 2 and 1 <= e.step <= e.total for e in events)
    assert all(np.isfinite(e.loss) for e in events if e.stage != 2)
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert events[0].stage_name == "partial denoising"
    assert all(e.held_out is None for e in events)  # no guard asked for


def test_progress_carries_the_guards_held_out_error():
    image = np.random.default_rng(0).uniform(0, 1, (32, 32)).astype(np.float32)
    events: list[Progress] = []
    denoise(image, steps=40, detail_steps=60, report_every=5, width=4, detail_guard=True,
            device="cpu", progress=events.append)
    checks = [e.held_out for e in events if e.held_out is not None]
    assert checks and all(e.stage == 3 for e in events if e.held_out is not None)
    assert checks[-1].step == 50 and checks[-1].error > 0


def test_progress_returning_false_cancels():
    seen = []

    def stop_after_two(event):
        seen.append(event)
        return len(seen) < 2

    with pytest.raises(Cancelled):
        denoise(np.random.default_rng(0).uniform(0, 1, (16, 16)), steps=50, width=4,
                device="cpu", progress=stop_after_two)
    assert len(seen) == 2


def test_progress_raising_cancelled_cancels():
    def stop(event):
        raise Cancelled("user said stop")

    with pytest.raises(Cancelled, match="user said stop"):
        denoise(np.random.default_rng(0).uniform(0, 1, (16, 16)), **TINY, progress=stop)


def test_closing_the_generator_stops_the_run():
    run = denoise_iter(np.random.default_rng(0).uniform(0, 1, (16, 16)), steps=100, width=4,
                       report_every=1, device="cpu")
    first = next(run)
    assert first.step == 1
    run.close()
    with pytest.raises(StopIteration):
        next(run)


def test_settings_override_and_torch_device_object():
    result = denoise(synthetic_cells(16), steps=3, width=4, device=torch.device("cpu"))
    assert result.settings.steps == 3 and result.settings.width == 4
    with pytest.raises(TypeError, match="unknown setting"):
        denoise(synthetic_cells(16), iterations=3)
    with pytest.raises(ValueError, match="unknown preset"):
        denoise(synthetic_cells(16), preset="slow")


def test_stack_planes_continue_from_the_plane_before():
    plane = np.random.default_rng(0).uniform(0, 1, (16, 16)).astype(np.float32)
    stack = np.stack([plane, plane, plane])
    events = []
    warm = denoise(stack, steps=6, width=4, plane_steps=0, device="cpu", progress=events.append)
    # planes 2 and 3 reuse plane 1's networks unchanged: identical planes, identical results
    assert np.array_equal(warm.detail[0], warm.detail[1]) and np.array_equal(warm.detail[1], warm.detail[2])
    assert {e.plane for e in events if e.stage != 2} == {0}  # no fitting after the first plane
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    scratch = denoise(stack, steps=6, width=4, seed=0, device="cpu")
    assert np.array_equal(scratch.detail[0], warm.detail[0])  # the first plane is fitted as usual


def test_fast_preset_is_the_crop_preset():
    from napari_noise2detail import PRESETS

    fast = PRESETS["fast"]
    assert fast.crop == 32 and fast.batch == 4 and fast.plane_steps is not None
    (f1, f3) = fast.fits()
    assert (f1.crop, f1.batch, f3.crop, f3.batch) == (32, 4, 64, 2)
    assert PRESETS["paper"].plane_steps is None and not PRESETS["paper"].zero_noise_init


def test_tiled_results_equal_untiled_so_no_seams(noisy64):
    # tiles with a halo covering the receptive field: the same numbers, only less memory
    whole = denoise(noisy64, steps=10, width=8, device="cpu", tile=None)
    tiled = denoise(noisy64, steps=10, width=8, device="cpu", tile=16)
    for name in ("partial", "smooth", "detail"):
        np.testing.assert_allclose(getattr(tiled, name), getattr(whole, name), rtol=0, atol=1e-5)


def test_progress_describes_itself():
    from napari_noise2detail.engine.denoise import Progress

    one = Progress(0, 1, 3, 40, 800, 0.1, 0.5)
    assert one.describe() == "stage 3/3 (detail recovery), step 40/800"
    assert Progress(1, 5, 1, 2, 9, None, 0.2).describe() == "plane 2/5, stage 1/3 (partial denoising), step 2/9"

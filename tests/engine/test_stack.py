"""A stack as the batch and the dock denoise it (engine.stack): what is fitted on, what is kept."""

import numpy as np

from conftest import with_a_blank_frame
from napari_noise2detail.engine.model import planes_to_fit
from napari_noise2detail.engine.planes import ImageInfo
from napari_noise2detail.engine.stack import denoise_stack_iter

QUICK = {"steps": 12, "width": 8}


def run(stack, **kwargs):
    events, info = [], ImageInfo.of(stack, False)
    out = dict.fromkeys(("partial", "smooth", "detail"))
    generator = denoise_stack_iter(stack, info, [list(range(info.planes))], out, axis=None, rgb=False,
                                   preset="fast", device="cpu", threads=1, **QUICK, **kwargs)
    while True:
        try:
            events.append(next(generator))
        except StopIteration as done:
            return out, done.value, events


def test_a_dropped_frame_of_zeros_is_not_fitted_on_and_stays_as_it_is():
    """Plane 7 of 10 is one of the planes a model is fitted on; blank, it would set the model's
    darkest level and be denoised: the nearest other plane is fitted on instead."""
    lapse = with_a_blank_frame(10, blank=3).astype(np.float32)
    assert 7 in planes_to_fit(range(10))
    lapse[7] = 0
    out, [(result, model)], events = run(lapse)
    assert model.planes == (0, 2, 4, 6, 9)
    assert all((out[kind][7] == 0).all() for kind in out)  # kept as it is
    assert result.refitted == (3,)  # the blank frame of read noise, fitted on its own
    assert [e.phase for e in events][0] == "fitting" and events[-1].fraction == 1.0


def test_a_stack_of_constant_planes_is_refused_as_constant():
    import pytest

    with pytest.raises(ValueError, match="the image is constant"):
        run(np.zeros((8, 24, 24), np.float32))


def test_a_channel_says_so_and_counts_its_own_planes():
    from napari_noise2detail.engine.planes import channel_groups

    stack = np.random.default_rng(0).random((8, 2, 16, 16)).astype(np.float32)  # ZCYX
    for planes in (8, 2):  # fitted once, and plane by plane
        part = stack[:planes]
        info = ImageInfo.of(part, False)
        generator = denoise_stack_iter(part, info, channel_groups(info, 1), dict.fromkeys(("detail",)), axis=1,
                                       rgb=False, preset="fast", device="cpu", threads=1, **QUICK)
        events = [step.progress for step in generator]
        for channel in (0, 1):
            own = [e for e in events if e.channel == channel]
            assert own and all(e.planes == planes and 0 <= e.plane < planes for e in own)
            assert max(e.plane for e in own) == planes - 1  # its last plane, not the image's
            assert own[-1].describe().startswith(f"channel {channel}, plane {planes}/{planes}")

"""The dock's runs without Qt: which path suits the data, and what each leaves behind."""

import numpy as np
import pytest

from napari_noise2detail._napari.runs import Job, Stores, start_run, way
from napari_noise2detail.engine import model as model_module
from napari_noise2detail.io.zarr import default_axes
from conftest import with_a_blank_frame
from widget_helpers import OnePlaneAtATime, noisy_cells

QUICK = {"steps": 5, "width": 8}


def stack(planes, size=32):
    return np.stack([noisy_cells(size, seed=s)[1] for s in range(planes)])


def finish(run):
    steps = []
    while True:
        try:
            steps.append(next(run))
        except StopIteration as done:
            return steps, done.value


def stores(folder, shape, kinds=("smooth", "detail")):
    return Stores({k: folder / f"x_{k}.ome.zarr" for k in kinds}, default_axes(len(shape)), [1.0] * len(shape))


def test_the_way_follows_the_data(monkeypatch):
    monkeypatch.setattr(model_module, "FIT_ONCE_FROM", 4)
    assert way(Job(noisy_cells(16)[1], False)) == "fit once"
    assert way(Job(stack(3, 16), False)) == "every plane"
    assert way(Job(stack(4, 16), False)) == "fit once"
    assert way(Job(OnePlaneAtATime(stack(2, 16)), False)) == "stream"


def test_fit_once_reports_fitting_then_applying_and_its_fraction_grows(monkeypatch):
    monkeypatch.setattr(model_module, "FIT_ONCE_FROM", 4)
    steps, outcome = finish(start_run(Job(stack(5), False, settings=QUICK, kinds=("detail",))))
    phases = [s.phase for s in steps]
    assert phases == sorted(phases, key=["fitting", "applying"].index) and "applying" in phases
    fitting = [s.progress for s in steps if s.phase == "fitting"]  # what the Activity panel and status show
    assert all(p.fitted_on == 5 and p.describe().startswith("5 planes fitted together, stage") for p in fitting)
    fractions = [s.fraction for s in steps]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert list(outcome.arrays) == ["detail"] and outcome.arrays["detail"].shape == (5, 32, 32)
    assert outcome.model is not None


def test_a_plane_the_fitted_model_does_not_cover_is_fitted_on_its_own_and_said(monkeypatch):
    monkeypatch.setattr(model_module, "FIT_ONCE_FROM", 4)
    lapse = with_a_blank_frame(7, blank=2)  # the model is fitted on planes 0, 3 and 6
    monkeypatch.setattr(model_module, "FIT_PLANES", 3)
    steps, outcome = finish(start_run(Job(lapse, False, settings=QUICK, kinds=("detail",))))
    assert outcome.model.planes == (0, 3, 6)
    assert outcome.result.refitted == (2,)
    assert outcome.note.startswith("plane 2 was fitted on its own")  # for the notification
    assert outcome.how.endswith("; plane 2 was fitted on its own: mostly darker than the planes the model was fitted on "
                                "(numbered from 0)")
    alone = [s for s in steps if s.phase == "fitting a plane on its own"]
    assert alone and all(s.progress.plane == 2 and 1 <= s.progress.stage <= 3 for s in alone)
    assert all(s.progress.stage == 0 for s in steps if s.phase == "applying")


def test_a_lazy_image_needs_a_folder_and_streams_into_it(tmp_path):
    lazy = OnePlaneAtATime(stack(3))
    with pytest.raises(ValueError, match="folder"):
        start_run(Job(lazy, False, settings=QUICK))
    _steps, outcome = finish(start_run(Job(lazy, False, settings=QUICK, stores=stores(tmp_path, lazy.shape))))
    assert set(outcome.stores) == {"smooth", "detail"}
    assert np.asarray(outcome.arrays["detail"][1]).shape == (32, 32)
    assert lazy.reads == 3 + 3  # the fit's planes (checked for a blank one as they are read), then each plane once


def test_closing_a_lazy_run_while_it_applies_leaves_no_store(tmp_path):
    lazy = OnePlaneAtATime(stack(3))
    run = start_run(Job(lazy, False, settings=QUICK, stores=stores(tmp_path, lazy.shape)))
    while next(run).phase != "applying":
        pass
    assert any(tmp_path.iterdir())  # being written, under hidden names
    run.close()
    assert list(tmp_path.iterdir()) == []


def test_a_colour_lazy_image_streams_into_stores_with_colour_as_channels(tmp_path):
    from napari_noise2detail.io.zarr import read_zarr

    colour = np.stack([np.stack([noisy_cells(16, seed=3 * p + c)[1] for c in range(3)], axis=-1) for p in range(2)])
    lazy = OnePlaneAtATime(colour, rgb=True)
    _steps, outcome = finish(start_run(Job(lazy, True, settings=QUICK, stores=stores(tmp_path, lazy.shape[:-1]))))
    detail = outcome.arrays["detail"]
    assert detail.shape == colour.shape  # shown colour last, as napari's RGB layers are
    expected = outcome.model.apply(colour, rgb=True).detail
    assert np.array_equal(np.asarray(detail), expected)
    assert [a["name"] for a in read_zarr(outcome.stores["detail"]).axes] == ["c", "z", "y", "x"]


def test_a_colour_lazy_image_with_a_channel_axis_is_refused_before_fitting(tmp_path):
    from napari_noise2detail.io import ImageMeta

    lazy = OnePlaneAtATime(np.zeros((2, 16, 16, 3), np.uint8), rgb=True)
    axes = default_axes(3, ImageMeta(axes="CYX"))
    with pytest.raises(ValueError, match="channel axis as well"):
        start_run(Job(lazy, True, stores=Stores({"detail": tmp_path / "d.ome.zarr"}, axes, [1.0] * 3)))


def test_a_layer_never_takes_over_another_layers_results(tmp_path):
    import dask.array as da
    from napari.layers import Image

    from napari_noise2detail._napari.stores import layer_stores
    from napari_noise2detail.io.zarr import ome_zarr_outputs

    def results(layer):
        stores = layer_stores(layer, tmp_path, ("detail",))
        with ome_zarr_outputs(stores.paths, layer.data.shape, stores.axes, stores.scale, source=stores.source) as out:
            out["detail"][...] = 1
        return stores

    data = da.zeros((2, 16, 16), chunks=(1, 16, 16))
    first = results(Image(data, name="cells (1)"))
    assert results(Image(data, name="cells (1)")).paths == first.paths  # its own: replaced
    with pytest.raises(ValueError, match=r"holds the results of layer 'cells \(1\)'; rename this layer"):
        layer_stores(Image(data, name="cells [1]"), tmp_path, ("detail",))  # the same name once cleaned


def test_a_lazy_layer_with_axes_out_of_ome_order_is_stored_in_it_and_shown_as_it_is(tmp_path):
    import dask.array as da
    from napari.layers import Image

    from napari_noise2detail._napari.stores import layer_stores
    from napari_noise2detail.io.zarr import read_zarr

    data = da.from_array(np.random.default_rng(0).poisson(40, (3, 2, 16, 16)).astype(np.uint16), chunks=(1, 1, 16, 16))
    layer = Image(data, name="zc", scale=(2.0, 1.0, 0.5, 0.5), axis_labels=("z", "c", "y", "x"))
    stores = layer_stores(layer, tmp_path, ("detail",))
    _steps, outcome = finish(start_run(Job(data, False, settings=QUICK, kinds=("detail",), stores=stores)))
    assert outcome.arrays["detail"].shape == (3, 2, 16, 16)  # shown over the layer as it is
    stored = read_zarr(stores.paths["detail"])
    assert [a["name"] for a in stored.axes] == ["c", "z", "y", "x"] and stored.scale == [1.0, 2.0, 0.5, 0.5]
    assert np.array_equal(stored.data.compute().transpose(1, 0, 2, 3), np.asarray(outcome.arrays["detail"]))


@pytest.mark.parametrize("planes", [8, 2], ids=["fitted once", "plane by plane"])
def test_each_channel_of_a_layer_is_fitted_on_its_own(planes, monkeypatch):
    """As the batch does: each channel gives what it gives alone, not what one model of all
    its channels would."""
    from napari.layers import Image

    from napari_noise2detail._napari.layers import layer_channel_axis

    monkeypatch.setattr(model_module, "FIT_ONCE_FROM", 4)
    data = np.stack([stack(planes), 5 * stack(planes)[::-1]], axis=1)  # z, c, y, x
    assert layer_channel_axis(Image(data, axis_labels=("z", "c", "y", "x"))) == 1
    assert layer_channel_axis(Image(data)) is None  # napari's default labels name no channel
    assert layer_channel_axis(Image(data, axis_labels=("-4", "c", "-2", "-1"))) == 1  # "c" typed beside a slider
    job = Job(data, False, settings=QUICK, kinds=("smooth", "detail"), channel_axis=1)
    assert way(job) == ("fit once" if planes == 8 else "every plane")
    steps, outcome = finish(start_run(job))
    assert len(outcome.channels) == 2 and outcome.model is None
    assert f"each of its 2 channels on its own, {'fitted once' if planes == 8 else 'every plane'}" in outcome.how
    assert all(s.progress.plane < 2 * planes for s in steps)  # planes numbered in the whole layer
    fractions = [s.fraction for s in steps]
    assert fractions == sorted(fractions)
    for channel in range(2):
        _steps, alone = finish(start_run(Job(data[:, channel], False, settings=QUICK, kinds=("smooth", "detail"))))
        for kind in ("smooth", "detail"):
            assert np.array_equal(outcome.arrays[kind][:, channel], alone.arrays[kind])
        assert (outcome.channels[channel][1] is None) == (planes == 2)  # a model where it was fitted once
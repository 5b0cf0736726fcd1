"""Stacks fitted once, layers larger than memory, and saved models, in the Noise2Detail dock:
driven by real clicks."""

from pathlib import Path

import numpy as np
import pytest

from napari_noise2detail import load_model
from napari_noise2detail._napari import runs as runs_module
from napari_noise2detail.engine import stack as stack_module
from napari_noise2detail._napari import widget as widget_module
from napari_noise2detail.engine import model as model_module
from napari_noise2detail.io.zarr import read_zarr
from widget_helpers import WAIT, OnePlaneAtATime, click, make_widget, noisy_cells, viewer  # noqa: F401


def stack(planes, size=32):
    return np.stack([noisy_cells(size, seed=s)[1] for s in range(planes)])


@pytest.fixture
def fit_once_from_4(monkeypatch):
    """Stacks of 4 planes or more are fitted once (the real threshold is being measured)."""
    monkeypatch.setattr(model_module, "FIT_ONCE_FROM", 4)


def no_fitting(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("fitted, but a saved model was to be applied")

    for module in (runs_module, stack_module):
        monkeypatch.setattr(module, "fit_iter", refuse)
        monkeypatch.setattr(module, "denoise_iter", refuse)


def test_a_long_stack_is_fitted_once_and_a_short_one_plane_by_plane(viewer, make_widget, qtbot, fit_once_from_4):
    long = viewer.add_image(stack(6), name="long")
    w = make_widget()
    click(qtbot, w.denoise_button, w)
    about = viewer.layers["long [N2D detail]"].metadata["noise2detail"]
    assert about["how"] == "fitted once on 5 of 6 planes, applied to every plane"
    assert w.model is not None and w.model.planes == (0, 1, 2, 4, 5)
    assert viewer.layers["long [N2D detail]"].data.shape == long.data.shape
    assert not w.stabilise.value and w.model.settings.stabilise  # fitted once: stabilised, as elsewhere
    click(qtbot, w.preview_button, w)  # a preview of one plane shows what that run gives
    preview = viewer.layers["long [N2D preview]"].metadata["noise2detail"]
    assert preview["settings"]["stabilise"] is True
    assert w.noise.value.startswith("preview: ")  # the region's noise, not the result layers'

    viewer.add_image(stack(3), name="short")
    w.layer.value = viewer.layers["short"]
    click(qtbot, w.denoise_button, w)
    assert viewer.layers["short [N2D detail]"].metadata["noise2detail"]["how"] == \
        "every plane fitted in turn (3 planes)"


@pytest.mark.parametrize("backing", ["lazy array", "dask"])
def test_a_lazy_layer_streams_into_ome_zarr_and_is_never_read_whole(viewer, make_widget, qtbot, tmp_path, backing):
    data = (stack(4) * 1000).astype(np.uint16)
    lazy = OnePlaneAtATime(data)  # raises if anything reads more than a plane
    if backing == "dask":  # what napari's readers give for big files: dask over the file
        lazy = pytest.importorskip("dask.array").from_array(lazy, chunks=(1, *data.shape[1:]))
    source = viewer.add_image(lazy, name="big: run 1", contrast_limits=(0, 1000), scale=(3.0, 0.5, 0.5),
                              translate=(0.0, 12.0, -4.0), units=("um", "um", "um"), axis_labels=("z", "y", "x"))
    w = make_widget()
    w.folder.value = tmp_path / "results"
    click(qtbot, w.denoise_button, w)

    detail = viewer.layers["big: run 1 [N2D detail]"]
    assert not isinstance(detail.data, np.ndarray)  # shown lazily, from the store
    path = tmp_path / "results" / "big_run 1_n2d_detail.ome.zarr"
    assert detail.metadata["noise2detail"]["stores"]["detail"] == str(path)
    written = read_zarr(path)
    assert written.scale == [3.0, 0.5, 0.5] and written.meta.unit == "µm"
    first = np.asarray(written.data[0])  # the limits: from the result's first plane, not the source's
    assert tuple(detail.contrast_limits) == pytest.approx((first.min(), first.max()))
    assert written.translation == [0.0, 12.0, -4.0]  # opened on its own later, it lies over its source
    assert np.asarray(written.data[2]).std() < data[2].std()  # denoised
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "big_run 1_n2d_detail.ome.zarr", "big_run 1_n2d_smooth.ome.zarr"]  # nothing half-made
    assert np.array_equal(detail.scale, source.scale) and np.array_equal(detail.translate, source.translate)
    assert "results in" in w.status.value and str(tmp_path / "results") in w.status.tooltip
    assert source.data is lazy  # the source as it was

    (tmp_path / "not a folder").write_text("")
    w.folder.value = tmp_path / "not a folder"  # a model to save writes no results: not checked
    w.steps.value = 6
    w.save_model(path=tmp_path / "big.n2d")
    qtbot.waitUntil(lambda: not w.running, timeout=WAIT)
    assert (tmp_path / "big.n2d").is_file(), w.status.value


def test_a_lazy_colour_layer_streams_into_ome_zarr_and_is_shown_as_rgb(viewer, make_widget, qtbot, tmp_path):
    colour = np.stack([np.stack([noisy_cells(32, seed=3 * p + c)[1] for c in range(3)], axis=-1) for p in range(2)])
    colour = (colour.clip(0, 1) * 255).astype(np.uint8)
    viewer.add_image(OnePlaneAtATime(colour, rgb=True), name="slide", rgb=True)
    w = make_widget()
    w.folder.value = tmp_path
    click(qtbot, w.denoise_button, w)
    detail = viewer.layers["slide [N2D detail]"]
    assert detail.rgb and detail.data.shape == colour.shape
    written = read_zarr(tmp_path / "slide_n2d_detail.ome.zarr")
    assert [a["name"] for a in written.axes] == ["c", "z", "y", "x"]  # a valid OME image, colour as channels
    assert np.array_equal(np.moveaxis(np.asarray(written.data), 0, -1), np.asarray(detail.data))


def test_a_cancelled_lazy_run_leaves_no_store(viewer, make_widget, qtbot, tmp_path):
    viewer.add_image(OnePlaneAtATime(stack(4)), name="big", contrast_limits=(0, 1))
    w = make_widget(steps=50_000)
    w.folder.value = tmp_path / "out"
    w.denoise_button.native.click()
    qtbot.waitUntil(lambda: "step" in w.status.value, timeout=60_000)
    w.cancel_button.native.click()
    qtbot.waitUntil(lambda: not w.running, timeout=10_000)
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []
    assert [layer.name for layer in viewer.layers] == ["big"]


def test_save_model_proposes_a_name_from_the_layer_in_the_last_models_folder(
        viewer, make_widget, tmp_path, monkeypatch):
    from magicgui.application import use_app

    source = viewer.add_image(noisy_cells(24)[1], name="cells 2")
    w = make_widget()
    asked = {}

    def dialog(mode, caption, start_path, filter, parent):  # noqa: A002 - magicgui's names
        asked.update(mode=mode, start=start_path)

    monkeypatch.setattr(type(use_app()), "get_obj", lambda self, name: dialog)
    w._ask_save_path(source, None)
    assert asked == {"mode": "w", "start": str(Path.home() / "cells 2.n2d")}
    w.model_file.value = tmp_path / "old.n2d"  # not proposed again: saving would write over it
    w._ask_save_path(source, 1)
    assert asked["start"] == str(tmp_path / "cells 2_c1.n2d")
    (tmp_path / "cells 2_c1.n2d").write_bytes(b"")  # saved before: not proposed again either
    w._ask_save_path(source, 1)
    assert asked["start"] == str(tmp_path / "cells 2_c1_2.n2d")


def test_save_the_fitted_model_then_apply_it_to_another_layer_with_one_click(
        viewer, make_widget, qtbot, tmp_path, monkeypatch):
    viewer.add_image(noisy_cells(48, seed=1)[1], name="first")
    w = make_widget()
    click(qtbot, w.denoise_button, w)
    fitted = w.model
    monkeypatch.setattr(widget_module.DenoiseWidget, "_ask_save_path", lambda self, *_: str(tmp_path / "cells"))
    w.save_model_button.native.click()  # no run: the model of the last run is written
    assert not w.running
    path = tmp_path / "cells.n2d"
    assert path.is_file() and w.model_file.value == path
    assert "Model saved" in w.status.value
    assert load_model(path, device="cpu").planes == fitted.planes

    second = viewer.add_image(noisy_cells(48, seed=2)[1], name="second")
    w.layer.value = second
    no_fitting(monkeypatch)
    again = widget_module.DenoiseWidget(viewer)  # the model file comes back next time
    assert again.model_file.value == path
    click(qtbot, w.apply_model_button, w)
    about = viewer.layers["second [N2D detail]"].metadata["noise2detail"]
    assert about["how"] == "saved model applied, no fitting"
    assert about["preset"] is None and about["model_file"] == str(path)  # not the dock's preset: the model's settings
    assert viewer.layers["second [N2D detail]"].data.shape == (48, 48)

    # a darker layer is refused, with what to do in the dock (not the command line's words)
    w.layer.value = viewer.add_image(noisy_cells(48, seed=2)[1] - 5.0, name="dark")
    click(qtbot, w.apply_model_button, w)
    assert w.status.value.startswith("Noise2Detail cannot apply this model: 100 % of plane 0 is darker")
    assert w.status.value.endswith("Denoise fits a model to this layer itself (and Save model keeps it).")
    assert "fit --planes" not in w.status.value and "dark [N2D detail]" not in viewer.layers


def test_save_model_fits_one_first_when_the_last_run_fitted_plane_by_plane(viewer, make_widget, qtbot, tmp_path,
                                                                          monkeypatch):
    viewer.add_image(stack(3), name="short")
    w = make_widget()
    click(qtbot, w.denoise_button, w)
    assert w.model is None  # every plane had its own fit
    monkeypatch.setattr(widget_module.DenoiseWidget, "_ask_save_path", lambda self, *_: str(tmp_path / "short.n2d"))
    click(qtbot, w.save_model_button, w)
    assert load_model(tmp_path / "short.n2d", device="cpu").planes == (0, 1, 2)
    assert w.noise.value not in ("being estimated...", "")  # the new model's noise, in words
    w.save_model(path=tmp_path / "same.n2d")  # the model just fitted: written, no run
    assert not w.running and (tmp_path / "same.n2d").is_file()
    w.steps.value = 7  # other settings than the model's: it is fitted again with them
    click(qtbot, w.save_model_button, w)
    assert load_model(tmp_path / "short.n2d", device="cpu").settings.steps == 7


def test_model_and_results_paths_take_a_home_folder_and_keep_what_is_typed(
        viewer, make_widget, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    viewer.add_image(noisy_cells(32)[1], name="cells")
    w = make_widget()
    click(qtbot, w.denoise_button, w)
    monkeypatch.setattr(widget_module.DenoiseWidget, "_ask_save_path", lambda self, *_: "~/cells.v2")
    w.save_model_button.native.click()
    assert (tmp_path / "cells.v2.n2d").is_file()  # the suffix added, not put in place of ".v2"
    w.model_file.value = "~/cells.v2.n2d"  # typed
    assert widget_module.DenoiseWidget(viewer).model_file.value == tmp_path / "cells.v2.n2d"  # remembered
    no_fitting(monkeypatch)
    click(qtbot, w.apply_model_button, w)
    assert "no such model" not in w.status.value and " done in " in w.status.value

    big = viewer.add_image(OnePlaneAtATime(stack(2)), name="big", contrast_limits=(0, 1))
    w.layer.value = big
    w.folder.value = "~/results"
    click(qtbot, w.apply_model_button, w)
    assert (tmp_path / "results" / "big_n2d_detail.ome.zarr").is_dir() and str(tmp_path / "results") in w.status.tooltip


def test_a_model_of_the_wrong_kind_or_file_is_refused_with_the_reason(viewer, make_widget, qtbot, tmp_path):
    viewer.add_image(noisy_cells(32)[1], name="grey")
    w = make_widget()
    click(qtbot, w.denoise_button, w)
    w.model.save(tmp_path / "grey.n2d")
    rgb = np.clip(np.stack([noisy_cells(32)[1]] * 3, axis=-1) * 255, 0, 255).astype(np.uint8)
    viewer.add_image(rgb, name="colour", rgb=True)
    w.layer.value = viewer.layers["colour"]
    w.model_file.value = tmp_path / "grey.n2d"
    w.apply_model_button.native.click()
    assert not w.running and "fitted on grey (1 channel) images" in w.status.value
    (tmp_path / "junk.n2d").write_bytes(b"not a model")
    w.model_file.value = tmp_path / "junk.n2d"
    w.apply_model_button.native.click()
    assert not w.running and "not a readable Noise2Detail model" in w.status.value
    assert "colour [N2D detail]" not in viewer.layers


def test_each_channel_of_a_layer_is_fitted_on_its_own_and_saved_as_shown(
        viewer, make_widget, qtbot, tmp_path, monkeypatch, fit_once_from_4):
    data = np.stack([stack(4), 5 * stack(4)[::-1]], axis=1)  # z, c, y, x
    viewer.add_image(data, name="two", axis_labels=("z", "c", "y", "x"))
    w = make_widget()
    click(qtbot, w.denoise_button, w)
    about = viewer.layers["two [N2D detail]"].metadata["noise2detail"]
    assert about["how"] == "each of its 2 channels on its own, fitted once on 4 of 4 planes, applied to every plane"
    assert w.noise.value.startswith("channel 0: ") and "channel 1: " in w.noise.tooltip
    assert w.history.title == "channel 1, 4 planes fitted together"  # the last channel's fit, not both mixed
    steps = [step for step, _ in w.history.series["stage 1"]]
    assert steps and steps == sorted(set(steps))
    assert w.model is None  # no one model of the layer
    monkeypatch.setattr(widget_module.DenoiseWidget, "_ask_save_path", lambda self, *_: str(tmp_path / "c1.n2d"))
    viewer.dims.set_current_step(1, 1)  # channel 1 shown: its model is saved, as fitted (no run)
    w.save_model_button.native.click()
    assert not w.running
    assert load_model(tmp_path / "c1.n2d", device="cpu").planes == (1, 3, 5, 7)  # ZCYX: channel 1's planes
    w.steps.value = 7  # other settings: fitted again, on channel 1's planes alone
    click(qtbot, w.save_model_button, w)
    saved = load_model(tmp_path / "c1.n2d", device="cpu")
    assert saved.settings.steps == 7 and saved.planes == (1, 3, 5, 7)


def test_a_lazy_layer_of_huge_planes_gets_multiscale_result_layers(viewer, make_widget, qtbot, tmp_path, monkeypatch):
    """napari reads the level that suits the zoom, never a huge plane whole to show it."""
    from napari_noise2detail.io import pyramid

    monkeypatch.setattr(pyramid, "LEVEL_SIDE", 16)  # "huge": over 16 pixels a side
    data = (stack(3) * 1000).astype(np.uint16)
    viewer.add_image(OnePlaneAtATime(data), name="huge", contrast_limits=(0, 1000))
    w = make_widget()
    w.folder.value = tmp_path
    for run in range(2):  # and again: the layers refreshed, not piled up
        click(qtbot, w.denoise_button, w)
        detail = viewer.layers["huge [N2D detail]"]
        assert detail.multiscale and [level.shape for level in detail.data] == [(3, 32, 32), (3, 16, 16)]
    assert [layer.name for layer in viewer.layers].count("huge [N2D detail]") == 1

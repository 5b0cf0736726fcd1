"""The dock widget, driven as a person would: click, wait for the worker, look at the layers."""

import numpy as np
import pytest

from conftest import psnr, synthetic_cells
from napari_noise2detail.engine import stack as stack_module
from napari_noise2detail._napari import widget as widget_module
from napari_noise2detail._napari.widget import DenoiseWidget
from widget_helpers import WAIT, noisy_cells, viewer  # noqa: F401 - viewer is a fixture


@pytest.fixture
def errors(monkeypatch):
    """Error notifications shown by the widget (they still reach napari too)."""
    shown = []

    def record(message):
        shown.append(message)
        real_show_error(message)

    real_show_error = widget_module.show_error
    monkeypatch.setattr(widget_module, "show_error", record)
    return shown


def make_widget(viewer, steps=5):
    w = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(w, name="Noise2Detail")
    w.steps.value = steps
    return w


def click_and_wait(qtbot, w):
    w.denoise_button.native.click()
    qtbot.waitUntil(lambda: not w.running, timeout=WAIT)


def test_denoise_adds_smooth_and_detail_exactly_over_the_source(viewer, qtbot, errors):
    clean, noisy = noisy_cells()
    source = viewer.add_image(noisy, name="cells", scale=(0.5, 0.25), translate=(10, -3),
                              colormap="magma", blending="additive", units=("um", "um"),
                              axis_labels=("y", "x"))
    w = make_widget(viewer, steps=120)
    assert w.layer.value is source
    from napari_noise2detail import describe_device

    assert w.device.value == describe_device("auto")  # e.g. "CPU, 2 threads (fewer for fitting ...)"
    assert w.device.value.startswith("CPU") and "thread" in w.device.value
    click_and_wait(qtbot, w)

    assert errors == []
    assert [layer.name for layer in viewer.layers] == ["cells", "cells [N2D smooth]", "cells [N2D detail]"]
    smooth, detail = viewer.layers[1], viewer.layers[2]
    for layer in (smooth, detail):
        assert layer.data.shape == noisy.shape
        assert np.array_equal(layer.scale, source.scale)
        assert np.array_equal(layer.translate, source.translate)
        assert np.array_equal(layer.affine.affine_matrix, source.affine.affine_matrix)
        assert layer.units == source.units and layer.axis_labels == source.axis_labels
        assert layer.colormap.name == "magma" and layer.blending == "additive"
        assert layer.contrast_limits == [float(layer.data.min()), float(layer.data.max())]
    assert psnr(detail.data, clean) > psnr(noisy, clean) + 3
    assert viewer.layers.selection.active is detail
    assert w.progress.value == 100 and w.status.value.startswith("'cells' done in ")  # names its layer
    assert w.denoise_button.enabled and not w.cancel_button.enabled
    assert w.noise.value != "estimated when denoising"
    w.layer.value = detail  # another layer: the noise line was not about it
    assert w.noise.value == "estimated when denoising" and not w.noise.tooltip


def test_stage_one_layer_on_request(viewer, qtbot):
    viewer.add_image(noisy_cells(24)[1], name="a")
    w = make_widget(viewer)
    w.add_stage1.value = True
    click_and_wait(qtbot, w)
    assert [layer.name for layer in viewer.layers] == [
        "a", "a [N2D stage 1]", "a [N2D smooth]", "a [N2D detail]"]


def test_cancel_midway_changes_no_layer(viewer, qtbot):
    viewer.add_image(noisy_cells(64)[1], name="cells")
    w = make_widget(viewer, steps=50_000)
    w.denoise_button.native.click()
    qtbot.waitUntil(lambda: w.progress.value > 0 or "step" in w.status.value, timeout=WAIT)
    assert w.running and w.cancel_button.enabled and not w.denoise_button.enabled
    w.cancel_button.native.click()
    qtbot.waitUntil(lambda: not w.running, timeout=10_000)  # stops within a few steps
    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert "Cancelled" in w.status.value and w.progress.value == 0  # not left part-way


def test_running_twice_replaces_instead_of_piling_up(viewer, qtbot):
    viewer.add_image(noisy_cells(24)[1], name="cells")
    w = make_widget(viewer)
    click_and_wait(qtbot, w)
    first = viewer.layers["cells [N2D detail]"]
    viewer.layers.selection.active = viewer.layers["cells"]
    w.layer.value = viewer.layers["cells"]
    w.steps.value = 7
    click_and_wait(qtbot, w)
    assert [layer.name for layer in viewer.layers] == ["cells", "cells [N2D smooth]", "cells [N2D detail]"]
    assert viewer.layers["cells [N2D detail]"] is first


def test_second_start_while_running_is_refused(viewer, qtbot):
    viewer.add_image(noisy_cells(48)[1], name="cells")
    w = make_widget(viewer, steps=50_000)
    worker = w.start()
    assert worker is not None and w.denoise_button.enabled is False
    assert w.start() is None  # nothing new started
    w.cancel()
    qtbot.waitUntil(lambda: not w.running, timeout=WAIT)
    assert [layer.name for layer in viewer.layers] == ["cells"]


def test_non_image_layer_gives_a_notification_and_no_layer(viewer, qtbot, errors):
    labels = viewer.add_labels(np.zeros((16, 16), np.uint8), name="mask")
    w = make_widget(viewer)
    assert w.layer.choices == ()  # only image layers are offered
    assert w.denoise_layer(labels) is None
    assert not w.denoise_button.enabled
    assert w.start() is None  # nothing to choose: says so
    assert len(errors) == 2 and "image layers only" in errors[0] and "no image layer" in errors[1]
    assert [layer.name for layer in viewer.layers] == ["mask"]
    assert not w.running


def test_nan_image_gives_a_notification_and_no_layer(viewer, qtbot, errors):
    data = noisy_cells(24)[1]
    data[3, 4] = np.nan
    viewer.add_image(data, name="broken")
    w = make_widget(viewer)
    click_and_wait(qtbot, w)
    assert len(errors) == 1 and "NaN" in errors[0]
    assert [layer.name for layer in viewer.layers] == ["broken"]
    assert "NaN" in w.status.value


def test_engine_failure_in_the_worker_is_reported_and_widget_is_ready(viewer, qtbot, errors, monkeypatch):
    def explode(*args, **kwargs):
        def run():
            yield from ()
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return run()

    monkeypatch.setattr(stack_module, "fit_iter", explode)
    viewer.add_image(noisy_cells(24)[1], name="cells")
    w = make_widget(viewer)
    click_and_wait(qtbot, w)
    assert len(errors) == 1 and "ran out of memory" in errors[0]
    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert w.denoise_button.enabled
    assert w.noise.value == "estimated when denoising"  # not "being estimated..." for ever


def test_rgb_layer(viewer, qtbot):
    rng = np.random.default_rng(0)
    rgb = np.clip(synthetic_cells(24)[..., None] * [200, 120, 60] + rng.normal(0, 20, (24, 24, 3)), 0, 255)
    source = viewer.add_image(rgb.astype(np.uint8), name="he", rgb=True)
    w = make_widget(viewer)
    click_and_wait(qtbot, w)
    detail = viewer.layers["he [N2D detail]"]
    assert detail.rgb and detail.data.shape == (24, 24, 3)
    assert detail.contrast_limits == source.contrast_limits
    # 8-bit colour in, 8-bit colour shown: napari draws float colour thumbnails plain white
    assert detail.data.dtype == np.uint8
    colours = detail.thumbnail[..., :3].astype(float)
    assert colours.mean() < 250 and abs(colours.mean() - source.thumbnail[..., :3].mean()) < 30


def test_z_stack_every_plane_denoised(viewer, qtbot):
    stack = np.stack([noisy_cells(24, seed=s)[1] for s in range(3)])
    viewer.add_image(stack, name="z", scale=(2.0, 0.5, 0.5))
    w = make_widget(viewer)
    click_and_wait(qtbot, w)
    detail = viewer.layers["z [N2D detail]"]
    assert detail.data.shape == (3, 24, 24)
    assert np.array_equal(detail.scale, (2.0, 0.5, 0.5))
    assert all(not np.array_equal(detail.data[i], stack[i]) for i in range(3))


def test_source_removed_during_the_run(viewer, qtbot, errors):
    source = viewer.add_image(noisy_cells(48)[1], name="cells")
    viewer.add_image(noisy_cells(24)[1], name="other")
    w = make_widget(viewer, steps=50_000)
    w.layer.value = source
    w.start()
    viewer.layers.remove(source)
    qtbot.waitUntil(lambda: not w.running, timeout=10_000)
    assert [layer.name for layer in viewer.layers] == ["other"]
    assert "the source layer 'cells' was removed while it was being denoised" in w.status.value  # not just "Cancelled"
    assert not errors  # the user's own doing: said, not reported as an error


def test_source_removed_while_a_model_is_fitted_for_saving(viewer, qtbot, errors, tmp_path):
    source = viewer.add_image(noisy_cells(48)[1], name="cells")
    w = make_widget(viewer, steps=50_000)
    w.layer.value = source
    w.save_model(path=tmp_path / "m.n2d")  # nothing fitted yet: fits first
    assert w.running
    viewer.layers.remove(source)
    qtbot.waitUntil(lambda: not w.running, timeout=10_000)
    assert ("the source layer 'cells' was removed while a model was being fitted to it; no model was saved to "
            f"{tmp_path / 'm.n2d'}") in w.status.value
    assert not (tmp_path / "m.n2d").exists() and not errors


def test_layer_choices_follow_the_viewer(viewer):
    w = make_widget(viewer)
    assert w.layer.choices == () and not w.denoise_button.enabled
    a = viewer.add_image(np.zeros((8, 8)), name="a")
    viewer.add_points(name="p")
    assert w.layer.choices == (a,) and w.denoise_button.enabled
    viewer.layers.remove(a)
    assert w.layer.choices == ()


def test_a_renamed_layer_stays_chosen(viewer, qtbot):
    w = make_widget(viewer)
    viewer.add_image(np.zeros((8, 8)), name="nuc")
    em = viewer.add_image(np.zeros((8, 8)), name="em")
    box = viewer.add_shapes([[[2, 2], [6, 6]]], shape_type="rectangle", name="box")
    viewer.add_shapes(name="other box")
    w.layer.value, w.region.value = em, box
    em.name, box.name = "em, cropped", "box 2"  # napari resets the dock's choices: the combo box moved to 'nuc'
    qtbot.wait(50)
    assert w.layer.value is em and w.region.value is box
    assert "em, cropped" in w.layer.native.currentText()


def test_settings_come_back(viewer):
    w = make_widget(viewer)
    w.preset.value = "paper"
    assert w.steps.value == 2000
    w.steps.value = 321
    w.add_stage1.value = True
    w.stabilise.value = True
    again = DenoiseWidget(viewer)
    assert (again.preset.value, again.steps.value, again.add_stage1.value) == ("paper", 321, True)
    assert again.stabilise.value


def test_shot_noise_is_shown_stabilised_on_request_and_kept_with_the_layers(viewer, qtbot):
    clean = synthetic_cells(64)  # the smallest the noise estimator takes is about 60x60
    counts = np.random.default_rng(0).poisson(40 * clean).astype(np.uint16)
    viewer.add_image(counts, name="counts")
    w = make_widget(viewer)
    assert w.noise.value == "estimated when denoising"
    click_and_wait(qtbot, w)
    assert w.noise.value.startswith("shot noise: variance grows with the signal (gain 1")
    assert "grey levels per detected photon" in w.noise.tooltip and "stabilised" not in w.noise.value
    w.stabilise.value = True
    click_and_wait(qtbot, w)
    assert "shot noise" in w.noise.value and "stabilised" in w.noise.value
    about = viewer.layers["counts [N2D detail]"].metadata["noise2detail"]
    assert about["stabilised"] and about["shot_noise"] and about["preset"] == "fast"
    assert about["noise_a"] == pytest.approx(1.0, rel=0.3)  # counts: variance = signal


def test_closing_the_viewer_mid_run_stops_the_worker(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(noisy_cells(48)[1], name="cells")
    w = make_widget(viewer, steps=50_000)
    worker = w.start()
    qtbot.waitUntil(lambda: worker.is_running, timeout=WAIT)
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)


def test_viewer_stays_responsive_while_fitting(viewer, qtbot):
    from qtpy.QtCore import QTimer

    viewer.add_image(noisy_cells(64)[1], name="cells")
    w = make_widget(viewer, steps=50_000)
    w.start()
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    camera = getattr(viewer, "scene", viewer).camera  # napari >= 0.9 moved it to viewer.scene
    zoom = camera.zoom
    camera.zoom = zoom * 2  # pan/zoom and layer changes go on during the run
    viewer.layers.selection.active = viewer.layers["cells"]
    qtbot.wait(1000)
    timer.stop()
    assert w.running
    assert camera.zoom == pytest.approx(zoom * 2)
    assert len(ticks) >= 10  # the GUI thread's event loop kept turning (50 would be ideal)
    w.cancel()
    qtbot.waitUntil(lambda: not w.running, timeout=10_000)


def test_multiscale_layer_is_denoised_at_full_resolution(viewer, qtbot):
    base = noisy_cells(32)[1]
    viewer.add_image([base, base[::2, ::2]], name="pyramid", multiscale=True)
    w = make_widget(viewer)
    click_and_wait(qtbot, w)
    assert viewer.layers["pyramid [N2D detail]"].data.shape == (32, 32)


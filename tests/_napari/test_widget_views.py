"""What the dock shows while and after it runs: the Activity panel, a steady width, the noise
line, comparing the stages, the loss plot, and previews. Driven by real clicks."""

import numpy as np
import pytest
from napari._qt.widgets.qt_progress_bar import QtLabeledProgressBar

from napari_noise2detail._napari.layers import result_name
from widget_helpers import WAIT, click, make_widget, noisy_cells, viewer  # noqa: F401 - fixtures

LONG = "cells imaged on 2026-11-29 at the widefield scope, well B3, field 12, channel DAPI, 40x oil"


def activity_bars(viewer):
    dialog = viewer.window._qt_window._activity_dialog
    return dialog.findChildren(QtLabeledProgressBar)


def test_a_run_is_in_the_activity_panel_and_is_cancelled_from_there(viewer, make_widget, qtbot):
    viewer.add_image(noisy_cells(64)[1], name="nuclei 3")
    w = make_widget(steps=50_000)
    w.denoise_button.native.click()
    qtbot.waitUntil(lambda: "stage 1/3" in w.status.value, timeout=WAIT)

    def ours():
        return [bar for bar in activity_bars(viewer)
                if "Noise2Detail: nuclei 3" in bar.description_label.text()]

    qtbot.waitUntil(lambda: len(ours()) == 1, timeout=WAIT)
    (bar,) = ours()
    assert bar.cancel_button.isVisibleTo(bar)
    texts = [b.description_label.text() for b in activity_bars(viewer)]
    assert any("stage 1/3 (partial denoising)" in text for text in texts)
    bar.cancel_button.click()  # the Activity panel's own Cancel button
    qtbot.waitUntil(lambda: not w.running, timeout=10_000)
    assert [layer.name for layer in viewer.layers] == ["nuclei 3"]
    assert "Cancelled" in w.status.value and w.progress.value == 0
    qtbot.waitUntil(lambda: not ours(), timeout=10_000)  # the bars are gone with the run


def test_a_run_goes_on_when_the_dock_is_closed_and_adds_its_layers(viewer, make_widget, qtbot):
    viewer.add_image(noisy_cells(32)[1], name="cells")
    w = make_widget(steps=60)
    w.denoise_button.native.click()
    viewer.window.remove_dock_widget(w.native)  # napari's close button: the dock leaves the window
    qtbot.waitUntil(lambda: not w.running, timeout=WAIT)
    assert [layer.name for layer in viewer.layers] == ["cells", "cells [N2D smooth]", "cells [N2D detail]"]


def test_the_dock_keeps_its_width_with_long_texts(viewer, make_widget, qtbot):
    viewer.add_image(noisy_cells(64)[1], name="short")
    w = make_widget(steps=200)
    dock = w.native.parentWidget()
    while dock is not None and not dock.inherits("QDockWidget"):
        dock = dock.parentWidget()
    viewer.window._qt_window.show()
    qtbot.wait(50)
    width = dock.width()
    viewer.add_image(noisy_cells(64)[1], name=LONG)
    w.layer.value = viewer.layers[LONG]
    widths, formats = [], []
    w.denoise_button.native.click()
    qtbot.waitUntil(lambda: (widths.append(dock.width()) or formats.append(w.progress.native.format())
                             or not w.running), timeout=WAIT)
    # the time left is on the bar, where the status cannot push it out of sight; gone once done
    assert any(f.startswith("%p%, about ") and f.endswith(" left") for f in formats)
    assert w.progress.native.format() == "%p%"
    w.status.value = "x" * 300  # a path, say: no spaces to wrap at
    qtbot.wait(50)
    assert set(widths) == {width} and dock.width() == width
    assert w.status.tooltip == w.status.value == "x" * 300  # the whole text is one hover away
    # Whole lines only, two at most, each within the label; what does not fit ends in "…".
    label = w.status.native
    shown = w.status.shown.splitlines()
    assert len(shown) == 2 and shown[-1].endswith("\u2026")
    assert all(label.fontMetrics().horizontalAdvance(line) <= label.contentsRect().width() for line in shown)
    assert label.height() >= label.fontMetrics().lineSpacing() * 2
    assert width >= w.native.fontMetrics().horizontalAdvance("Noise2Detail (napari-noise2detail)")


def test_the_noise_line_is_cleared_when_a_run_starts(viewer, make_widget, qtbot):
    viewer.add_image(noisy_cells(64)[1], name="cells")
    w = make_widget()
    click(qtbot, w.denoise_button, w)
    assert w.noise.value.startswith("even noise: ±")
    w.steps.value = 50_000
    w.denoise_button.native.click()
    assert w.noise.value == "being estimated..."
    w.cancel_button.native.click()
    assert not w.cancel_button.enabled  # asked once
    qtbot.waitUntil(lambda: not w.running, timeout=10_000)
    assert w.progress.value == 0


def test_compare_shows_the_stages_side_by_side_and_goes_back(viewer, make_widget, qtbot):
    from napari_noise2detail._napari.compare import camera_of, grid_of

    source = viewer.add_image(noisy_cells(48)[1], name="cells")
    other = viewer.add_points(np.array([[5.0, 5.0]]), name="spots")
    w = make_widget()
    w.layer.value = source
    assert not w.compare_button.enabled  # nothing to compare yet
    click(qtbot, w.denoise_button, w)
    names = [layer.name for layer in viewer.layers]
    camera = camera_of(viewer)
    camera.zoom, camera.center = 3.0, (0.0, 10.0, 12.0)
    assert w.compare_button.enabled

    w.compare_button.native.click()
    grid = grid_of(viewer)
    assert grid.enabled and tuple(grid.shape) == (1, 3)
    shown = [layer.name for layer in viewer.layers if layer.visible]
    assert shown == ["cells", "cells [N2D smooth]", "cells [N2D detail]"]
    assert all(viewer.layers[name].name_overlay.visible for name in shown)  # tiles labelled
    assert not other.visible and camera.zoom != 3.0  # the view fitted to the tiles
    assert [layer.name for layer in viewer.layers] == names  # no layer added

    w.compare_button.native.click()
    assert not grid.enabled and other.visible
    assert not any(layer.name_overlay.visible for layer in viewer.layers)
    assert camera.zoom == pytest.approx(3.0) and tuple(camera.center[-2:]) == pytest.approx((10.0, 12.0))
    assert [layer.name for layer in viewer.layers] == names
    assert w.compare_button.text == "Compare stages"

    w.compare_button.native.click()
    viewer.layers.remove("cells [N2D smooth]")  # no empty tile is left where it was
    assert grid.enabled and tuple(grid.shape) == (1, 2)
    viewer.layers.remove("cells [N2D detail]")  # nothing left to compare: the view as it was
    assert not grid.enabled and other.visible and w.compare_button.text == "Compare stages"
    assert camera.zoom == pytest.approx(3.0)

    click(qtbot, w.denoise_button, w)
    w.compare_button.native.click()
    viewer.window.remove_dock_widget(w.native)  # the dock closed while comparing
    qtbot.waitUntil(lambda: not grid.enabled, timeout=5_000)
    assert other.visible and camera.zoom == pytest.approx(3.0)  # the view is given back


def test_a_rerun_refreshes_the_results_of_a_renamed_layer_and_keeps_how_they_are_shown(
        viewer, make_widget, qtbot):
    source = viewer.add_image(noisy_cells(32)[1], name="cells")
    w = make_widget()
    click(qtbot, w.denoise_button, w)
    detail = viewer.layers["cells [N2D detail]"]
    detail.colormap, detail.visible = "viridis", False
    source.name = "cells, day 2"
    w.layer.value = source
    click(qtbot, w.denoise_button, w)
    assert [layer.name for layer in viewer.layers] == [
        "cells, day 2", "cells, day 2 [N2D smooth]", "cells, day 2 [N2D detail]"]  # renamed, not doubled
    assert viewer.layers["cells, day 2 [N2D detail]"] is detail
    assert detail.colormap.name == "viridis" and detail.visible  # the user's colours; shown again


def test_a_stage_one_layer_of_an_earlier_run_does_not_outlive_it(viewer, make_widget, qtbot):
    viewer.add_image(noisy_cells(32)[1], name="cells")
    w = make_widget()
    w.add_stage1.value = True
    click(qtbot, w.denoise_button, w)
    assert "cells [N2D stage 1]" in viewer.layers
    w.add_stage1.value = False
    click(qtbot, w.denoise_button, w)
    assert [layer.name for layer in viewer.layers] == ["cells", "cells [N2D smooth]", "cells [N2D detail]"]


def test_the_loss_plot_receives_both_stages_and_the_guards_checks(viewer, make_widget, qtbot):
    viewer.add_image(noisy_cells(48)[1], name="cells")
    w = make_widget(steps=40)  # fast: stage 3 gets 27 steps, so the guard checks once, at 25
    click(qtbot, w.denoise_button, w)
    series = w.history.series
    assert [s for s, _ in series["stage 1"]][-1] == 40
    assert len(series["stage 3"]) >= 10 and all(v > 0 for _, v in series["stage 3"])
    assert [s for s, _ in series["held-out"]] == [40 + 25]
    assert "ran all its steps" in w.loss_note.value
    w.loss_plot.grab()  # draws without error


def test_the_loss_plot_is_redrawn_while_the_fit_runs(viewer, make_widget, qtbot):
    viewer.add_image(noisy_cells(48)[1], name="cells")
    w = make_widget(steps=50_000)
    painted = []  # the plot asked to redraw, with how many stage-1 points (the window is not shown)
    real_update = w.loss_plot.update
    w.loss_plot.update = lambda: painted.append(len(w.history.series["stage 1"])) or real_update()
    w.denoise_button.native.click()
    # points arrive and the plot is redrawn while the run goes on, not only at its end
    qtbot.waitUntil(lambda: bool(w.running and painted and painted[-1] >= 2), timeout=60_000)
    assert w.history.series["stage 1"][-1][0] < 50_000
    w.cancel_button.native.click()
    qtbot.waitUntil(lambda: not w.running, timeout=20_000)


def test_preview_of_a_rectangle_then_the_whole_image_with_the_same_settings(viewer, make_widget, qtbot):
    source = viewer.add_image(noisy_cells(64)[1], name="cells", scale=(0.5, 0.5), translate=(3, 4))
    w = make_widget(steps=7)
    # A rectangle over rows 10-42, columns 12-60 of the image (world = 0.5 * pixels + offset).
    shapes = viewer.add_shapes([[[3 + 5, 4 + 6], [3 + 21, 4 + 30]]], shape_type="rectangle", name="region")
    assert w.region.value is shapes  # a new Shapes layer is taken as the preview region
    w.layer.value = source
    click(qtbot, w.preview_button, w)

    preview = viewer.layers[result_name(source, "preview")]
    assert [layer.name for layer in viewer.layers] == ["cells", "region", "cells [N2D preview]"]
    assert preview.data.shape == (32, 48)
    assert preview.contrast_limits == source.contrast_limits  # drawn as the image around it
    assert preview.colormap.name == source.colormap.name
    assert np.allclose(preview.translate, (3 + 0.5 * 10, 4 + 0.5 * 12)) and np.allclose(preview.scale, 0.5)
    assert "Denoise runs the whole image with these settings" in w.status.value
    assert w.noise.value.startswith("preview: the region is too small")  # 32x48: too few pixels to tell
    settings = preview.metadata["noise2detail"]["settings"]
    assert settings["steps"] == 7

    click(qtbot, w.denoise_button, w)
    detail = viewer.layers["cells [N2D detail]"]
    assert detail.data.shape == (64, 64)
    assert detail.metadata["noise2detail"]["settings"] == settings
    assert result_name(source, "preview") not in viewer.layers  # the preview was temporary


def test_preview_of_the_current_view_on_the_current_plane(viewer, make_widget, qtbot):
    stack = np.stack([noisy_cells(32, seed=s)[1] for s in range(3)])
    source = viewer.add_image(stack, name="z", scale=(2.0, 1.0, 1.0))
    viewer.dims.set_point(0, 2 * 2.0)  # plane 2
    w = make_widget()
    assert w.region.value is None  # "current view"
    click(qtbot, w.preview_button, w)
    preview = viewer.layers["z [N2D preview]"]
    assert preview.data.shape[0] == 1 and preview.data.shape[1:] == (32, 32)
    assert preview.translate[0] == pytest.approx(4.0)  # over plane 2 only
    assert preview.metadata["noise2detail"]["region"]["offset"][0] == 2
    assert source.data.shape == (3, 32, 32)


def test_a_tiny_region_is_refused_with_the_reason(viewer, make_widget, qtbot):
    viewer.add_image(noisy_cells(64)[1], name="cells")
    w = make_widget()
    viewer.add_shapes([[[10, 10], [14, 30]]], shape_type="rectangle", name="thin")
    assert w.preview() is None
    assert "4x20 pixels" in w.status.value and "at least 16x16" in w.status.value
    assert [layer.name for layer in viewer.layers] == ["cells", "thin"]
    viewer.layers["thin"].data = [np.array([[100, 100], [140, 130]])]  # beside the image
    assert w.preview() is None and "lies outside the image" in w.status.value


def test_without_an_image_layer_the_status_says_why_nothing_can_run(viewer, make_widget):
    from napari_noise2detail._napari.widget import NO_IMAGE

    viewer.add_labels(np.zeros((16, 16), np.int32), name="cells")
    w = make_widget()
    assert not w.denoise_button.enabled and w.status.value == NO_IMAGE
    viewer.add_image(noisy_cells(16)[1], name="image")
    assert w.denoise_button.enabled and w.status.value == "Ready"


def test_the_current_view_of_a_pyramid_is_the_part_the_canvas_shows(viewer, qtbot):
    from napari_noise2detail._napari.compare import camera_of
    from napari_noise2detail._napari.preview import view_region

    image = noisy_cells(96)[1]
    plain = viewer.add_image(image, name="plain")
    pyramid = viewer.add_image([image, image[::2, ::2]], multiscale=True, name="pyramid")
    viewer.window._qt_window.show()
    camera = camera_of(viewer)
    camera.zoom, camera.center = camera.zoom * 4, (0.0, 30.0, 60.0)
    qtbot.waitUntil(lambda: plain.corner_pixels[1, 0] - plain.corner_pixels[0, 0] < 90, timeout=WAIT)
    # napari gives a pyramid's corner pixels at the level drawn, widened to whole chunks
    seen, expected = view_region(viewer, pyramid), view_region(viewer, plain)
    assert seen.shape[0] < 90 and seen.rows.start > 0  # a part, not the whole plane
    for ours, truth in ((seen.rows, expected.rows), (seen.cols, expected.cols)):
        assert abs(ours.start - truth.start) <= 1 and abs(ours.stop - truth.stop) <= 1
    top, left = plain.corner_pixels[0]
    assert abs(expected.rows.start - top) <= 1 and abs(expected.cols.start - left) <= 1  # as napari draws it


def test_compare_fits_the_view_to_the_compared_layers_only(viewer):
    from napari_noise2detail._napari.compare import Comparison, camera_of

    small = [viewer.add_image(noisy_cells(32)[1], name=name, translate=(100, 200)) for name in ("a", "a [N2D detail]")]
    viewer.add_image(np.zeros((600, 900), np.float32), name="big")  # hidden while comparing
    Comparison(viewer, small)
    centre = camera_of(viewer).center[-2:]
    assert centre == pytest.approx((100 + 15.5, 200 + 15.5), abs=1.0)  # the 32x32 layers' middle

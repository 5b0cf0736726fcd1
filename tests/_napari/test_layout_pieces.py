"""The pieces that keep the docks readable, on their own: whole lines with the last elided, and
compare-mode labels that fit their tiles."""

from napari_noise2detail._napari.compare import LARGEST, SMALLEST, label_position, label_size
from napari_noise2detail._napari.steady import wrap_lines


def test_text_is_broken_into_whole_lines_and_what_does_not_fit_ends_in_an_ellipsis():
    width = len  # one unit per character
    assert wrap_lines("Done in 12 s", 20, 2, width) == ["Done in 12 s"]
    assert wrap_lines("aaa bbb ccc ddd", 7, 2, width) == ["aaa bbb", "ccc ddd"]
    lines = wrap_lines("the noise grows with the signal and the camera adds an offset", 16, 2, width)
    assert len(lines) == 2 and lines[-1].endswith("\u2026") and all(len(line) <= 16 for line in lines)
    # A path has no spaces: it is cut inside, never shown wider than the label.
    lines = wrap_lines("/data/plate1/denoised/well_B3_field_12_n2d_detail.ome.zarr", 20, 2, width)
    assert lines[0] == "/data/plate1/denoise" and lines[1].endswith("\u2026") and len(lines[1]) <= 20
    assert wrap_lines("", 10, 2, width) == []


def test_compare_labels_shrink_to_fit_their_tile_within_readable_sizes():
    names = ["noisy nuclei", "noisy nuclei [N2D smooth]", "noisy nuclei [N2D detail]"]
    assert label_size(names, 800) == LARGEST
    size = label_size(names, 227)  # three tiles across a 680-pixel canvas
    assert SMALLEST <= size < LARGEST
    assert label_size(["x" * 200], 100) == SMALLEST
    # a name too long even then: the label keeps its end, the stage, where the tile cuts it
    assert label_position(names, 227) == "top_left"
    long = ["2024-05-01_HeLa_H2B-GFP_confocal_63x_zstack_pos03_ch1 [N2D smooth]"]
    assert label_position(long, 250) == "top_right"


def test_the_loss_history_marks_where_the_guard_stopped_stage_3(qtbot):
    from napari_noise2detail._napari.loss_plot import LossHistory, LossPlot
    from napari_noise2detail.engine import Progress
    from napari_noise2detail.engine.results import HeldOut

    history = LossHistory()
    plot = LossPlot(history)
    qtbot.addWidget(plot)
    assert not history.add(Progress(0, 1, 2, 1, 1, None, 0.5))  # stage 2 has no loss
    for step in (10, 20):
        assert history.add(Progress(0, 1, 1, step, 20, 0.1 / step, step / 60))
    history.add(Progress(0, 1, 3, 25, 40, 0.01, 0.8, HeldOut(25, 0.02, False)))
    assert "ran all its steps" in history.describe()
    # stopped at its second check: the run reports the stage's last step, the check's own step
    history.add(Progress(0, 1, 3, 40, 40, 0.009, 1.0, HeldOut(50, 0.03, True)))
    assert history.series["held-out"] == [(45, 0.02), (70, 0.03)]
    assert history.stopped_at == 70 and "stopped stage 3 at step 50" in history.describe()
    plot.resize(300, 130)
    plot.grab()  # draws the stop line without error
    history.add(Progress(1, 2, 1, 10, 20, 0.2, 0.1))  # the next plane of a stack starts afresh
    assert history.stopped_at is None and history.title == "plane 2/2" and len(history.series["stage 1"]) == 1


def test_the_activity_levels_nest_the_plane_under_the_run_and_the_stage_under_the_plane():
    from napari_noise2detail._napari.runs import Step
    from napari_noise2detail._napari.widget import _levels
    from napari_noise2detail.engine import Progress

    def texts(phase, event):
        fraction, levels = _levels(Step(phase, event, 0.4))
        assert fraction == 0.4
        return [(level.text, level.done, level.total) for level in levels]

    plane_by_plane = Progress(2, 5, 3, 40, 800, 0.01, 0.4)
    assert texts("denoising", plane_by_plane) == [("plane 3/5", 2, 5), ("stage 3/3 (detail recovery)", 40, 800)]
    assert texts("denoising", Progress(0, 1, 1, 10, 1200, 0.1, 0.1)) == [("stage 1/3 (partial denoising)", 10, 1200)]
    fitting_once = texts("fitting", Progress(0, 60, 1, 10, 1200, 0.1, 0.1, fitted_on=5))
    assert fitting_once[0][0] == "fitting once on 5 planes" and fitting_once[1][0].startswith("stage 1/3")
    assert texts("applying", Progress(6, 60, 0, 7, 60, None, 0.5)) == [("applying the model: plane 7/60", 7, 60)]
    from napari_noise2detail.engine.stack import FITTED_ALONE

    alone = texts(FITTED_ALONE, Progress(6, 60, 1, 40, 100, 0.1, 0.5))  # a plane the model does not cover
    assert alone == [("plane 7/60, fitted on its own", 6, 60), ("stage 1/3 (partial denoising)", 40, 100)]

"""The "Batch denoise..." widget, opened from the plugin menu and driven by clicks."""


import numpy as np
import pytest
import tifffile

from conftest import make_folder, snapshot as digests
from napari_noise2detail._napari.batch_widget import BatchWidget
from napari_noise2detail.io import read_image

WAIT = 120_000  # ms; generous for a loaded 2-core machine
TINY = {"steps": 5, "width": 8}


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def open_from_menu(viewer, settings=TINY):
    """The widget as the Plugins menu opens it, with a tiny fitting budget."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-noise2detail", "Batch denoise...")
    widget.settings = dict(settings)
    widget.device = "cpu"
    return widget


def open_on_folder(viewer, tmp_path, settings=TINY):
    """The widget from the menu, set to denoise a new folder of test images into tmp_path/out."""
    make_folder(tmp_path / "in")
    widget = open_from_menu(viewer, settings)
    widget.source.value = "folder"
    widget.input_folder.value = tmp_path / "in"
    widget.output_folder.value = tmp_path / "out"
    return widget


def run_and_wait(qtbot, widget):
    widget.run_button.native.click()
    assert widget.running
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT)
    return widget.last_summary


def test_a_folder_batch_from_the_menu(viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # the summary writes the home folder as ~
    widget = open_on_folder(viewer, tmp_path)
    before = digests(tmp_path / "in")
    widget.save_smooth.value = True

    summary = run_and_wait(qtbot, widget)
    assert [r.name for r in summary.done] == ["a.tif", "b.tif"]
    assert sorted(r.name for r in summary.failed) == ["corrupt.tif", "tiny.tif"]
    text = widget.summary.value
    assert "2 denoised" in text and "2 failed" in text and "Outputs are in ~/out." in text
    assert "corrupt.tif: cannot read" in text and "tiny.tif: the image is 4x4" in text
    assert not widget.summary.native.isHidden() and widget.progress.value == widget.progress.max
    assert widget.run_button.enabled and not widget.cancel_button.enabled

    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "a_n2d_detail.tif", "a_n2d_smooth.tif", "b_n2d_detail.tif", "b_n2d_smooth.tif"]
    a, meta_a = read_image(out / "a_n2d_detail.tif")
    assert a.shape == (24, 32) and a.dtype == np.float32
    assert meta_a.pixel_size == pytest.approx((0.25, 0.25)) and meta_a.unit == "µm"
    b, meta_b = read_image(out / "b_n2d_smooth.tif")
    assert b.shape == (2, 16, 16) and meta_b.axes == "ZYX" and meta_b.z_spacing == pytest.approx(3.0)
    assert digests(tmp_path / "in") == before

    # Again: everything done is skipped. With "overwrite": redone.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    summary = run_and_wait(qtbot, widget)
    assert len(summary.skipped) == 2 and len(summary.failed) == 2 and not summary.done
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    widget.overwrite.value = True
    summary = run_and_wait(qtbot, widget)
    assert len(summary.done) == 2
    assert all((out / name).stat().st_mtime_ns != stamp for name, stamp in stamps.items())
    assert digests(tmp_path / "in") == before

    # The folders come back next time; "overwrite" does not.
    again = BatchWidget(viewer)
    assert again.source.value == "folder" and again.output_folder.value == out
    assert again.save_smooth.value and not again.overwrite.value

    # No output folder: beside the inputs, and the summary says so in words
    widget.output_folder.line_edit.value = ""  # cleared
    run_and_wait(qtbot, widget)
    assert widget.summary.value.endswith("Outputs are beside the inputs.")


def test_selected_layers_from_the_menu(viewer, qtbot, tmp_path):
    rng = np.random.default_rng(1)
    viewer.add_image((rng.random((20, 24)) * 4000).astype(np.uint16), name="well A1: DAPI",
                     scale=(0.5, 0.5), units=("um", "um"))
    viewer.add_image(rng.random((16, 16)).astype(np.float32), name="not selected")
    viewer.add_image(rng.random((3, 16, 16)).astype(np.float32), name="stack",
                     scale=(2.0, 0.1, 0.1), units=("um", "um", "um"), axis_labels=("z", "y", "x"))
    viewer.layers.selection.clear()
    viewer.layers.selection.update({viewer.layers["well A1: DAPI"], viewer.layers["stack"]})
    widget = open_from_menu(viewer)
    widget.output_folder.value = tmp_path
    widget.dtype.value = "input"

    summary = run_and_wait(qtbot, widget)
    assert summary.ok and [r.name for r in summary.done] == ["well A1: DAPI", "stack"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tif") == [
        "stack_n2d_detail.tif", "well A1_DAPI_n2d_detail.tif"]
    well, meta = read_image(tmp_path / "well A1_DAPI_n2d_detail.tif")
    assert well.dtype == np.uint16 and well.shape == (20, 24)
    assert meta.pixel_size == pytest.approx((0.5, 0.5)) and meta.unit == "µm"
    stack, meta = read_image(tmp_path / "stack_n2d_detail.tif")
    assert stack.dtype == np.float32 and meta.axes == "ZYX" and meta.z_spacing == pytest.approx(2.0)
    assert meta.pixel_size == pytest.approx((0.1, 0.1))


def test_a_lazy_layer_streams_into_ome_zarr(viewer, qtbot, tmp_path):
    from conftest import OnePlaneAtATime
    from napari_noise2detail.io.zarr import read_zarr

    stack = OnePlaneAtATime((np.random.default_rng(2).random((3, 16, 16)) * 1000).astype(np.uint16))
    viewer.add_image(stack, name="big", scale=(2.0, 0.1, 0.1), units=("um", "um", "um"), axis_labels=("z", "y", "x"))
    viewer.layers.selection.clear()
    viewer.layers.selection.add(viewer.layers["big"])
    widget = open_from_menu(viewer)
    widget.output_folder.value = tmp_path

    summary = run_and_wait(qtbot, widget)  # the layer, if read whole, fails the batch
    assert summary.ok, summary.report()
    result = read_zarr(tmp_path / "big_n2d_detail.ome.zarr")
    assert result.data.shape == (3, 16, 16) and result.scale == [2.0, 0.1, 0.1]


def test_without_a_choice_nothing_starts(viewer, qtbot, tmp_path):
    widget = open_from_menu(viewer)
    widget.run_button.native.click()  # no layer selected, no output folder
    assert not widget.running and "Not started" in widget.status.value
    widget.source.value = "folder"
    widget.input_folder.value = tmp_path / "missing"
    widget.run_button.native.click()
    assert not widget.running and "folder" in widget.status.value


def test_cancel_midway_leaves_only_complete_outputs(viewer, qtbot, tmp_path):
    widget = open_on_folder(viewer, tmp_path, {"steps": 400, "width": 8, "report_every": 5})
    widget.run_button.native.click()
    # Cancel while the second image (b.tif) is being fitted.
    qtbot.waitUntil(lambda: widget.status.value.startswith("2/4 b.tif: plane 1/2"), timeout=WAIT)
    settings = (widget.source, widget.input_folder, widget.output_folder, widget.model, widget.preset,
                widget.save_smooth, widget.overwrite, widget.dtype, widget.scheduler)
    assert not any(control.enabled for control in settings)  # the run has taken them
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT)
    assert all(control.enabled for control in settings)

    summary = widget.last_summary
    assert summary.cancelled and [r.name for r in summary.done] == ["a.tif"]
    assert "Batch cancelled" in widget.summary.value and "3 not processed" in widget.summary.value
    out = tmp_path / "out"
    assert [p.name for p in out.iterdir()] == ["a_n2d_detail.tif"]  # no temporary either
    assert tifffile.imread(out / "a_n2d_detail.tif").shape == (24, 32)


def test_closing_the_viewer_mid_batch_stops_it(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget = open_on_folder(viewer, tmp_path, {"steps": 50_000, "width": 8})
    widget.run_button.native.click()
    worker = widget._runner.worker
    qtbot.waitUntil(lambda: worker.is_running, timeout=WAIT)
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []  # nothing half-written


def test_a_saved_model_is_applied_to_every_image_without_fitting(viewer, qtbot, tmp_path, monkeypatch):
    from napari_noise2detail import batch as batch_module
    from napari_noise2detail import fit
    from napari_noise2detail.engine import stack as stack_module

    make_folder(tmp_path / "in")
    # fitted on b ([0, 1]): a ([0, 1000]) is brighter, which a model takes in, not darker
    model = fit(tifffile.imread(tmp_path / "in" / "b.tif")[0], device="cpu", **TINY)
    model.save(tmp_path / "a.n2d")

    def refuse(*args, **kwargs):
        raise AssertionError("fitted, but a saved model was to be applied")

    monkeypatch.setattr(batch_module, "fit_iter", refuse)  # a fit once on a cluster's worker
    monkeypatch.setattr(stack_module, "fit_iter", refuse)
    monkeypatch.setattr(stack_module, "denoise_iter", refuse)
    widget = open_from_menu(viewer)
    assert widget.preset.enabled
    widget.source.value = "folder"
    widget.input_folder.value = tmp_path / "in"
    widget.output_folder.value = tmp_path / "out"
    widget.model.value = tmp_path / "a.n2d"
    assert not widget.preset.enabled  # the model brings its own settings

    summary = run_and_wait(qtbot, widget)
    assert [r.name for r in summary.done] == ["a.tif", "b.tif"]
    assert tifffile.imread(tmp_path / "out" / "b_n2d_detail.tif").shape == (2, 16, 16)
    assert BatchWidget(viewer).model.value == tmp_path / "a.n2d"  # remembered
    assert not widget.summary.native.isHidden()
    (tmp_path / "junk.n2d").write_bytes(b"not a model")
    widget.model.value = tmp_path / "junk.n2d"
    widget.run_button.native.click()
    assert "Not started" in widget.status.value
    assert widget.summary.native.isHidden()  # the last batch's summary is not taken for this attempt's


def test_a_file_that_is_not_a_model_is_refused_before_anything_runs(viewer, qtbot, tmp_path):
    make_folder(tmp_path / "in")
    (tmp_path / "junk.n2d").write_bytes(b"not a model")
    widget = open_from_menu(viewer)
    widget.source.value = "folder"
    widget.input_folder.value = tmp_path / "in"
    widget.model.value = tmp_path / "junk.n2d"
    widget.run_button.native.click()
    assert not widget.running and "not a readable Noise2Detail model" in widget.status.value


@pytest.fixture
def scheduler():
    """The address of a real Dask scheduler with one worker (a thread of this process, which
    starts in a second where a worker process takes many)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None, silence_logs=40) as cluster:
        yield cluster.scheduler_address


def test_a_folder_batch_sent_to_a_dask_scheduler(viewer, qtbot, tmp_path, scheduler):
    widget = open_on_folder(viewer, tmp_path)
    before = digests(tmp_path / "in")
    widget.scheduler.value = scheduler
    statuses = []
    widget.status.changed.connect(statuses.append)

    widget.run_button.native.click()
    assert widget.running and not widget.scheduler.enabled
    assert widget.status.value == f"Connecting to the Dask scheduler at {scheduler}..."
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT)

    summary = widget.last_summary
    assert sorted(r.name for r in summary.done) == ["a.tif", "b.tif"]
    assert sorted(r.name for r in summary.failed) == ["corrupt.tif", "tiny.tif"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_n2d_detail.tif", "b_n2d_detail.tif"]
    assert tifffile.imread(tmp_path / "out" / "b_n2d_detail.tif").shape == (2, 16, 16)
    # Progress as each file ends, then the summary with the failure list.
    assert any("a.tif: done" in s for s in statuses) and any("corrupt.tif: failed" in s for s in statuses)
    text = widget.summary.value
    assert text.startswith("Batch finished: 2 denoised, 0 skipped (outputs exist), 2 failed")
    assert "corrupt.tif: cannot read" in text and "tiny.tif: the image is 4x4" in text
    assert widget.progress.value == widget.progress.max and widget.run_button.enabled
    assert widget.scheduler.enabled
    assert digests(tmp_path / "in") == before
    assert BatchWidget(viewer).scheduler.value == scheduler  # remembered


def test_an_unreachable_scheduler_is_reported_and_nothing_freezes(viewer, qtbot, tmp_path):
    pytest.importorskip("distributed")
    widget = open_on_folder(viewer, tmp_path)
    widget.scheduler.value = "tcp://127.0.0.1:9"  # nothing listens there
    widget.connect_timeout = 2.0

    widget.run_button.native.click()
    assert widget.running  # the click came back at once: connecting is the worker's business
    qtbot.waitUntil(lambda: not widget.running, timeout=WAIT)
    assert widget.status.value.startswith("Not started: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert widget.last_summary is None and widget.progress.value == 0
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_scheduler_batch_cancelled_from_the_dock(viewer, qtbot, tmp_path, scheduler):
    from distributed import Client

    widget = open_on_folder(viewer, tmp_path, {"steps": 3000, "width": 8})
    widget.scheduler.value = scheduler
    statuses = []
    widget.status.changed.connect(statuses.append)
    widget.run_button.native.click()
    # cancel once the cluster reports an image running (the first heartbeat after connecting)
    qtbot.waitUntil(lambda: widget.status.value != f"Connecting to the Dask scheduler at {scheduler}...",
                    timeout=WAIT)
    widget.cancel_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=30_000)

    summary = widget.last_summary
    assert summary.cancelled and len(summary.done) < 2
    assert "Batch cancelled" in widget.summary.value
    assert widget.run_button.enabled and widget.scheduler.enabled and not widget.cancel_button.enabled
    with Client(scheduler, timeout=10) as client:  # the waiting tasks are gone from the cluster
        qtbot.waitUntil(lambda: not any(k.startswith("n2d-") for k in client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.tasks))), timeout=WAIT)
    out = tmp_path / "out"
    for path in (out.iterdir() if out.exists() else []):  # a task already running may end: whole files only
        assert path.name.endswith("_n2d_detail.tif") and tifffile.imread(path).size


def test_the_fitting_steps_follow_the_preset_reach_every_image_and_come_back(viewer, tmp_path):
    from napari_noise2detail import fit
    from napari_noise2detail.engine import PRESETS

    widget = open_from_menu(viewer, settings={})
    assert widget.steps.value == PRESETS["fast"].steps
    widget.preset.value = "paper"
    assert widget.steps.value == PRESETS["paper"].steps
    widget.steps.value = 40  # a quick trial batch
    assert widget._options().settings == {"steps": 40}
    widget._save_choices()
    assert BatchWidget(viewer).steps.value == 40 and BatchWidget(viewer).preset.value == "paper"
    fit(np.random.default_rng(0).random((16, 16)), device="cpu", steps=3).save(tmp_path / "m.n2d")
    widget.model.value = tmp_path / "m.n2d"  # a saved model brings its own settings
    assert not widget.steps.enabled and widget._options().settings == {}

    from napari_noise2detail._napari import remembered

    remembered.save("batch", {"preset": "paper"})  # saved before the steps were: the preset's
    assert BatchWidget(viewer).steps.value == PRESETS["paper"].steps

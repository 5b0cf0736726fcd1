"""The Qt-free batch runner: what is done, skipped and failed, what is written, and how."""


import numpy as np
import pytest
import tifffile

from conftest import OnePlaneAtATime, drain, make_folder, snapshot, with_a_blank_frame
from napari_noise2detail.batch import (
    ArrayItem,
    BatchOptions,
    collect_inputs,
    output_stem,
    run_batch,
    safe_name,
    to_dtype,
)
from napari_noise2detail.engine import stack as stack_module
from napari_noise2detail.engine.presets import resolve_settings
from napari_noise2detail.io import ImageMeta, meta_from_scale, read_image, write_image

TINY = {"steps": 5, "width": 8}  # a few fitting steps: fast, and enough to exercise everything
OPTIONS = BatchOptions(device="cpu", settings=TINY)




def test_a_folder_batch_denoises_the_good_reports_the_bad_and_never_touches_inputs(tmp_path):
    before = make_folder(tmp_path / "in")
    events, summary = drain(run_batch(collect_inputs([tmp_path / "in"]), tmp_path / "out", OPTIONS))

    assert [r.name for r in summary.done] == ["a.tif", "b.tif"]
    failed = {r.name: r.reason for r in summary.failed}
    assert failed["corrupt.tif"].startswith("cannot read")
    assert "4x4" in failed["tiny.tif"]
    assert not summary.ok and summary.total == 4
    report = summary.report()
    assert "2 denoised" in report and "2 failed" in report and "corrupt.tif" in report

    # Events: every item starts and ends, in order, with progress in between.
    assert [e.result.name for e in events if e.result] == ["a.tif", "b.tif", "corrupt.tif", "tiny.tif"]
    assert any(e.progress is not None for e in events)
    assert all(e.total == 4 for e in events)
    assert [e.fraction for e in events] == sorted(e.fraction for e in events)
    assert events[-1].fraction == 1.0

    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["a_n2d_detail.tif", "b_n2d_detail.tif"]
    a, meta_a = read_image(out / "a_n2d_detail.tif")
    assert a.shape == (24, 32) and a.dtype == np.float32
    assert meta_a.pixel_size == pytest.approx((0.25, 0.25)) and meta_a.unit == "µm"
    b, meta_b = read_image(out / "b_n2d_detail.tif")
    assert b.shape == (2, 16, 16) and meta_b.axes == "ZYX"
    assert meta_b.pixel_size == pytest.approx((0.5, 0.5)) and meta_b.z_spacing == pytest.approx(3.0)
    assert snapshot(tmp_path / "in") == before


@pytest.mark.parametrize("writer", ["ImageJ", "OME-TIFF"])
def test_a_time_lapse_keeps_its_frame_interval(tmp_path, writer):
    frames = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    if writer == "ImageJ":
        tifffile.imwrite(tmp_path / "movie.tif", frames, imagej=True,
                         metadata={"axes": "TYX", "finterval": 2.5, "tunit": "min"})
    else:
        tifffile.imwrite(tmp_path / "movie.tif", frames, ome=True,
                         metadata={"axes": "TYX", "TimeIncrement": 0.5, "TimeIncrementUnit": "ms"})
    expected = (2.5, "min") if writer == "ImageJ" else (0.5, "ms")
    _, summary = drain(run_batch([tmp_path / "movie.tif"], tmp_path / "out", OPTIONS))
    assert summary.ok, summary.report()
    detail, meta = read_image(tmp_path / "out" / "movie_n2d_detail.tif")
    assert (meta.axes, meta.frame_interval, meta.time_unit) == ("TYX", *expected)
    with tifffile.TiffFile(tmp_path / "out" / "movie_n2d_detail.tif") as tif:
        assert tif.imagej_metadata["finterval"] == expected[0]  # what Fiji reads
    # float64, which ImageJ cannot hold: tifffile's own description carries it
    write_image(tmp_path / "f64.tif", detail.astype(np.float64), meta)
    assert read_image(tmp_path / "f64.tif")[1] == meta


def test_a_frame_interval_in_a_unit_not_known_is_not_taken_for_seconds(tmp_path):
    frames = np.zeros((3, 16, 16), np.float32)
    tifffile.imwrite(tmp_path / "us.tif", frames, imagej=True, metadata={"axes": "TYX", "finterval": 5, "tunit": "usec"})
    tifffile.imwrite(tmp_path / "odd.tif", frames, imagej=True,
                     metadata={"axes": "TYX", "finterval": 5, "tunit": "fortnight"})
    assert read_image(tmp_path / "us.tif")[1].time_unit == "µs"
    assert read_image(tmp_path / "odd.tif")[1].frame_interval is None
    write_image(tmp_path / "out.tif", frames, read_image(tmp_path / "us.tif")[1])
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:  # ImageJ's ASCII spelling
        assert (tif.imagej_metadata["finterval"], tif.imagej_metadata["tunit"]) == (5, "us")
    unknown = meta_from_scale((5.0, 1.0, 1.0), ("fortnight", "pixel", "pixel"), ("t", "y", "x"))
    assert unknown.frame_interval is None


def test_a_rerun_skips_what_is_done_and_overwrite_redoes_it(tmp_path):
    make_folder(tmp_path)
    good = [tmp_path / "a.tif", tmp_path / "b.tif"]
    options = BatchOptions(device="cpu", settings=TINY, save_smooth=True)
    _, first = drain(run_batch(good, tmp_path / "out", options))
    assert len(first.done) == 2 and first.ok
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    assert len(stamps) == 4  # detail and smooth of each

    _, again = drain(run_batch(good, tmp_path / "out", options))
    assert [r.status for r in again.results] == ["skipped", "skipped"] and again.ok
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == stamps

    # A missing smooth output is made again; the detail output that exists is left alone.
    (tmp_path / "out" / "a_n2d_smooth.tif").unlink()
    _, resumed = drain(run_batch(good, tmp_path / "out", options))
    assert [r.status for r in resumed.results] == ["done", "skipped"]
    assert resumed.done[0].outputs == (tmp_path / "out" / "a_n2d_smooth.tif",)

    _, redone = drain(run_batch(good, tmp_path / "out", BatchOptions(
        device="cpu", settings=TINY, save_smooth=True, overwrite=True)))
    assert len(redone.done) == 2
    assert all((tmp_path / "out" / n).stat().st_mtime_ns != t for n, t in stamps.items()
               if n != "a_n2d_smooth.tif")


def test_writing_beside_the_inputs_never_takes_or_overwrites_an_input(tmp_path):
    make_folder(tmp_path)
    # A file that looks like an output is an input here, named explicitly: a.tif's output
    # would land on it, so a.tif is refused rather than overwriting it.
    tifffile.imwrite(tmp_path / "c_n2d_detail.tif", np.zeros((16, 16), np.float32))
    tifffile.imwrite(tmp_path / "c.tif", np.random.default_rng(2).random((16, 16)).astype(np.float32))
    before = snapshot(tmp_path)
    _, summary = drain(run_batch([tmp_path / "c.tif", tmp_path / "c_n2d_detail.tif"], None, OPTIONS))
    assert summary.failed[0].name == "c.tif" and "overwrite an input" in summary.failed[0].reason
    assert summary.done[0].outputs == (tmp_path / "c_n2d_detail_n2d_detail.tif",)
    assert all(snapshot(tmp_path)[name] == digest for name, digest in before.items())

    # Scanning the folder again does not take earlier outputs for inputs.
    scanned = [p.name for p in collect_inputs([tmp_path])]
    assert scanned == ["a.tif", "b.tif", "c.tif", "corrupt.tif", "tiny.tif"]


def test_an_input_beside_which_nothing_can_be_written_fails_before_it_is_denoised(tmp_path, monkeypatch):
    import napari_noise2detail.batch as batch

    make_folder(tmp_path / "locked")
    # as root, permissions do not stop writing: a read-only mount is what such a folder would be
    real = batch.write_problem
    monkeypatch.setattr(batch, "write_problem",
                        lambda folder: "cannot write in it: Read-only file system" if "locked" in str(folder)
                        else real(folder))
    fitted = []
    monkeypatch.setattr(stack_module, "denoise_iter", lambda *a, **k: fitted.append(1) or pytest.fail("denoised"))
    _, summary = drain(run_batch([tmp_path / "locked" / "a.tif"], None, OPTIONS))
    assert [r.reason for r in summary.failed] == ["cannot write in it: Read-only file system"]
    assert not fitted


def test_empty_nan_and_unreadable_files_fail_with_their_reason_and_the_rest_goes_on(tmp_path):
    (tmp_path / "empty.tif").write_bytes(b"")
    nan = np.full((16, 16), np.nan, np.float32)
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    with pytest.warns(UserWarning, match="zero-size"):
        tifffile.imwrite(tmp_path / "zero.tif", np.zeros((0, 16), np.float32))
    (tmp_path / "notes.nd2").write_bytes(b"not really")
    tifffile.imwrite(tmp_path / "good.tif", np.random.default_rng(3).random((16, 16)).astype(np.float32))
    # a stack cut short (a copy interrupted): tifffile reads its first plane and says little
    tifffile.imwrite(tmp_path / "short.tif", np.ones((6, 32, 32), np.uint16), imagej=True, metadata={"axes": "ZYX"})
    (tmp_path / "short.tif").write_bytes((tmp_path / "short.tif").read_bytes()[:8000])
    # and so were OME-TIFFs and plain ones, of which nothing says how many planes there were
    for name, kwargs in [("cut.ome.tif", {"ome": True, "metadata": {"axes": "ZYX"}}), ("plain.tif", {"metadata": None})]:
        tifffile.imwrite(tmp_path / name, np.ones((6, 32, 32), np.uint16), **kwargs)
        (tmp_path / name).write_bytes((tmp_path / name).read_bytes()[:8000])
    inputs = collect_inputs([tmp_path])
    assert [p.name for p in inputs] == ["cut.ome.tif", "empty.tif", "good.tif", "nan.tif", "notes.nd2", "plain.tif",
                                        "short.tif", "zero.tif"]
    _, summary = drain(run_batch(inputs, tmp_path / "out", OPTIONS))
    reasons = {r.name: r.reason for r in summary.failed}
    assert set(reasons) == {"cut.ome.tif", "empty.tif", "nan.tif", "notes.nd2", "plain.tif", "short.tif", "zero.tif"}
    assert "truncated or damaged: its ImageJ header counts 6 planes, 1 can be read" in reasons["short.tif"]
    for name in ("plain.tif", "cut.ome.tif"):
        assert "truncated or damaged: a page lies past its end" in reasons[name]
    assert "NaN" in reasons["nan.tif"]
    assert "empty" in reasons["empty.tif"] and "empty" in reasons["zero.tif"]
    assert "reader" in reasons["notes.nd2"]
    assert [r.name for r in summary.done] == ["good.tif"]


def test_closing_the_batch_midway_leaves_no_incomplete_output(tmp_path):
    make_folder(tmp_path / "in")
    run = run_batch([tmp_path / "in" / "a.tif", tmp_path / "in" / "b.tif"], tmp_path / "out",
                    BatchOptions(device="cpu", settings={"steps": 10, "width": 8, "report_every": 2}))
    for event in run:
        if event.index == 1 and event.progress is not None:
            break  # b.tif is being denoised
    run.close()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_n2d_detail.tif"]
    assert tifffile.imread(tmp_path / "out" / "a_n2d_detail.tif").shape == (24, 32)


def test_an_interrupted_write_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    make_folder(tmp_path / "in")
    real = tifffile.imwrite

    def crash(path, data, **kwargs):
        real(path, data, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(100)  # half-written...
        raise KeyboardInterrupt  # ...when the user presses Ctrl-C

    monkeypatch.setattr(tifffile, "imwrite", crash)
    with pytest.raises(KeyboardInterrupt):
        drain(run_batch([tmp_path / "in" / "a.tif"], tmp_path / "out", OPTIONS))
    assert not (tmp_path / "out").exists()  # nothing, not even the folder it made


def test_layers_in_memory_keep_their_name_pixel_size_and_dtype(tmp_path):
    rng = np.random.default_rng(4)
    data = (rng.random((16, 24)) * 200).astype(np.uint8)
    meta = meta_from_scale((0.1, 0.2), ("micrometer", "micrometer"))
    item = ArrayItem(name="cells/1: A?", data=data, meta=meta)
    options = BatchOptions(device="cpu", settings=TINY, dtype="input")
    _, summary = drain(run_batch([item], tmp_path, options))
    (path,) = summary.done[0].outputs
    assert path.name == "cells_1_A_n2d_detail.tif"
    out, out_meta = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (16, 24)
    assert out_meta.pixel_size == pytest.approx((0.1, 0.2)) and out_meta.unit == "µm"

    with pytest.raises(ValueError, match="output folder"):
        run_batch([item], None, options)
    # a time-lapse layer: its t scale, in napari's time unit, is the frame interval
    movie = meta_from_scale((5.0, 0.1, 0.1), ("second", "micrometer", "micrometer"), ("t", "y", "x"))
    assert (movie.axes, movie.frame_interval, movie.time_unit, movie.unit) == ("TYX", 5.0, "s", "µm")
    # napari's default labels: the axes are written as a plain stack's (z y x, t z y x), spacings too
    stack = meta_from_scale((2.0, 0.1, 0.1), ("micrometer",) * 3, ("-3", "-2", "-1"))
    assert (stack.axes, stack.z_spacing) == (None, 2.0)
    movie = meta_from_scale((5.0, 2.0, 0.1, 0.1), ("second",) + ("micrometer",) * 3, ("-4", "-3", "-2", "-1"))
    assert (movie.axes, movie.z_spacing, movie.frame_interval, movie.time_unit) == (None, 2.0, 5.0, "s")


def test_a_lazy_layer_is_read_a_plane_at_a_time_into_ome_zarr(tmp_path):
    from napari_noise2detail import fit
    from napari_noise2detail.io.zarr import read_zarr

    stack = (np.random.default_rng(5).random((3, 16, 20)) * 1000).astype(np.uint16)
    lazy = OnePlaneAtATime(stack)  # fails the test if read whole
    meta = meta_from_scale((2.0, 0.1, 0.1), ("micrometer",) * 3, ("z", "y", "x"))
    item = ArrayItem(name="big", data=lazy, meta=meta, translation=(4.0, 10.0, 5.0))
    _, summary = drain(run_batch([item], tmp_path, OPTIONS))
    (path,) = summary.done[0].outputs
    assert path.name == "big_n2d_detail.ome.zarr"
    detail = read_zarr(path)
    assert detail.scale == [2.0, 0.1, 0.1] and [a["name"] for a in detail.axes] == ["z", "y", "x"]
    assert detail.translation == [4.0, 10.0, 5.0]  # placed over the layer in a viewer
    expected = fit(stack, device="cpu", preset=resolve_settings("fast", **TINY)).apply(stack).detail
    assert np.array_equal(detail.data.compute(), expected)
    assert lazy.reads > 0


def test_a_lazy_layer_with_axes_out_of_ome_order_is_stored_in_it(tmp_path):
    from napari_noise2detail.io.zarr import read_zarr

    stack = np.random.default_rng(6).poisson(40, (8, 2, 16, 16)).astype(np.uint16)  # Z C Y X: fitted once both ways
    meta = meta_from_scale((2.0, 1.0, 0.1, 0.1), ("micrometer",) * 4, ("z", "c", "y", "x"))
    items = [ArrayItem(name="lazy", data=OnePlaneAtATime(stack), meta=meta),
             ArrayItem(name="here", data=stack, meta=meta)]
    _, summary = drain(run_batch(items, tmp_path, OPTIONS))
    assert summary.ok, summary.report()
    stored = read_zarr(tmp_path / "lazy_n2d_detail.ome.zarr")
    # named truly (c before z, as OME-Zarr wants), each spacing on its own axis
    assert [a["name"] for a in stored.axes] == ["c", "z", "y", "x"] and stored.scale == [1.0, 2.0, 0.1, 0.1]
    here, here_meta = read_image(tmp_path / "here_n2d_detail.tif")  # the same, in memory: ImageJ ZCYX
    assert here_meta.axes == "ZCYX" and np.array_equal(stored.data.compute(), here.transpose(1, 0, 2, 3))


def test_rgb_tiffs_are_recognised_and_stay_rgb(tmp_path):
    rgb = (np.random.default_rng(5).random((16, 16, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "colour.tif", rgb, photometric="rgb")
    _, summary = drain(run_batch([tmp_path / "colour.tif"], tmp_path / "out",
                                 BatchOptions(device="cpu", settings=TINY, dtype="input")))
    out, meta = read_image(summary.done[0].outputs[0])
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8 and meta.axes == "YXS"


def test_other_formats_are_read_through_napari_readers(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "photo.png", (np.random.default_rng(6).random((16, 20)) * 255).astype(np.uint8))
    _, summary = drain(run_batch(collect_inputs([tmp_path]), tmp_path / "out", OPTIONS))
    assert summary.ok
    assert tifffile.imread(tmp_path / "out" / "photo_n2d_detail.tif").shape == (16, 20)


def test_bad_options_are_refused_before_any_work(tmp_path):
    make_folder(tmp_path)
    for options, message in [
        (BatchOptions(preset="slow"), "unknown preset"),
        (BatchOptions(device="tpu"), "unknown device"),
        (BatchOptions(dtype="int8"), "output dtype"),
    ]:
        with pytest.raises(ValueError, match=message):
            run_batch([tmp_path / "a.tif"], tmp_path / "out", options)
    with pytest.raises(TypeError, match="unknown setting"):
        run_batch([tmp_path / "a.tif"], tmp_path / "out", BatchOptions(settings={"stepz": 3}))
    assert not (tmp_path / "out").exists()


def test_collect_inputs_expands_folders_and_globs_and_refuses_typos(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "a_n2d_detail.tif").write_bytes(b"an earlier output")
    (tmp_path / ".a_n2d_detail.tif.0123.partial").write_bytes(b"a killed write")
    (tmp_path / "notes.txt").write_text("not an image")
    names = lambda paths: [p.name for p in paths]  # noqa: E731
    assert names(collect_inputs([tmp_path])) == ["a.tif", "b.tif", "corrupt.tif", "tiny.tif"]
    assert names(collect_inputs([str(tmp_path / "*.tif")])) == ["a.tif", "b.tif", "corrupt.tif", "tiny.tif"]
    assert names(collect_inputs([tmp_path / "b.tif", tmp_path, tmp_path / "notes.txt"])) == [
        "b.tif", "a.tif", "corrupt.tif", "tiny.tif", "notes.txt"]
    with pytest.raises(FileNotFoundError, match="no such file"):
        collect_inputs([tmp_path / "typo.tif"])
    with pytest.raises(FileNotFoundError, match="no files match"):
        collect_inputs([str(tmp_path / "*.czi")])


def test_names_and_dtypes():
    assert output_stem("x/a.ome.tif") == "a" and output_stem("a.b.tiff") == "a.b"
    assert safe_name("../etc/passwd") == "etc_passwd"
    assert safe_name("zs [1]") == "zs_1" and safe_name("a: b") == "a_b"  # napari's second "zs"
    assert safe_name("  ") == "image" and safe_name("CON") == "_CON"
    assert to_dtype(np.array([-3.4, 2.5, 3.6, 300.0]), "uint8").tolist() == [0, 2, 4, 255]
    assert to_dtype(np.array([1.5], np.float32), "float32").dtype == np.float32


def test_plain_tiffs_keep_axes_and_pixel_size_too(tmp_path):
    data = np.zeros((3, 16, 16), np.float64)
    meta = ImageMeta(axes="QYX", pixel_size=(0.5, 0.25), unit="µm")
    _, back = read_image(write_image(tmp_path / "x.tif", data, meta))
    # (an axis the file cannot name is read back as a plain stack's, Z)
    assert back.axes == "ZYX" and back.pixel_size == pytest.approx((0.5, 0.25)) and back.unit == "µm"


def test_a_saved_model_is_applied_to_every_image_without_fitting(tmp_path, monkeypatch):
    import napari_noise2detail.batch as batch
    from napari_noise2detail import fit

    before = make_folder(tmp_path / "in")
    image = tifffile.imread(tmp_path / "in" / "a.tif")
    # fitted on b, in [0, 1]: a, in [0, 1000], is brighter, which a model takes in (the other
    # way round is refused: darker than all it saw)
    model_path = fit(tifffile.imread(tmp_path / "in" / "b.tif")[0], device="cpu", **TINY).save(tmp_path / "a.n2d")

    def no_fitting(*args, **kwargs):
        raise AssertionError("a saved model was given: nothing may be fitted")

    monkeypatch.setattr(stack_module, "denoise_iter", no_fitting)
    monkeypatch.setattr(stack_module, "fit_iter", no_fitting)
    options = BatchOptions(device="cpu", model=str(model_path), save_smooth=True)
    _events, summary = drain(run_batch(collect_inputs([tmp_path / "in"]), tmp_path / "out", options))
    assert {r.name for r in summary.done} == {"a.tif", "b.tif"}
    assert {r.name for r in summary.failed} == {"corrupt.tif", "tiny.tif"}
    from napari_noise2detail import load_model

    expected = load_model(model_path, device="cpu").apply(image)
    assert np.array_equal(tifffile.imread(tmp_path / "out" / "a_n2d_detail.tif"), expected.detail)
    assert snapshot(tmp_path / "in") == before


def test_a_bad_model_file_is_refused_before_any_work(tmp_path):
    make_folder(tmp_path / "in")
    (tmp_path / "bad.n2d").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable Noise2Detail model"):
        run_batch(collect_inputs([tmp_path / "in"]), tmp_path / "out", BatchOptions(model=tmp_path / "bad.n2d"))
    assert not (tmp_path / "out").exists()


def test_long_stacks_are_fitted_once(tmp_path, monkeypatch):
    import napari_noise2detail.batch as batch
    from napari_noise2detail.engine.model import FIT_ONCE_FROM

    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "long.tif", rng.random((FIT_ONCE_FROM, 16, 16)).astype(np.float32))
    tifffile.imwrite(tmp_path / "short.tif", rng.random((2, 16, 16)).astype(np.float32))
    calls = []
    for name in ("fit_iter", "denoise_iter"):
        real = getattr(stack_module, name)
        monkeypatch.setattr(stack_module, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    _events, summary = drain(run_batch([tmp_path / "long.tif", tmp_path / "short.tif"], tmp_path / "out", OPTIONS))
    assert summary.ok and calls == ["fit_iter", "denoise_iter"]
    assert tifffile.imread(tmp_path / "out" / "long_n2d_detail.tif").shape == (FIT_ONCE_FROM, 16, 16)


def test_a_plane_the_stacks_own_model_does_not_cover_is_fitted_on_its_own(tmp_path):
    """A blank frame in a long stack: the model fitted once on a few planes (not on it) would
    lift it to their background; it is fitted on its own, and the summary says so. A saved
    model refuses it, with the reason."""
    from napari_noise2detail import fit
    from napari_noise2detail.engine.model import FIT_ONCE_FROM, planes_to_fit

    assert 3 not in planes_to_fit(range(FIT_ONCE_FROM))
    tifffile.imwrite(tmp_path / "lapse.tif", with_a_blank_frame(FIT_ONCE_FROM, blank=3))
    _events, summary = drain(run_batch([tmp_path / "lapse.tif"], tmp_path / "out", OPTIONS))
    assert summary.ok, summary.report()
    (done,) = summary.done
    assert done.reason == ("plane 3 was fitted on its own: mostly darker than the planes the model was fitted on "
                           "(numbered from 0)")
    assert "Notes:\n  " in summary.report() and "plane 3 was fitted on its own" in summary.report()

    others = np.delete(tifffile.imread(tmp_path / "lapse.tif"), 3, axis=0)
    model = fit(others, device="cpu", **TINY).save(tmp_path / "m.n2d")
    options = BatchOptions(device="cpu", model=str(model))
    _events, summary = drain(run_batch([tmp_path / "lapse.tif"], tmp_path / "out2", options))
    (failed,) = summary.failed
    assert "of plane 3 is darker than nearly all of what this model was fitted on" in failed.reason


def test_per_channel_models_given_in_the_wrong_order_are_refused_with_the_likely_cause(tmp_path):
    from napari_noise2detail import fit

    rng = np.random.default_rng(0)
    bright, dim = 1000 + rng.poisson(200, (3, 16, 16)), 100 + rng.poisson(20, (3, 16, 16))
    tifffile.imwrite(tmp_path / "zc.tif", np.stack([bright, dim], axis=1).astype(np.uint16), imagej=True,
                     metadata={"axes": "ZCYX"})
    models = [fit(channel, device="cpu", **TINY) for channel in (bright, dim)]
    options = BatchOptions(device="cpu", model=(models[1], models[0]))  # swapped
    _events, summary = drain(run_batch([tmp_path / "zc.tif"], tmp_path / "out", options))
    (failed,) = summary.failed
    assert "darker than nearly all" in failed.reason
    assert "(this is channel 1's model: one model per channel, in channel order)" in failed.reason


@pytest.mark.parametrize("given", [None, False, True])
def test_stabilise_given_reaches_a_fit_on_several_planes(tmp_path, monkeypatch, given):
    """A fit on several planes stabilises shot noise unless told not to: stabilise=False given
    to the batch must reach it (the resolved preset's False cannot say it was given)."""
    from napari_noise2detail.engine.model import FIT_ONCE_FROM

    tifffile.imwrite(tmp_path / "long.tif", with_a_blank_frame(FIT_ONCE_FROM, blank=3))
    seen = []
    real = stack_module.fit_iter
    monkeypatch.setattr(stack_module, "fit_iter", lambda *a, **k: seen.append(k.get("stabilise")) or real(*a, **k))
    settings = {**TINY, **({} if given is None else {"stabilise": given})}
    options = BatchOptions(device="cpu", settings=settings)
    _events, summary = drain(run_batch([tmp_path / "long.tif"], tmp_path / "out", options))
    assert summary.ok and seen == [given]


def test_a_zarr_input_streams_into_ome_zarr_outputs(tmp_path):
    from napari_noise2detail.io.zarr import default_axes, ome_zarr_outputs, read_zarr, scale_from_meta

    rng = np.random.default_rng(0)
    data = (rng.random((3, 24, 20)) * 1000).astype(np.uint16)
    meta = ImageMeta(axes="ZYX", pixel_size=(0.5, 0.5), z_spacing=2.0, unit="µm")
    axes = default_axes(3, meta)
    source = tmp_path / "in" / "stack.ome.zarr"
    with ome_zarr_outputs({"image": source}, data.shape, axes, scale_from_meta(axes, meta), data.dtype,
                          translation=[4.0, 10.0, -2.5]) as out:
        out["image"][...] = data

    def store_bytes(store):
        return {str(f.relative_to(store)): f.read_bytes() for f in sorted(store.rglob("*")) if f.is_file()}

    before = store_bytes(source)
    inputs = collect_inputs([tmp_path / "in"])
    assert inputs == [source]  # the store is one input, not a folder to scan
    options = BatchOptions(device="cpu", settings=TINY, save_smooth=True, dtype="input")
    _events, summary = drain(run_batch(inputs, tmp_path / "out", options))
    assert summary.ok, summary.report()
    detail = read_zarr(tmp_path / "out" / "stack_n2d_detail.ome.zarr")
    assert detail.scale == [2.0, 0.5, 0.5] and [a["name"] for a in detail.axes] == ["z", "y", "x"]
    assert detail.translation == [4.0, 10.0, -2.5]  # placed over the input in a viewer
    assert detail.data.dtype == np.uint16 and detail.data.shape == data.shape
    # the values: fitted once on the planes, applied plane by plane, rounded to the input's dtype
    from napari_noise2detail import fit
    from napari_noise2detail.batch import to_dtype

    expected = fit(data, device="cpu", preset=resolve_settings("fast", **TINY)).apply(data).detail
    assert np.array_equal(detail.data[:], to_dtype(expected, np.uint16))
    assert (tmp_path / "out" / "stack_n2d_smooth.ome.zarr").is_dir()
    assert store_bytes(source) == before  # the input store is untouched
    _events, again = drain(run_batch(inputs, tmp_path / "out", options))
    assert [r.status for r in again.results] == ["skipped"]


def test_a_zarr_input_keeps_its_channel_names_and_colours(tmp_path):
    from napari_noise2detail.io.zarr import default_axes, ome_zarr_outputs, read_zarr

    data = np.random.default_rng(2).poisson(50, (2, 3, 16, 16)).astype(np.uint16)
    window = {"min": 0, "max": 65535, "start": 20, "end": 120}  # how the input is shown: the results too
    named = [{"label": "DAPI", "color": "0000FF", "window": window}, {"label": "GFP", "color": "00FF00"}]
    with ome_zarr_outputs({"image": tmp_path / "in.ome.zarr"}, data.shape, default_axes(4, ImageMeta(axes="CZYX")),
                          [1.0] * 4, data.dtype, channels=named) as out:
        out["image"][...] = data
    assert read_zarr(tmp_path / "in.ome.zarr").channels == named
    _events, summary = drain(run_batch([tmp_path / "in.ome.zarr"], tmp_path / "out", OPTIONS))
    assert summary.ok, summary.report()
    assert read_zarr(tmp_path / "out" / "in_n2d_detail.ome.zarr").channels == named  # napari shows them so
    # colours spelled as some tools write them ('#', RGBA) are read as OME-Zarr's writer takes
    # them; one it cannot take is dropped, not a reason to fail the image
    import zarr

    group = zarr.open_group(str(tmp_path / "in.ome.zarr"), mode="r+")
    ome = dict(group.attrs["ome"])
    ome["omero"] = {"channels": [{"label": "DAPI", "color": "#0000ffFF", "window": {"start": 1}},
                                 {"label": "GFP", "color": "green"}]}
    group.attrs["ome"] = ome
    assert read_zarr(tmp_path / "in.ome.zarr").channels == [{"label": "DAPI", "color": "0000ff"}, {"label": "GFP"}]
    _events, summary = drain(run_batch([tmp_path / "in.ome.zarr"], tmp_path / "again", OPTIONS))
    assert summary.ok, summary.report()


def test_a_lazy_colour_layer_keeps_its_time_axis_in_ome_zarr(tmp_path):
    import dask.array as da

    from napari_noise2detail.batch import ArrayItem
    from napari_noise2detail.io.zarr import read_zarr

    data = da.from_array(np.random.default_rng(0).integers(0, 255, (2, 16, 16, 3), dtype=np.uint8))
    meta = meta_from_scale([5.0, 0.5, 0.5], ["s", "µm", "µm"], ["t", "y", "x"], rgb=True)  # as the batch dock makes it
    _events, summary = drain(run_batch([ArrayItem("tl", data, meta, rgb=True)], tmp_path, OPTIONS))
    assert summary.ok, summary.report()
    written = read_zarr(tmp_path / "tl_n2d_detail.ome.zarr")
    assert [(a["name"], a.get("unit")) for a in written.axes] == [
        ("t", "second"), ("c", None), ("y", "micrometer"), ("x", "micrometer")]  # t was stored as z, in µm
    assert written.scale == [5.0, 1.0, 0.5, 0.5]


def test_an_ome_tiff_input_keeps_its_channel_names(tmp_path):
    data = np.random.default_rng(2).poisson(50, (2, 2, 16, 16)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.ome.tif", data, ome=True, metadata={
        "axes": "ZCYX", "Channel": {"Name": ["DAPI", "GFP"]}, "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    _events, summary = drain(run_batch([tmp_path / "in.ome.tif"], tmp_path / "out", OPTIONS))
    assert summary.ok, summary.report()
    meta = read_image(tmp_path / "out" / "in_n2d_detail.tif")[1]
    assert meta.channel_names == ("DAPI", "GFP") and meta.axes == "ZCYX" and meta.pixel_size == (0.5, 0.5)


@pytest.mark.parametrize("layout", ["plain zarr, colour last", "OME-Zarr, colour as channels"])
def test_a_colour_zarr_input_gives_ome_zarr_with_colour_as_channels(tmp_path, layout):
    import zarr

    from napari_noise2detail import fit
    from napari_noise2detail.batch import to_dtype
    from napari_noise2detail.io.zarr import default_axes, ome_zarr_outputs, open_output, read_zarr

    rng = np.random.default_rng(2)
    data = rng.integers(0, 255, (2, 24, 20, 3), dtype=np.uint8)
    source = tmp_path / "in" / "rgb.zarr"
    if layout.startswith("plain"):
        zarr.create_array(str(source), shape=data.shape, dtype=data.dtype, chunks=(1, 24, 20, 3))[...] = data
    else:
        with ome_zarr_outputs({"image": source}, data.shape, default_axes(3), [2.0, 0.5, 0.5], data.dtype,
                              rgb=True, translation=[0.0, 3.0, 1.5]) as out:
            out["image"][...] = data
    options = BatchOptions(device="cpu", settings=TINY, rgb=True, dtype="input")
    _events, summary = drain(run_batch([source], tmp_path / "out", options))
    assert summary.ok, summary.report()
    path = tmp_path / "out" / "rgb_n2d_detail.ome.zarr"
    written = read_zarr(path)
    assert [a["name"] for a in written.axes] == ["c", "z", "y", "x"]  # colour is not a spatial axis
    assert written.data.shape == (3, 2, 24, 20)
    assert written.scale == ([1.0, 2.0, 0.5, 0.5] if layout.startswith("OME") else [1.0] * 4)
    assert written.translation == ([0.0, 0.0, 3.0, 1.5] if layout.startswith("OME") else None)
    expected = fit(data, rgb=True, device="cpu", preset=resolve_settings("fast", **TINY)).apply(data, rgb=True)
    assert np.array_equal(np.asarray(open_output(path, rgb=True)), to_dtype(expected.detail, np.uint8))


@pytest.mark.parametrize("planes", [8, 2], ids=["fitted once", "plane by plane"])
def test_each_channel_of_a_stack_is_fitted_on_its_own(tmp_path, planes):
    """Channels differ in structure, brightness and gain: a ZCYX stack gives what each
    channel alone gives, not what one model of both would."""
    rng = np.random.default_rng(0)
    stack = np.stack([rng.poisson(50, (planes, 16, 16)), 5 * rng.poisson(8, (planes, 16, 16))], axis=1)
    stack = stack.astype(np.uint16)
    tifffile.imwrite(tmp_path / "both.tif", stack, imagej=True, metadata={"axes": "ZCYX"})
    for channel in range(2):
        tifffile.imwrite(tmp_path / f"c{channel}.tif", stack[:, channel], imagej=True, metadata={"axes": "ZYX"})
    inputs = [tmp_path / name for name in ("both.tif", "c0.tif", "c1.tif")]
    # the smooth output too: a fit of 5 steps leaves stage 3 where it started
    events, summary = drain(run_batch(inputs, tmp_path / "out", BatchOptions(device="cpu", settings=TINY,
                                                                            save_smooth=True)))
    assert summary.ok, summary.report()
    both_events = [e.progress for e in events if e.name == "both.tif" and e.progress is not None]
    # each channel's events say so, their planes numbered among the channel's own
    assert {e.channel for e in both_events} == {0, 1}
    assert all(e.plane < e.planes and e.planes in (1, planes) for e in both_events)  # (a fit: 1)
    for channel in (0, 1):
        assert {e.plane for e in both_events if e.channel == channel and e.stage != 0} >= (
            set(range(planes)) if planes == 2 else {0})  # plane by plane: each of its own fitted
    for kind in ("detail", "smooth"):
        both = tifffile.imread(tmp_path / "out" / f"both_n2d_{kind}.tif")
        assert both.shape == stack.shape
        for channel in range(2):
            alone = tifffile.imread(tmp_path / "out" / f"c{channel}_n2d_{kind}.tif")
            assert np.array_equal(both[:, channel], alone)


def test_the_planes_of_each_channel():
    from napari_noise2detail.engine.planes import ImageInfo, planes_along

    info = ImageInfo((3, 2, 4, 5, 5), np.dtype(np.uint16), False)  # T, C, Z
    assert planes_along(info, 1) == [[0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19],
                                     [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23]]
    assert planes_along(info, 0)[2] == list(range(16, 24))


def test_each_image_of_a_bioformats2raw_store_is_denoised_beside_it(tmp_path):
    """bioformats2raw and NGFF-Converter store a file of several series as one OME-Zarr image
    per series (groups 0, 1, ...) under a root that is not an image itself."""
    import zarr
    from ome_zarr.writer import write_image as write_ome

    from napari_noise2detail.io.zarr import read_zarr

    root = zarr.open_group(str(tmp_path / "plate.ome.zarr"), mode="w")
    root.attrs["ome"] = {"version": "0.5", "bioformats2raw.layout": 3}
    rng = np.random.default_rng(0)
    for series in "01":
        write_ome(rng.poisson(50, (2, 16, 16)).astype(np.uint16), root.create_group(series), axes="zyx",
                  scale_factors=())
    inputs = collect_inputs([tmp_path])
    assert inputs == [tmp_path / "plate.ome.zarr" / "0", tmp_path / "plate.ome.zarr" / "1"]
    events, summary = drain(run_batch(inputs, None, OPTIONS))
    assert summary.ok, summary.report()
    assert {e.name for e in events} == {"plate.ome.zarr/0", "plate.ome.zarr/1"}
    for series in "01":  # beside the store, not inside it, and named apart
        assert read_zarr(tmp_path / f"plate_{series}_n2d_detail.ome.zarr").data.shape == (2, 16, 16)
    with pytest.raises(ValueError, match="holds 2 images .an HCS plate's fields, or bioformats2raw's series.*plate.ome.zarr/0"):
        read_zarr(tmp_path / "plate.ome.zarr")


def test_each_field_of_an_hcs_plate_is_denoised_on_its_own(tmp_path):
    """A plate (and a well) holds images in wells: each is an image of its own, where ome-zarr's
    reader would stitch the wells into one mosaic, fitted together."""
    import zarr
    from ome_zarr.writer import write_image as write_ome
    from ome_zarr.writer import write_plate_metadata, write_well_metadata

    root = zarr.open_group(str(tmp_path / "hcs.ome.zarr"), mode="w")
    write_plate_metadata(root, ["A"], ["1", "2"], ["A/1", "A/2"])
    rng = np.random.default_rng(0)
    for column in "12":
        well = root.require_group("A").require_group(column)
        write_well_metadata(well, [{"path": "0"}, {"path": "1"}] if column == "1" else [{"path": "0"}])
        for field in ("01" if column == "1" else "0"):
            write_ome(rng.poisson(50, (16, 16)).astype(np.uint16), well.require_group(field), axes="yx",
                      scale_factors=())
    plate = tmp_path / "hcs.ome.zarr"
    assert collect_inputs([plate]) == [plate / "A" / "1" / "0", plate / "A" / "1" / "1", plate / "A" / "2" / "0"]
    assert collect_inputs([plate / "A" / "1"]) == [plate / "A" / "1" / "0", plate / "A" / "1" / "1"]  # a well
    _events, summary = drain(run_batch(collect_inputs([plate]), tmp_path / "out", OPTIONS))
    assert summary.ok, summary.report()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "hcs_A_1_0_n2d_detail.ome.zarr", "hcs_A_1_1_n2d_detail.ome.zarr", "hcs_A_2_0_n2d_detail.ome.zarr"]
    from napari_noise2detail.io.zarr import read_zarr

    assert read_zarr(tmp_path / "out" / "hcs_A_2_0_n2d_detail.ome.zarr").data.shape == (16, 16)  # a field, not a mosaic


def test_an_image_inside_a_store_is_named_and_written_as_the_store(tmp_path, monkeypatch):
    """Given by a relative path from inside the store ('.' too), or nested deeper (an HCS
    plate's plate.zarr/A/1/0): never written inside the input store."""
    from ome_zarr.writer import write_image as write_ome
    import zarr

    plate = zarr.open_group(str(tmp_path / "plate.zarr"), mode="w")
    write_ome(np.random.default_rng(0).poisson(50, (16, 16)).astype(np.uint16),
              plate.require_group("A").require_group("1").create_group("0"), axes="yx", scale_factors=())
    monkeypatch.chdir(tmp_path / "plate.zarr" / "A" / "1" / "0")
    for given in (".", "../0"):
        _events, summary = drain(run_batch(collect_inputs([given]), None, BatchOptions(device="cpu", settings=TINY, overwrite=True)))
        assert summary.ok, summary.report()
        assert summary.results[0].name == "plate.zarr/A/1/0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate.zarr", "plate_A_1_0_n2d_detail.ome.zarr"]


def test_an_ome_zarr_0_4_input_gives_ome_zarr_0_4_outputs(tmp_path):
    """OME-Zarr 0.4 (zarr v2) is what older viewers read: an input in it is answered in it."""
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image as write_ome

    from napari_noise2detail.io.zarr import read_zarr

    data = np.random.default_rng(0).poisson(50, (3, 16, 16)).astype(np.uint16)
    group = zarr.open_group(str(tmp_path / "old.ome.zarr"), mode="w", zarr_format=2)
    write_ome(data, group, axes="zyx", scale_factors=(), fmt=FormatV04())
    assert read_zarr(tmp_path / "old.ome.zarr").version == "0.4"
    _events, summary = drain(run_batch([tmp_path / "old.ome.zarr"], tmp_path / "out", OPTIONS))
    assert summary.ok, summary.report()
    out = tmp_path / "out" / "old_n2d_detail.ome.zarr"
    assert (out / ".zattrs").is_file() and not (out / "zarr.json").exists()
    assert parse_url(str(out)).version == "0.4"
    written = read_zarr(out)
    assert written.version == "0.4" and written.data.shape == (3, 16, 16)
    assert (out / "0" / "0" / "0" / "0").is_file()  # chunks nested, as OME-Zarr 0.4 has them


def test_the_results_of_a_zarr_stack_of_huge_planes_have_lower_levels(tmp_path, monkeypatch):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    from napari_noise2detail.io import pyramid
    from napari_noise2detail.io.zarr import default_axes, ome_zarr_outputs

    monkeypatch.setattr(pyramid, "LEVEL_SIDE", 16)  # "huge": over 16 pixels a side
    data = np.random.default_rng(0).poisson(50, (3, 32, 32)).astype(np.uint16)
    with ome_zarr_outputs({"image": tmp_path / "in.ome.zarr"}, data.shape, default_axes(3), [1.0] * 3,
                          data.dtype) as out:
        out["image"][...] = data
    _events, summary = drain(run_batch([tmp_path / "in.ome.zarr"], tmp_path / "out", OPTIONS))
    assert summary.ok, summary.report()
    node = next(iter(Reader(parse_url(str(tmp_path / "out" / "in_n2d_detail.ome.zarr")))()))
    full, half = (np.asarray(level) for level in node.data)
    assert half.shape == (3, 16, 16)
    assert np.allclose(half, full.astype(float).reshape(3, 16, 2, 16, 2).mean(axis=(2, 4)), atol=0.5)

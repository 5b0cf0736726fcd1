import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile

from conftest import make_folder, snapshot, synthetic_cells
from napari_noise2detail.cli import main


def test_demo_writes_results_and_says_where(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--steps", "5", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["nuclei_n2d_detail.tif", "nuclei_n2d_smooth.tif", "nuclei_noisy.tif",
                     "nuclei_side_by_side.png"]
    for name in names:
        assert str(tmp_path / name) in out
    assert tifffile.imread(tmp_path / "nuclei_n2d_detail.tif").shape == (256, 256)
    assert tifffile.imread(tmp_path / "nuclei_n2d_detail.tif").dtype == np.float32
    assert "PSNR" in out


def test_the_demo_picture_labels_its_panels(tmp_path, monkeypatch):
    from napari_noise2detail import figures

    shown = {}
    real = figures.side_by_side

    def record(panels, **kwargs):
        shown.update(kwargs)
        return real(panels, **kwargs)

    monkeypatch.setattr(figures, "side_by_side", record)
    assert main(["demo", "-o", str(tmp_path), "--steps", "5", "--device", "cpu"]) == 0
    labels = shown["labels"]
    assert [label.split()[0] for label in labels] == ["noisy", "smooth", "detail"]
    assert all(label.endswith(" dB") for label in labels)
    import imageio.v3 as iio

    picture = iio.imread(tmp_path / "nuclei_side_by_side.png")
    band = picture[: picture.shape[0] - 256]
    assert 10 < band.shape[0] < 40 and band.min() < 100  # a white band with dark letters


def test_bad_device_is_exit_status_2(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--device", "tpu"]) == 2
    assert "unknown device" in capsys.readouterr().err


def test_console_script_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "napari_noise2detail.cli", "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "demo" in done.stdout


# --- napari-noise2detail denoise -----------------------------------------------------------

def cli(*args, **popen):
    """The console script in a fresh process, on one torch thread (fast for tiny images)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "napari_noise2detail.cli", *map(str, args)]
    if popen:
        return subprocess.Popen(command, env=env, **popen)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_denoise_a_folder_in_a_subprocess(tmp_path):
    before = make_folder(tmp_path / "in")
    done = cli("denoise", tmp_path / "in", "-o", tmp_path / "out", "--steps", "5", "--device", "cpu",
               "--save-smooth")
    assert done.returncode == 1, done.stderr  # two files failed
    out = done.stdout
    assert "2 denoised, 0 skipped (outputs exist), 2 failed, of 4 image(s)" in out
    assert f"{tmp_path / 'in' / 'corrupt.tif'}: cannot read" in out
    assert f"{tmp_path / 'in' / 'tiny.tif'}: the image is 4x4 pixels" in out
    assert "100%" in done.stderr  # the progress, in plain lines: stderr is not a terminal here
    assert "\r" not in done.stderr and len(done.stderr.splitlines()) < 20
    assert "invalid offset" not in done.stderr + out  # tifffile's warning about corrupt.tif

    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["a_n2d_detail.tif", "a_n2d_smooth.tif", "b_n2d_detail.tif", "b_n2d_smooth.tif"]
    with tifffile.TiffFile(tmp_path / "out" / "b_n2d_detail.tif") as tif:
        assert tif.series[0].shape == (2, 16, 16) and tif.series[0].axes == "ZYX"
        assert tif.imagej_metadata["spacing"] == 3.0 and tif.pages[0].resolution == (2.0, 2.0)
    assert tifffile.imread(tmp_path / "out" / "a_n2d_detail.tif").shape == (24, 32)
    assert snapshot(tmp_path / "in") == before


def test_a_rerun_skips_and_overwrite_redoes(tmp_path, capsys):
    make_folder(tmp_path)
    good = [str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]
    base = ["denoise", *good, "--steps", "5", "--device", "cpu"]
    assert main(base) == 0
    assert "2 denoised" in capsys.readouterr().out
    outputs = sorted(tmp_path.glob("*_n2d_detail.tif"))  # beside the inputs by default
    assert [p.name for p in outputs] == ["a_n2d_detail.tif", "b_n2d_detail.tif"]
    stamps = [p.stat().st_mtime_ns for p in outputs]

    assert main(base) == 0
    assert "0 denoised, 2 skipped" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in outputs] == stamps

    assert main([*base, "--overwrite"]) == 0
    assert "2 denoised, 0 skipped" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns != s for p, s in zip(outputs, stamps))

    # Scanning the folder now leaves the outputs out; the bad files still fail.
    assert main(["denoise", str(tmp_path), "--steps", "5", "--device", "cpu"]) == 1
    assert "0 denoised, 2 skipped (outputs exist), 2 failed, of 4 image(s)" in capsys.readouterr().out


def test_input_dtype_and_globs(tmp_path, capsys):
    make_folder(tmp_path)
    assert main(["denoise", str(tmp_path / "[ab].tif"), "-o", str(tmp_path / "out"), "--steps", "5",
                 "--device", "cpu", "--dtype", "input"]) == 0
    assert tifffile.imread(tmp_path / "out" / "a_n2d_detail.tif").dtype == np.uint16
    assert tifffile.imread(tmp_path / "out" / "b_n2d_detail.tif").dtype == np.float32


@pytest.mark.parametrize("args, message", [
    (["denoise", "{tmp}/missing.tif"], "no such file or folder"),
    (["denoise", "{tmp}/*.czi"], "no files match"),
    (["denoise", "{tmp}/a.tif", "--device", "tpu"], "unknown device"),
])
def test_bad_arguments_are_exit_status_2(tmp_path, capsys, args, message):
    make_folder(tmp_path)
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*_n2d_*"))


def test_argparse_errors_are_exit_status_2(tmp_path, capsys):
    for args in (["denoise"], ["denoise", str(tmp_path), "--preset", "slow"],
                 ["denoise", str(tmp_path), "--dtype", "int8"], ["denoise", str(tmp_path), "--steps", "0"],
                 ["fit", str(tmp_path), "-o", "m.n2d", "--threads", "two"]):
        with pytest.raises(SystemExit) as stop:
            main(args)
        assert stop.value.code == 2
    assert "argument --threads: give a whole number of at least 1" in capsys.readouterr().err  # not Python's words


def test_a_killed_batch_leaves_no_incomplete_output(tmp_path):
    make_folder(tmp_path / "in")
    for i in range(3):  # more good images, so the kill lands while one is being denoised
        image = np.random.default_rng(i).random((32, 32)).astype(np.float32)
        tifffile.imwrite(tmp_path / "in" / f"c{i}.tif", image)
    process = cli("denoise", tmp_path / "in", "-o", tmp_path / "out", "--steps", "150",
                  "--device", "cpu", "--save-smooth",
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (tmp_path / "out" / "a_n2d_smooth.tif").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    finals = sorted((tmp_path / "out").glob("*_n2d_*.tif"))
    assert finals, "the batch was killed before it wrote anything"
    assert len(finals) < 10, "the batch finished before it was killed"
    for path in finals:  # whatever has a final name is complete
        shape = tifffile.imread(path).shape
        assert shape in {(24, 32), (2, 16, 16), (32, 32)}
    # A re-run resumes: what exists is skipped, the rest is done.
    done = cli("denoise", tmp_path / "in", "-o", tmp_path / "out", "--steps", "5", "--device", "cpu",
               "--save-smooth")
    assert done.returncode == 1
    assert "skipped (outputs exist), 2 failed, of 7 image(s)" in done.stdout
    assert len(list((tmp_path / "out").glob("*_n2d_*.tif"))) == 10


def test_stabilise_flag_reaches_the_engine(tmp_path):
    clean = synthetic_cells(64)
    counts = np.random.default_rng(0).poisson(40 * clean).astype(np.uint16)  # shot noise
    tifffile.imwrite(tmp_path / "counts.tif", counts)
    outputs = {}
    for flag in ([], ["--stabilise"]):
        out = tmp_path / ("out" + "".join(flag))
        assert main(["denoise", str(tmp_path / "counts.tif"), "-o", str(out), "--steps", "5",
                     "--device", "cpu", *flag]) == 0
        outputs[bool(flag)] = tifffile.imread(out / "counts_n2d_detail.tif")
    assert not np.array_equal(outputs[True], outputs[False])


def test_threads_option_reaches_the_engine(tmp_path, monkeypatch):
    from napari_noise2detail.engine import stack as stack_module

    make_folder(tmp_path)
    seen = []
    real = stack_module.denoise_iter

    def spy(*args, **kwargs):
        seen.append(kwargs["threads"])
        return real(*args, **kwargs)

    monkeypatch.setattr(stack_module, "denoise_iter", spy)
    assert main(["denoise", str(tmp_path / "a.tif"), "-o", str(tmp_path / "out"), "--steps", "3",
                 "--device", "cpu", "--threads", "1"]) == 0
    assert main(["denoise", str(tmp_path / "b.tif"), "-o", str(tmp_path / "out"), "--steps", "3",
                 "--device", "cpu"]) == 0
    assert seen == [1, None]


def test_fit_then_denoise_with_the_saved_model(tmp_path, capsys):
    make_folder(tmp_path / "in")
    model = tmp_path / "cells.n2d"
    assert main(["fit", str(tmp_path / "in" / "b.tif"), "-o", str(model), "--steps", "5",
                 "--device", "cpu", "--planes", "0,1"]) == 0
    said = capsys.readouterr().out
    assert "fitted on 2 planes" in said and f"--model {model}" in said
    assert model.is_file()
    assert main(["denoise", str(tmp_path / "in" / "a.tif"), "-o", str(tmp_path / "out"),
                 "--model", str(model), "--device", "cpu"]) == 0
    from napari_noise2detail import load_model

    expected = load_model(model, device="cpu").apply(tifffile.imread(tmp_path / "in" / "a.tif")).detail
    assert np.array_equal(tifffile.imread(tmp_path / "out" / "a_n2d_detail.tif"), expected)


@pytest.mark.parametrize("args, message", [
    (["fit", "{tmp}/missing.tif", "-o", "{tmp}/m.n2d"], "no such file"),
    (["fit", "{tmp}/b.tif", "-o", "{tmp}/m.n2d", "--planes", "5"], "do not exist"),
    (["denoise", "{tmp}/a.tif", "--model", "{tmp}/missing.n2d"], "no such model file"),
    (["denoise", "{tmp}/a.tif", "--model", "{tmp}/"], "is a folder, not a model file"),
    (["denoise", "{tmp}/a.tif", "--model", "{tmp}/a.tif"], "not a readable Noise2Detail model"),
    (["fit", "{tmp}", "-o", "{tmp}/m.n2d"], "is one image file or a zarr store"),
    (["fit", "{tmp}/b.tif", "-o", "{tmp}"], "is a folder"),
    # the output is checked before the fit, not found unwritable after it
    (["fit", "{tmp}/b.tif", "-o", "{tmp}/a.tif/m.n2d"], "cannot write in"),
    (["denoise", "{tmp}/b.tif", "-o", "{tmp}/a.tif"], "it is a file, not a folder"),
    (["demo", "-o", "{tmp}/a.tif/demo"], "cannot write in"),
    (["fit", "{tmp}", "-o", "{tmp}/new/deeper/m.n2d"], "is one image file"),  # and no folder made
    # a model is only ever written over a model: never over the image, nor another file
    (["fit", "{tmp}/b.tif", "-o", "{tmp}/b.tif"], "-o is IMAGE itself"),
    (["fit", "{tmp}/b.tif", "-o", "{tmp}/a.tif"], "exists and is not a Noise2Detail model"),
])
def test_fit_and_model_errors_are_exit_status_2(tmp_path, capsys, args, message, monkeypatch):
    before = make_folder(tmp_path)
    from napari_noise2detail.engine import model

    monkeypatch.setattr(model, "_fit_run", lambda *a, **k: pytest.fail("fitted before the arguments were checked"))
    assert main([a.format(tmp=tmp_path) for a in args] + ["--steps", "3", "--device", "cpu"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.n2d").exists()
    assert snapshot(tmp_path) == before  # nothing written


def test_one_model_per_channel_each_applied_to_its_channel(tmp_path, capsys):
    from napari_noise2detail import load_model

    rng = np.random.default_rng(0)
    stack = np.stack([rng.poisson(50, (3, 16, 16)), 5 * rng.poisson(8, (3, 16, 16))], axis=1).astype(np.uint16)
    tifffile.imwrite(tmp_path / "zc.tif", stack, imagej=True, metadata={"axes": "ZCYX"})
    for c in range(2):
        assert main(["fit", str(tmp_path / "zc.tif"), "-o", str(tmp_path / f"c{c}.n2d"), "--channel", str(c),
                     "--steps", "3", "--device", "cpu"]) == 0
    assert "one --model per channel, in channel order (this is channel 1's)" in capsys.readouterr().out
    models = [str(tmp_path / f"c{c}.n2d") for c in range(2)]
    denoise = ["denoise", str(tmp_path / "zc.tif"), "--device", "cpu", "--dtype", "float32"]
    assert main(denoise + ["-o", str(tmp_path / "out"), "--model", models[0], "--model", models[1]]) == 0
    detail = tifffile.imread(tmp_path / "out" / "zc_n2d_detail.tif")
    for c in range(2):  # each channel as its model alone gives it (the second was not dropped)
        assert np.array_equal(detail[:, c], load_model(models[c], device="cpu").apply(stack[:, c]).detail)
    capsys.readouterr()
    assert main(denoise + ["-o", str(tmp_path / "three"), *sum((["--model", m] for m in models + models[:1]), [])]) == 1
    assert "3 models were given, one per channel, and the image has 2 channels (its axes: ZCYX)" in capsys.readouterr().out


def test_fit_one_channel_of_a_stack(tmp_path, capsys):
    from napari_noise2detail import load_model

    stack = np.random.default_rng(0).integers(0, 1000, (6, 2, 16, 16), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "zc.tif", stack, imagej=True, metadata={"axes": "ZCYX"})
    base = ["fit", str(tmp_path / "zc.tif"), "-o", str(tmp_path / "m.n2d"), "--steps", "3", "--device", "cpu"]
    assert main(base + ["--channel", "1"]) == 0
    planes = load_model(tmp_path / "m.n2d", device="cpu").planes
    assert len(planes) == 5 and all(p % 2 == 1 for p in planes)  # ZCYX: channel 1 is every other plane
    assert "Note" not in capsys.readouterr().err
    assert main(base) == 0
    assert "the image has 2 channels (axes ZCYX)" in capsys.readouterr().err  # both, and a note
    for extra, message in [(["--channel", "2"], "has channels 0 to 1"),
                           (["--channel", "1", "--planes", "2,6"], "--planes 6: with --channel, planes are "
                            "numbered among the channel's own, and channel 1 has planes 0 to 5")]:
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err
    assert main(base + ["--channel", "1", "--planes", "0,2"]) == 0  # planes 0 and 2 of channel 1: z 0 and 2
    assert load_model(tmp_path / "m.n2d", device="cpu").planes == (1, 5)
    assert "planes 0, 2 of channel 1's own" in capsys.readouterr().out  # as --planes numbers them
    tifffile.imwrite(tmp_path / "z.tif", stack[:, 0], imagej=True, metadata={"axes": "ZYX"})
    # no channel axis (an OME-TIFF of one channel reads so): one channel, 0, every plane
    z = ["fit", str(tmp_path / "z.tif"), "-o", str(tmp_path / "z.n2d"), "--steps", "3", "--device", "cpu"]
    capsys.readouterr()
    assert main(z + ["--channel", "0"]) == 0
    assert "one --model per channel" not in capsys.readouterr().out  # one channel: one model, said plainly
    assert main(z + ["--channel", "1"]) == 2
    assert "the image has one channel, 0" in capsys.readouterr().err
    # a channel axis of one channel: that channel is every plane
    from napari_noise2detail.io import ImageMeta
    from napari_noise2detail.io.zarr import default_axes, ome_zarr_outputs

    one = stack[:, :1].transpose(1, 0, 2, 3)  # CZYX, one channel
    with ome_zarr_outputs({"image": tmp_path / "one.ome.zarr"}, one.shape, default_axes(4, ImageMeta(axes="CZYX")),
                          [1.0] * 4, one.dtype) as out:
        out["image"][...] = one
    base = ["fit", str(tmp_path / "one.ome.zarr"), "-o", str(tmp_path / "one.n2d"), "--steps", "3", "--device", "cpu"]
    assert main(base + ["--channel", "0"]) == 0
    assert main(base + ["--channel", "1"]) == 2
    assert "the image has one channel, 0" in capsys.readouterr().err


def test_fit_reads_the_colours_of_an_ome_zarr_store(tmp_path, capsys):
    from napari_noise2detail import load_model
    from napari_noise2detail.io.zarr import default_axes, ome_zarr_outputs

    data = np.random.default_rng(0).integers(0, 255, (2, 24, 20, 3), dtype=np.uint8)
    with ome_zarr_outputs({"image": tmp_path / "rgb.ome.zarr"}, data.shape, default_axes(3), [1.0] * 3,
                          data.dtype, rgb=True) as out:  # stored with colour as the c axis
        out["image"][...] = data
    assert main(["fit", str(tmp_path / "rgb.ome.zarr"), "--rgb", "-o", str(tmp_path / "m.n2d"),
                 "--steps", "3", "--device", "cpu"]) == 0, capsys.readouterr().err
    assert load_model(tmp_path / "m.n2d", device="cpu").channels == 3


@pytest.mark.parametrize("shape, axes, expected", [
    ((24, 20, 2), "YXS", "CYX"),
    ((3, 24, 20, 2), "TYXS", "TCYX"),  # channels where ImageJ keeps them: a hyperstack in Fiji
])
def test_a_tiff_with_two_samples_a_pixel_is_denoised_as_two_channels(tmp_path, shape, axes, expected):
    data = (np.random.default_rng(0).random(shape) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "two.tif", data, photometric="minisblack", planarconfig="contig",
                     metadata={"axes": axes})
    assert main(["denoise", str(tmp_path / "two.tif"), "-o", str(tmp_path / "out"), "--steps", "3",
                 "--device", "cpu"]) == 0
    with tifffile.TiffFile(tmp_path / "out" / "two_n2d_detail.tif") as tif:
        assert tif.series[0].axes == expected and tif.is_imagej  # not read as RGB
        assert tif.series[0].shape == tuple(np.moveaxis(data, -1, -3).shape)


def test_a_killed_run_leaves_no_zarr_store_under_the_final_name(tmp_path):
    from napari_noise2detail.io.zarr import default_axes, ome_zarr_outputs

    rng = np.random.default_rng(0)
    shape = (4, 1024, 1024)  # large planes: applying the model takes seconds a plane
    with ome_zarr_outputs({"image": tmp_path / "in.ome.zarr"}, shape, default_axes(3), [1.0] * 3,
                          np.uint16) as out:
        out["image"][...] = rng.poisson(500, shape)
    command = [sys.executable, "-m", "napari_noise2detail.cli", "denoise", str(tmp_path / "in.ome.zarr"),
               "-o", str(tmp_path / "out"), "--device", "cpu", "--steps", "20"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "out").glob(".*partial")):
        time.sleep(0.2)  # the hidden store is being filled: the fit is done, planes are written
    proc.kill()
    proc.wait()
    assert list((tmp_path / "out").glob(".in_n2d_detail.ome.zarr.*.partial"))
    assert not (tmp_path / "out" / "in_n2d_detail.ome.zarr").exists()


def test_help_documents_every_option_and_the_exit_status():
    import argparse

    from napari_noise2detail.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"demo", "denoise", "fit"}
    for name, sub in [("", parser), *commands.choices.items()]:
        undocumented = [a.dest for a in sub._actions if not isinstance(a, argparse._HelpAction)
                        and a.help in (None, "") and not isinstance(a, argparse._SubParsersAction)]
        assert not undocumented, f"{name or 'top level'}: {undocumented} have no help"
        text = sub.format_help()
        for status in ("0 done", "1 some images failed", "2 bad arguments", "130 stopped"):
            assert status in " ".join(text.split()), f"{name or 'top level'} --help lacks '{status}'"

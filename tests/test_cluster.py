"""The batch on a real Dask cluster: two worker processes on this machine."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import tifffile

from conftest import drain, make_folder, snapshot, with_a_blank_frame
from napari_noise2detail.batch import BatchOptions, collect_inputs, run_batch
from napari_noise2detail.io.zarr import read_zarr

pytest.importorskip("distributed")
from distributed import Client, LocalCluster  # noqa: E402

# One thread per image, as --workers gives on this machine: bit-identical to one process.
OPTIONS = BatchOptions(device="cpu", threads=1, settings={"steps": 8, "width": 8})
BLOCK_OPTIONS = replace(OPTIONS, save_smooth=True)


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        yield client


def _images(folder, count=4, size=32):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        tifffile.imwrite(folder / f"img{i}.tif", (rng.random((size, size)) * 1000).astype(np.uint16))


def test_the_cluster_gives_the_single_process_outputs_and_reports_the_bad(tmp_path, client):
    make_folder(tmp_path / "in")
    _images(tmp_path / "in")
    before = snapshot(tmp_path / "in")
    inputs = collect_inputs([tmp_path / "in"])
    _events, here = drain(run_batch(inputs, tmp_path / "here", OPTIONS))
    events, there = drain(run_batch(inputs, tmp_path / "there", OPTIONS, client))
    assert [r.status for r in there.results] == [r.status for r in here.results]
    assert {r.name for r in there.failed} == {"corrupt.tif", "tiny.tif"}
    assert "cannot read" in next(r.reason for r in there.failed if r.name == "corrupt.tif")
    for result in here.done:
        for path in result.outputs:
            same = tmp_path / "there" / path.name
            assert np.array_equal(tifffile.imread(same), tifffile.imread(path)), path.name  # bit for bit
    assert snapshot(tmp_path / "in") == before  # inputs never written
    assert events[-1].fraction == 1.0 and all(e.describe() for e in events)


def test_a_saved_model_is_sent_to_the_workers(tmp_path, client):
    from napari_noise2detail import fit, load_model

    _images(tmp_path / "in", count=3)
    image = tifffile.imread(tmp_path / "in" / "img0.tif")
    path = fit(image, device="cpu", steps=8, width=8).save(tmp_path / "m.n2d")
    options = BatchOptions(device="cpu", threads=1, model=str(path))
    _events, summary = drain(run_batch(collect_inputs([tmp_path / "in"]), tmp_path / "out", options, client))
    assert summary.ok and len(summary.done) == 3
    expected = load_model(path, device="cpu").apply(image).detail
    assert np.array_equal(tifffile.imread(tmp_path / "out" / "img0_n2d_detail.tif"), expected)


def test_an_interrupted_cluster_batch_resumes(tmp_path, client):
    _images(tmp_path / "in", count=4)
    inputs = collect_inputs([tmp_path / "in"])
    run = run_batch(inputs, tmp_path / "out", OPTIONS, client)
    for event in run:
        if event.result is not None:
            break  # stop after the first image, as Ctrl-C would
    run.close()
    first = {p.name for p in (tmp_path / "out").glob("*_n2d_detail.tif")}
    assert 1 <= len(first) <= 4
    assert not [p for p in (tmp_path / "out").iterdir() if not p.name.startswith(".") and p.name not in first]
    _events, summary = drain(run_batch(inputs, tmp_path / "out", OPTIONS, client))
    assert summary.ok and len(summary.skipped) == len(first) and len(summary.done) == 4 - len(first)


def _zarr_stack(path, planes=10, size=32, colours=()):
    import zarr

    shape = (planes, size, size, *colours)
    data = (np.random.default_rng(1).random(shape) * 1000).astype(np.uint16)
    array = zarr.create_array(str(path), shape=data.shape, chunks=(1, *shape[1:]), dtype=data.dtype)
    array[:] = data
    return data


def _left_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("saved_model", [None, "one", "per channel"], ids=["fitted", "saved model", "one per channel"])
def test_each_channel_of_a_long_zarr_stack_is_fitted_on_its_own(tmp_path, client, monkeypatch, saved_model):
    import zarr
    from distributed import get_task_stream

    from napari_noise2detail import cluster
    from napari_noise2detail.io import ImageMeta
    from napari_noise2detail.io.zarr import default_axes, ome_zarr_outputs

    monkeypatch.setattr(cluster, "BLOCK_PLANES", 3)  # 5 planes a channel: blocks of 3 and 2
    rng = np.random.default_rng(1)
    data = np.stack([rng.poisson(50, (5, 24, 24)), 5 * rng.poisson(8, (5, 24, 24))]).astype(np.uint16)
    axes = default_axes(4, ImageMeta(axes="CZYX"))
    with ome_zarr_outputs({"image": tmp_path / "in" / "cells.ome.zarr"}, data.shape, axes, [1.0] * 4,
                          data.dtype) as out:
        out["image"][...] = data
    inputs = collect_inputs([tmp_path / "in"])
    options = BLOCK_OPTIONS
    if saved_model:
        from napari_noise2detail import fit

        models = [fit(data[c], device="cpu", steps=8, width=8, seed=c) for c in range(2)]
        options = replace(options, settings={}, model=models[0] if saved_model == "one" else models)
    _events, here = drain(run_batch(inputs, tmp_path / "here", options))
    with get_task_stream(client) as stream:
        _events, there = drain(run_batch(inputs, tmp_path / "there", options, client))
    assert here.ok and there.ok
    keys = sorted(str(task["key"]).split("-", 3)[-1] for task in stream.data)
    # a fit and its blocks per channel (one model for all: blocks through every plane), and
    # nothing else: the OME-Zarr input (a dask array) is read in those tasks, not plane by
    # plane in tasks of their own
    assert keys == {"one": ["0-0", "0-1", "0-2", "0-3"], "per channel": ["0-0", "0-1", "1-0", "1-1"],
                    None: ["0-0", "0-1", "0-fit", "1-0", "1-1", "1-fit"]}[saved_model]
    for name in ("cells_n2d_detail.ome.zarr", "cells_n2d_smooth.ome.zarr"):
        ours, theirs = (zarr.open_array(str(tmp_path / where / name / "0"), mode="r")[:] for where in ("here", "there"))
        assert np.array_equal(theirs, ours)
    if saved_model == "per channel":  # each channel as its own model gives it
        from napari_noise2detail.batch import to_dtype

        detail = zarr.open_array(str(tmp_path / "there" / "cells_n2d_detail.ome.zarr" / "0"), mode="r")[:]
        for c in range(2):
            assert np.array_equal(detail[c], to_dtype(models[c].apply(data[c]).detail, np.uint16))


def test_a_lazy_layer_even_one_held_by_the_cluster_is_one_task(tmp_path, client, monkeypatch):
    import dask.array as da
    from distributed import get_task_stream

    from napari_noise2detail import cluster
    from napari_noise2detail.batch import ArrayItem

    monkeypatch.setattr(cluster, "BLOCK_PLANES", 3)  # not shared out: its graph would go with each block
    stack = (np.random.default_rng(3).random((5, 24, 24)) * 1000).astype(np.uint16)
    held = da.from_array(stack, chunks=(1, 24, 24)).persist()  # its chunks live on the workers
    item = ArrayItem(name="held", data=held)
    _events, here = drain(run_batch([item], tmp_path / "here", OPTIONS))
    with get_task_stream(client) as stream:
        _events, there = drain(run_batch([item], tmp_path / "there", OPTIONS, client))
    assert here.ok and there.ok, (here.report(), there.report())
    assert sum(str(task["key"]).startswith("n2d-") for task in stream.data) == 1
    ours, theirs = (read_zarr(tmp_path / where / "held_n2d_detail.ome.zarr").data.compute() for where in ("here", "there"))
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("case", ["fitted", "saved model", "colour"])
def test_a_long_zarr_stack_is_shared_out_in_blocks_of_planes(tmp_path, client, monkeypatch, case):
    import zarr
    from distributed import get_task_stream

    from napari_noise2detail import cluster, fit

    monkeypatch.setattr(cluster, "BLOCK_PLANES", 3)  # 10 planes: blocks of 3, 3, 3 and 1
    data = _zarr_stack(tmp_path / "stack.zarr", colours=(3,) if case == "colour" else ())
    options = BLOCK_OPTIONS  # smooth too: a tiny fit's detail is nearly constant, its smooth is not
    saved_model = case == "saved model"
    if saved_model:
        options = replace(options, settings={}, model=fit(data[0], device="cpu", steps=8, width=8))
    if case == "colour":  # written through colour-last views of stores with colour as channels
        options = replace(options, rgb=True)
    inputs = collect_inputs([tmp_path / "stack.zarr"])
    _events, here = drain(run_batch(inputs, tmp_path / "here", options))
    with get_task_stream(client) as stream:
        events, there = drain(run_batch(inputs, tmp_path / "there", options, client))
    assert here.ok and there.ok and len(there.done) == 1
    keys = sorted(str(task["key"]).rsplit("-", 1)[-1] for task in stream.data)
    assert keys == ["0", "1", "2", "3"] + ([] if saved_model else ["fit"])  # one task per block
    names = ["stack_n2d_detail.ome.zarr", "stack_n2d_smooth.ome.zarr"]
    for name in names:
        ours, theirs = (zarr.open_array(str(tmp_path / where / name / "0"), mode="r")[:] for where in ("here", "there"))
        assert np.array_equal(theirs, ours)  # bit for bit, every plane
        assert theirs.shape == ((3, 10, 32, 32) if case == "colour" else (10, 32, 32))
    assert all(plane.std() > 0 for plane in theirs)  # every plane of the smooth output written
    assert _left_in(tmp_path / "there") == names  # renamed into place, no temporaries
    assert all(e.describe() for e in events) and events[-1].fraction == 1.0
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and any(0 < f < 1 for f in fractions)  # blocks show, never back


def test_a_failed_block_fails_its_stack_and_leaves_no_store(tmp_path, client, monkeypatch):
    from napari_noise2detail import cluster, fit

    monkeypatch.setattr(cluster, "BLOCK_PLANES", 3)
    data = _zarr_stack(tmp_path / "stack.zarr")
    chunk = next(p for p in (tmp_path / "stack.zarr").rglob("*") if p.is_file() and p.parts[-4:] == ("c", "8", "0", "0"))
    chunk.write_bytes(b"not a chunk")  # plane 8 cannot be read: its block fails
    options = BatchOptions(device="cpu", threads=1, model=fit(data[0], device="cpu", steps=8, width=8))
    _events, summary = drain(run_batch(collect_inputs([tmp_path / "stack.zarr"]), tmp_path / "out", options, client))
    assert [r.status for r in summary.results] == ["failed"] and summary.failed[0].reason
    assert _left_in(tmp_path / "out") == []  # no store under its name, no temporary either


def test_a_cancelled_block_batch_leaves_no_store(tmp_path, client, monkeypatch):
    from napari_noise2detail import cluster

    monkeypatch.setattr(cluster, "BLOCK_PLANES", 3)
    _zarr_stack(tmp_path / "stack.zarr")
    slow = BatchOptions(device="cpu", threads=1, settings={"steps": 400, "width": 16})
    run = run_batch(collect_inputs([tmp_path / "stack.zarr"]), tmp_path / "out", slow, client)
    first = next(run)  # the tasks are submitted and the outputs begun
    assert first.result is None and any(p.name.endswith(".partial") for p in (tmp_path / "out").iterdir())
    assert first.describe().startswith("0/1 done (") and "running)" in first.describe()  # the fit task
    run.close()  # as Ctrl-C does
    assert _left_in(tmp_path / "out") == []


def test_a_killed_worker_loses_only_its_task(tmp_path):
    _images(tmp_path / "in", count=4, size=96)
    slow = BatchOptions(device="cpu", threads=1, settings={"steps": 400, "width": 16})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        run = run_batch(collect_inputs([tmp_path / "in"]), tmp_path / "out", slow, client)
        first = next(run)  # the tasks are submitted
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy:
                time.sleep(1.0)  # mid-task: fitting has started
                killed = pids[busy[0]]
                os.kill(killed, signal.SIGKILL)
            else:
                time.sleep(0.2)
        assert killed is not None
        events, summary = drain(run)
    assert first.result is None  # no image had ended before the kill
    assert summary.ok and len(summary.done) == 4  # the killed worker's image was done again
    names = sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith("."))
    assert names == [f"img{i}_n2d_detail.tif" for i in range(4)]
    for path in (tmp_path / "out").glob("*.tif"):
        assert tifffile.imread(path).shape == (96, 96)  # complete files only


def test_a_worker_killed_mid_block_loses_only_that_block(tmp_path, monkeypatch):
    import zarr

    from napari_noise2detail import cluster, fit

    monkeypatch.setattr(cluster, "BLOCK_PLANES", 4)
    data = _zarr_stack(tmp_path / "stack.zarr", planes=16, size=384)
    model = fit(data[0], device="cpu", steps=8)  # full width: a block takes a couple of seconds
    options = BatchOptions(device="cpu", threads=1, model=model)
    inputs = collect_inputs([tmp_path / "stack.zarr"])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as local, Client(local) as client:
        pids = client.run(os.getpid)
        run = run_batch(inputs, tmp_path / "out", options, client)
        killed, deadline = None, time.monotonic() + 120
        for _event in run:
            busy = [w for w, tasks in client.processing().items() if any(str(t).startswith("n2d-") for t in tasks)]
            if busy:
                time.sleep(0.5)  # mid-block
                killed = pids[busy[0]]
                os.kill(killed, signal.SIGKILL)
                break
            assert time.monotonic() < deadline
        events, summary = drain(run)
    assert killed is not None and summary.ok and len(summary.done) == 1  # the block was run again
    written = zarr.open_array(str(tmp_path / "out" / "stack_n2d_detail.ome.zarr" / "0"), mode="r")[:]
    assert np.array_equal(written, model.apply(data).detail)  # every plane, as in one process
    assert _left_in(tmp_path / "out") == ["stack_n2d_detail.ome.zarr"]


def test_ctrl_c_stops_the_cluster_and_exits_130(tmp_path):
    _images(tmp_path / "in", count=6, size=96)
    command = [sys.executable, "-m", "napari_noise2detail.cli", "denoise", str(tmp_path / "in"),
               "-o", str(tmp_path / "out"), "--workers", "2", "--device", "cpu", "--steps", "400"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("denoised"):
            os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the workers as well
            break
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(lines) + out
    assert "Batch cancelled" in out and "Traceback" not in out, out  # nor the workers' nor Dask's
    done = list((tmp_path / "out").glob("*_n2d_detail.tif"))
    assert 1 <= len(done) < 6
    for path in done:
        assert tifffile.imread(path).shape == (96, 96)


def test_the_progress_line_counts_images_done_not_the_place_of_the_one_that_ended():
    from napari_noise2detail.batch import BatchProgress, ItemResult

    ended = BatchProgress(4, 5, "img4.tif", 0.4, None, result=ItemResult("img4.tif", "img4.tif", "done"),
                          running=2, done=2)  # on a cluster the last image can end second
    assert ended.describe() == "2/5 done, img4.tif: done (2 running)"
    in_process = BatchProgress(1, 5, "img1.tif", 0.4, None, result=ItemResult("img1.tif", "img1.tif", "done"))
    assert in_process.describe() == "2/5 img1.tif: done"


def test_local_workers_leave_ctrl_c_to_the_command():
    from napari_noise2detail.cluster import local_cluster

    before = signal.getsignal(signal.SIGINT)
    with local_cluster(1) as client:
        # started ignoring it (a Ctrl-C while they imported torch printed their tracebacks)
        assert list(client.run(lambda: signal.getsignal(signal.SIGINT) == signal.SIG_IGN).values()) == [True]
        assert signal.getsignal(signal.SIGINT) is before  # this process answers it again
    assert signal.getsignal(signal.SIGINT) is before


def test_the_slurm_job_script_carries_the_options_given(capsys):
    from napari_noise2detail.cli import main

    pytest.importorskip("dask_jobqueue")
    args = ["denoise", "in/", "--cluster", "slurm", "--print-job-script", "--cluster-option", "cores=8",
            "--cluster-option", "memory=16GB", "--cluster-option", "queue=gpu",
            "--cluster-option", "walltime=02:00:00",
            "--cluster-option", 'job_extra_directives=["--gres=gpu:1"]']
    assert main(args) == 0
    script = capsys.readouterr().out
    assert "#SBATCH -p gpu" in script
    assert "#SBATCH --gres=gpu:1" in script
    assert "#SBATCH -t 02:00:00" in script
    assert "#SBATCH --cpus-per-task=8" in script
    assert "--nworkers 8" in script and "--nthreads 1" in script  # one image at a time per core
    plain = [*args[:-1], "job_extra_directives=--gres=gpu:1"]  # a string, not a list: one directive
    assert main(plain) == 0
    script = capsys.readouterr().out
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH -\n" not in script
    # docs/cluster.md's GPU recipe: a job per GPU, one worker running one task at a time
    gpu = ["denoise", "in/", "--cluster", "slurm", "--print-job-script", "--cluster-option",
           "cores=1", "--cluster-option", "job_cpu=4", "--cluster-option", "memory=32GB", "--cluster-option", 'job_extra_directives=["--gres=gpu:1"]']
    assert main(gpu) == 0
    script = capsys.readouterr().out
    assert "--nthreads 1" in script and "--nworkers" not in script and "#SBATCH --cpus-per-task=4" in script
    for alone in (["--print-job-script"], ["--jobs", "4"], ["--cluster-option", "cores=8"]):
        assert main(["denoise", "in/", *alone]) == 2  # without --cluster it would be ignored
        assert f"{alone[0]} goes with --cluster" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["denoise", "in/", "--cluster", "slurm", "--jobs", "0"])
    assert stop.value.code == 2
    assert "argument --jobs: give a whole number of at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("kind, expected", [
    ("pbs", ["#PBS -q gpu", "#PBS -l walltime=02:00:00", "ncpus=8"]),
    ("sge", ["#$ -q gpu", "#$ -l h_rt=02:00:00"]),
    ("lsf", ["#BSUB -q gpu", "#BSUB -W 02:00", "#BSUB -n 8"]),
])
def test_the_other_job_schedulers_scripts_carry_the_options_given(capsys, kind, expected):
    from napari_noise2detail.cli import main

    pytest.importorskip("dask_jobqueue")
    args = ["denoise", "in/", "--cluster", kind, "--print-job-script", "--cluster-option", "cores=8",
            "--cluster-option", "memory=16GB", "--cluster-option", "queue=gpu",
            "--cluster-option", "walltime=02:00:00"]
    assert main(args) == 0
    script = capsys.readouterr().out
    for line in expected:
        assert line in script, script
    assert "--nworkers 8" in script and "--nthreads 1" in script


def test_the_command_line_sends_the_batch_to_a_running_scheduler(tmp_path, client):
    from distributed import get_task_stream

    from napari_noise2detail.cli import main

    _images(tmp_path / "in", count=2)
    with get_task_stream(client) as stream:
        code = main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--device", "cpu",
                     "--steps", "8", "--scheduler", client.scheduler.address])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img0_n2d_detail.tif", "img1_n2d_detail.tif"]
    assert len([t for t in stream.data if str(t["key"]).startswith("n2d-")]) == 2  # run by its workers


def test_gpu_workers_are_told_their_device():
    from napari_noise2detail.cluster import gpu_worker_specs

    specs = gpu_worker_specs(3)
    assert [spec["options"]["env"]["CUDA_VISIBLE_DEVICES"] for spec in specs.values()] == ["0", "1", "2"]
    assert all(spec["options"]["nthreads"] == 1 for spec in specs.values())


def test_without_a_cluster_dask_is_not_imported(tmp_path):
    _images(tmp_path / "in", count=1)
    code = ("import sys; from napari_noise2detail.cli import main; "
            f"rc = main(['denoise', {str(tmp_path / 'in')!r}, '-o', {str(tmp_path / 'out')!r}, '--steps', '3', "
            "'--device', 'cpu']); print(rc, 'distributed' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "0 False", done.stdout + done.stderr


def test_a_block_fits_the_planes_its_stacks_own_model_does_not_cover(tmp_path):
    import zarr

    from napari_noise2detail import fit
    from napari_noise2detail.batch import _open, _plan, run_block
    from napari_noise2detail.cluster import _begin_outputs

    data = with_a_blank_frame(6, blank=3)
    zarr.create_array(str(tmp_path / "stack.zarr"), shape=data.shape, chunks=(1, *data.shape[1:]),
                      dtype=data.dtype)[:] = data
    (job,) = _plan([tmp_path / "stack.zarr"], tmp_path / "out", BLOCK_OPTIONS)
    model = fit(data, planes=[0, 5], device="cpu", steps=8, width=8).to_bytes()
    outputs, arrays, _flags = _begin_outputs(job, _open(job, BLOCK_OPTIONS), BLOCK_OPTIONS)
    with outputs:
        assert run_block(job, BLOCK_OPTIONS, model, range(2, 5), arrays, refit=True) == (3,)
        with pytest.raises(ValueError, match="of plane 3 is darker than nearly all"):
            run_block(job, BLOCK_OPTIONS, model, range(2, 5), arrays)  # a saved model: refused


def test_a_block_stops_writing_once_its_stack_is_told_to_stop(tmp_path):
    from napari_noise2detail import fit
    from napari_noise2detail.batch import _ItemFailed, _open, _plan, run_block
    from napari_noise2detail.cluster import _begin_outputs, _Split

    data = _zarr_stack(tmp_path / "stack.zarr", planes=4)
    (job,) = _plan([tmp_path / "stack.zarr"], tmp_path / "out", BLOCK_OPTIONS)
    model = fit(data[0], device="cpu", steps=8, width=8).to_bytes()
    opened = _open(job, BLOCK_OPTIONS)
    outputs, arrays, flags = _begin_outputs(job, opened, BLOCK_OPTIONS)
    split = _Split(outputs, flags, set(), 2, opened.info)
    assert run_block(job, BLOCK_OPTIONS, model, range(0, 2), arrays) == ()  # every plane covered: none fitted on its own
    split.stop()  # as the client does when the batch is cancelled, before removing the store
    with pytest.raises(_ItemFailed, match="being removed"):
        run_block(job, BLOCK_OPTIONS, model, range(2, 4), arrays)
    smooth = arrays["smooth"][:]
    assert all(plane.std() > 0 for plane in smooth[:2]) and not smooth[2:].any()  # planes 2, 3 never written
    split.remove(KeyboardInterrupt())
    assert _left_in(tmp_path / "out") == []


def test_a_running_fit_stops_once_its_stack_is_told_to_stop(tmp_path):
    from napari_noise2detail.batch import _open, _plan, fit_job
    from napari_noise2detail.cluster import _begin_outputs, _Split
    from napari_noise2detail.engine import Cancelled
    from napari_noise2detail.engine.presets import resolve_settings
    from napari_noise2detail.engine.model_file import model_from_bytes

    _zarr_stack(tmp_path / "stack.zarr", planes=4)
    (job,) = _plan([tmp_path / "stack.zarr"], tmp_path / "out", BLOCK_OPTIONS)
    opened = _open(job, BLOCK_OPTIONS)
    outputs, _arrays, flags = _begin_outputs(job, opened, BLOCK_OPTIONS)
    split = _Split(outputs, flags, set(), 1, opened.info)
    tiny = resolve_settings("fast", steps=8, width=8)
    assert model_from_bytes(fit_job(job, tiny, BLOCK_OPTIONS, flags), "cpu").planes  # fits while its outputs are wanted
    split.stop()  # as the client does on a cancel: Dask cannot stop a running task
    endless = resolve_settings("fast", steps=10**9, width=8)  # would never end on its own
    with pytest.raises(Cancelled, match="outputs are being removed"):
        fit_job(job, endless, BLOCK_OPTIONS, flags)
    split.remove(KeyboardInterrupt())
    assert _left_in(tmp_path / "out") == []


def test_the_output_folder_is_made_once_by_the_batch_not_by_each_worker(tmp_path, client):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.tif").write_bytes(b"II*\x00 not a TIFF")
    _events, summary = drain(run_batch([tmp_path / "in" / "bad.tif"], tmp_path / "out" / "new", OPTIONS, client))
    assert [r.status for r in summary.results] == ["failed"]
    assert not (tmp_path / "out").exists()  # nothing written: no empty folders left
    _images(tmp_path / "in", count=1)
    _events, summary = drain(run_batch([tmp_path / "in" / "img0.tif"], tmp_path / "out" / "new", OPTIONS, client))
    assert summary.ok and [p.name for p in (tmp_path / "out" / "new").iterdir()] == ["img0_n2d_detail.tif"]


def test_blocks_written_on_workers_fill_the_lower_levels_too(tmp_path, client, monkeypatch):
    import zarr

    from napari_noise2detail import cluster
    from napari_noise2detail.io import pyramid

    monkeypatch.setattr(cluster, "BLOCK_PLANES", 3)
    monkeypatch.setattr(pyramid, "LEVEL_SIDE", 16)  # the outputs are made here, their levels with them
    _zarr_stack(tmp_path / "stack.zarr", planes=7)
    inputs = collect_inputs([tmp_path / "stack.zarr"])
    _events, here = drain(run_batch(inputs, tmp_path / "here", BLOCK_OPTIONS))
    _events, there = drain(run_batch(inputs, tmp_path / "there", BLOCK_OPTIONS, client))
    assert here.ok and there.ok
    ours, theirs = (np.asarray(zarr.open_group(str(tmp_path / where / "stack_n2d_smooth.ome.zarr"), mode="r")["1"])
                    for where in ("here", "there"))
    assert theirs.shape == (7, 16, 16) and np.array_equal(theirs, ours) and (theirs.std(axis=(1, 2)) > 0).all()  # (smooth: a tiny fit leaves detail flat)


def test_a_scheduler_address_of_another_service_is_refused_in_words(tmp_path):
    """A port that speaks another protocol (ssh's banner): exit status 2 and the address, not
    an allocation error from reading the banner as a message's length. (In a process of its
    own: a Client that fails half-made leaves Dask's configuration set.)"""
    import socket
    import threading

    make_folder(tmp_path / "in")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"SSH-2.0-OpenSSH_9.6p1\r\n")
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        done = subprocess.run([sys.executable, "-m", "napari_noise2detail.cli", "denoise", str(tmp_path / "in"),
                               "-o", str(tmp_path / "out"), "--scheduler", address],
                              capture_output=True, text=True, timeout=120)
    finally:
        server.close()
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"cannot reach the Dask scheduler at {address}" in done.stderr

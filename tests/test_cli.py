import subprocess
import sys

import numpy as np
import tifffile

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


def test_bad_device_is_exit_status_2(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--device", "tpu"]) == 2
    assert "unknown device" in capsys.readouterr().err


def test_console_script_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "napari_noise2detail.cli", "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "demo" in done.stdout

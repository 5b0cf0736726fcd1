"""The package as napari and pip see it."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import napari_noise2detail

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = ROOT / "src" / "napari_noise2detail" / "napari.yaml"


def test_root_manifest_is_the_packaged_one():
    assert (ROOT / "napari.yaml").read_text() == PACKAGED.read_text()


def test_manifest_is_valid_and_found_through_the_entry_point():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-noise2detail")
    assert manifest.name == "napari-noise2detail"
    assert manifest.display_name == "Noise2Detail"


def test_version_is_single_sourced():
    from importlib.metadata import version

    assert version("napari-noise2detail") == napari_noise2detail.__version__


@pytest.mark.filterwarnings("ignore")
def test_built_wheel_holds_the_manifest_and_sample(tmp_path):
    # Build from a copy: building in place would leave build/ in the checkout.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "n2d-demo"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("napari_noise2detail-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_noise2detail/napari.yaml" in names
    assert "napari_noise2detail/data/nuclei_dsb2018_crop.tif" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "napari.manifest" in text and "napari_noise2detail:napari.yaml" in text

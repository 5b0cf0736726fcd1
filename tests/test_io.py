import numpy as np
import pytest
import tifffile

from napari_noise2detail.figures import side_by_side
from napari_noise2detail.io import write_atomic, write_tiff


def test_write_tiff_round_trips_and_leaves_no_temporary(tmp_path):
    data = np.arange(64, dtype=np.uint16).reshape(8, 8)
    path = write_tiff(tmp_path / "sub" / "out.tif", data)
    assert np.array_equal(tifffile.imread(path), data)
    assert [p.name for p in path.parent.iterdir()] == ["out.tif"]


def test_interrupted_write_leaves_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "out.tif"
    target.write_bytes(b"old")

    def crash(temp):
        temp.write_bytes(b"half a fi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, crash)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_side_by_side_shares_contrast_limits():
    a = np.linspace(0, 1, 100).reshape(10, 10)
    picture = side_by_side([a, a * 0 + 0.5, a], gap=2)
    assert picture.shape == (10, 34) and picture.dtype == np.uint8
    assert (picture[:, 10:12] == 255).all()  # the white gap
    assert np.array_equal(picture[:, :10], picture[:, 24:])
